"""SLA escalation with two replicas sharing the namespace and the database (in-process, real servers).

Both replicas run the escalation loop against one controllable clock; a case past its deadline
must escalate village -> kecamatan -> dinas_sosial exactly once per level.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from puskesos_shared.contracts import CaseEscalated
from puskesos_shared.contracts.intake import ComplaintCategory, Urgency
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.ids import derived_event_id, stable_id
from puskesos_shared.topology import Topology
from referral_testkit import (
    FakeClock,
    Replica,
    bearer,
    command,
    complaint_filed,
    events_of,
    household_registered,
    publish,
    replica,
    settings_for,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
CASES = 6


async def more_sweeps(*replicas: Replica, count: int = 3) -> None:
    """Waits until every replica has run ``count`` more escalation sweeps."""
    start = [r.escalation_stats.get("sweeps", 0) for r in replicas]

    async def swept() -> bool:
        return all(r.escalation_stats.get("sweeps", 0) >= s + count for r, s in zip(replicas, start, strict=True))

    await wait_for(swept, what=f"{count} more sweeps on every replica")


async def test_overdue_cases_escalate_exactly_once_per_level_with_two_replicas(
        nats_url: str, mongo_url: str, namespace: str, db_prefix: str, topology: Topology,
        jetstream: JetStreamContext) -> None:
    clock = FakeClock()  # Monday 23 Nov 2026, 09:00 WIB
    settings = settings_for(nats_url, mongo_url, namespace, db_prefix, escalation_interval_seconds=0.02)
    async with replica(settings, clock) as one, replica(settings, clock) as two:
        store = one.runtime.state["store"]
        complaints = [complaint_filed(sequence=n, category=ComplaintCategory.AID_NOT_RECEIVED, urgency=Urgency.NORMAL)
                      for n in range(CASES)]  # 5 working days: due Monday 30 Nov
        for complaint in complaints:
            await publish(jetstream, topology, complaint)
        case_ids = [stable_id("case", c.data.complaint_id) for c in complaints]

        async def levels(level: str) -> bool:
            cases = [await store.latest(c) for c in case_ids]
            return all(c is not None and c.level.value == level for c in cases)

        await wait_for(lambda: levels("village"), what="cases opened")
        clock.advance(days=7, hours=10)  # Monday 30 Nov, 19:00 WIB: due today, not late
        await more_sweeps(one, two)
        assert await events_of(jetstream, topology, "CaseEscalated") == []

        clock.advance(hours=6)  # Tuesday 1 Dec, 01:00 WIB: late
        await wait_for(lambda: levels("kecamatan"), what="escalated to the kecamatan")
        await more_sweeps(one, two)
        first = await events_of(jetstream, topology, "CaseEscalated")
        assert len(first) == CASES
        for event in first:
            assert isinstance(event, CaseEscalated)
            assert (event.data.from_level.value, event.data.to_level.value) == ("village", "kecamatan")
            assert event.data.sla_due_on == dt.date(2026, 11, 30)
            assert event.event_id == stable_id("escalation", event.data.case_id, "kecamatan")
            complaint = complaints[case_ids.index(event.data.case_id)]
            assert event.causation_id == str(derived_event_id(complaint.event_id, "case_opened"))

        clock.advance(days=6)  # Monday 7 Dec: past the kecamatan's 3 working days (Friday 4 Dec)
        await wait_for(lambda: levels("dinas_sosial"), what="escalated to the Dinas Sosial")
        clock.advance(days=40)  # nothing above the Dinas Sosial
        await more_sweeps(one, two)
        escalated = await events_of(jetstream, topology, "CaseEscalated")
        assert len(escalated) == 2 * CASES
        assert len({e.event_id for e in escalated}) == 2 * CASES
        for case_id in case_ids:
            case = await store.latest(case_id)
            assert case is not None and [e.to_level.value for e in case.escalations] == ["kecamatan", "dinas_sosial"]
        # every escalation was written by exactly one replica: the winners' counts add up to the events
        won = one.escalation_stats["escalated"] + two.escalation_stats["escalated"]
        assert won == 2 * CASES, (one.escalation_stats, two.escalation_stats)


async def test_second_rejection_escalates_at_once_and_the_sla_does_not_repeat_that_level(
        nats_url: str, mongo_url: str, namespace: str, db_prefix: str, topology: Topology,
        jetstream: JetStreamContext, nats_client: NatsClient) -> None:
    clock = FakeClock()
    settings = settings_for(nats_url, mongo_url, namespace, db_prefix, escalation_interval_seconds=0.02)
    async with replica(settings, clock) as r:
        store = r.runtime.state["store"]
        await publish(jetstream, topology, household_registered())
        complaint = complaint_filed()
        await publish(jetstream, topology, complaint)
        case_id = stable_id("case", complaint.data.complaint_id)

        async def ready() -> bool:
            return await store.latest(case_id) is not None and await store.household("3509012003150001") is not None

        await wait_for(ready, what="case and household")
        for _ in range(2):
            assess = {"command_id": str(uuid.uuid4()), "observations": {"needs_hospital_care": True}}
            assert (await r.http.post(f"/cases/{case_id}/assessments", json=assess,
                                      headers=bearer(OfficerRole.ASSESSOR))).status_code == 201
            referral = await r.http.post(f"/cases/{case_id}/referrals", json={"target_code": "RSD-SOEBANDI"},
                                         headers=bearer(OfficerRole.ASSESSOR))
            assert referral.status_code == 201, referral.text
            reply = await command(nats_client, topology, "respond_referral",
                                  {"referral_id": referral.json()["referral"]["referral_id"], "outcome": "rejected",
                                   "note": "Kamar penuh.", "responded_by": "RSD-SOEBANDI"})
            assert reply.ok and reply.result is not None
        assert reply.result["case_status"] == "needs_reassessment" and reply.result["case_level"] == "kecamatan"
        escalated = await events_of(jetstream, topology, "CaseEscalated")
        assert len(escalated) == 1 and isinstance(escalated[0], CaseEscalated)
        assert escalated[0].data.reason == "referral rejected 2 times"

        clock.advance(days=30)  # the SLA is long past: only the next level remains
        await wait_for(lambda: _at(store, case_id, "dinas_sosial"), what="SLA escalation to the Dinas Sosial")
        await more_sweeps(r)
        levels = [e.data.to_level.value for e in await events_of(jetstream, topology, "CaseEscalated")
                  if isinstance(e, CaseEscalated)]
        assert levels == ["kecamatan", "dinas_sosial"]


async def _at(store: object, case_id: uuid.UUID, level: str) -> bool:
    case = await store.latest(case_id)  # type: ignore[attr-defined]
    return case is not None and bool(case.level.value == level)
