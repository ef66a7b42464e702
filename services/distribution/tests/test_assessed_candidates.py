"""Candidates from the service's projection of registered and assessed households."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from puskesos_distribution.app import create_app
from puskesos_distribution.gateway import InMemoryGateway
from puskesos_distribution.sample_data import recipient_rows
from puskesos_shared.contracts import CaseAssessed, Event, HouseholdRegistered, HouseholdUpdated
from puskesos_shared.contracts.examples import example
from puskesos_shared.contracts.registry import subject_for
from puskesos_shared.messaging import encode_event, event_headers
from puskesos_shared.testing.app import running_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
T0 = dt.datetime(2022, 10, 1, 9, tzinfo=dt.UTC)
HOME, NEW_HOME = "35.73.01.1001", "35.73.02.1003"


def household_event(kk: str, revision: int, village: str) -> Event:
    base = example("HouseholdRegistered" if revision == 1 else "HouseholdUpdated")
    assert isinstance(base, (HouseholdRegistered, HouseholdUpdated))
    household = base.data.household.model_copy(update={
        "kk_number": kk, "address": base.data.household.address.model_copy(update={"village_code": village})})
    data = base.data.model_copy(update={"household": household, "revision": revision})
    return base.model_copy(update={"event_id": uuid.uuid4(), "data": data,
                                   "occurred_at": T0 + dt.timedelta(hours=revision)})


def assessed_event(kk: str, eligible: bool, at: dt.datetime) -> Event:
    base = example("CaseAssessed")
    assert isinstance(base, CaseAssessed)
    result = base.data.result
    eligibility = tuple(e.model_copy(update={"eligible": eligible}) if e.program.value == "BLT" else e
                        for e in result.eligibility)
    data = base.data.model_copy(update={"kk_number": kk, "assessment_id": uuid.uuid4(),
                                        "result": result.model_copy(update={"eligibility": eligibility})})
    return base.model_copy(update={"event_id": uuid.uuid4(), "data": data, "occurred_at": at})


async def test_eligible_assessed_families_are_allocated_where_they_live_now(
    settings_for: Any, helpers: Any, round_body: Any, topology: Any
) -> None:
    kks = [r["kk_number"] for r in recipient_rows(4, seed=21, village_codes=(HOME,))]
    eligible, turned_down, unregistered, moved = kks
    events = [
        household_event(eligible, 1, HOME), assessed_event(eligible, True, T0),
        household_event(turned_down, 1, HOME), assessed_event(turned_down, True, T0),
        assessed_event(turned_down, False, T0 + dt.timedelta(days=3)),  # a later assessment: not eligible
        assessed_event(unregistered, True, T0),
        assessed_event(moved, True, T0), household_event(moved, 2, NEW_HOME), household_event(moved, 1, HOME),
    ]
    js = helpers.nc.jetstream()
    for event in [*events, events[1]]:  # out of order and once twice: the projection does not care
        await js.publish(subject_for(event, topology), encode_event(event), headers=event_headers(event))
    gateway = InMemoryGateway()
    async with running_app(create_app(settings_for(), gateway=gateway)):
        await helpers.wait_projected()
        await helpers.ok("open_round", round_body("assessed"))
        enqueued = await helpers.ok("enqueue_assessed", {"round": "assessed"})
        assert (enqueued["enqueued"], enqueued["not_eligible"], enqueued["without_household"]) == (2, 1, 1)
        # the social office's list also names the family the latest assessment turned down
        listed = next(r for r in recipient_rows(4, seed=21, village_codes=(HOME,)) if r["kk_number"] == turned_down)
        await helpers.ok("import_rows", {"round": "assessed", "batch_id": str(uuid.uuid4()),
                                         "rows": [{"row": 2, "fields": listed}]})

        async def settled() -> bool:
            return len(gateway.payments) == 2 and len(await helpers.events("AidAllocationRejected")) == 1

        await helpers.wait_until(settled, timeout=60, what="two payouts and one rejection")
        allocated = {e["data"]["kk_number"]: e["data"] for e in await helpers.events("AidAllocated")}
        rejected = (await helpers.events("AidAllocationRejected"))[0]["data"]

    assert set(allocated) == {eligible, moved}
    assert allocated[moved]["village_code"] == NEW_HOME and allocated[eligible]["village_code"] == HOME
    basis = {e: allocated[e]["basis"] for e in allocated}
    assert all(b["source"] == "assessment" and b["assessment_event_id"] for b in basis.values())
    assert basis[eligible]["assessment_event_id"] == str(events[1].event_id)
    assert allocated[moved]["payout"] == {"method": "collection_point", "reference": "KANTOR-3573021003"}
    assert (rejected["kk_number"], rejected["reason"]) == (turned_down, "not_eligible")
    assert str(events[4].event_id) in rejected["detail"]
