"""Contended writes across two replicas: no lost change, no duplicate or skipped number.

Every change is claimed by inserting its version (see ``store``); these tests hammer that write
path from two replicas and check the history is complete and the read model is current.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from nats.js import JetStreamContext
from puskesos_shared.contracts.intake import ComplaintCategory, Urgency
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.ids import stable_id
from puskesos_shared.topology import Topology
from referral_testkit import (
    FakeClock,
    bearer,
    complaint_filed,
    events_of,
    household_registered,
    publish,
    replica,
    settings_for,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
WRITERS = 8


async def test_concurrent_commands_on_one_case_lose_nothing(nats_url: str, mongo_url: str, namespace: str,
                                                             db_prefix: str, topology: Topology,
                                                             jetstream: JetStreamContext) -> None:
    settings = settings_for(nats_url, mongo_url, namespace, db_prefix, escalation_enabled=False)
    async with replica(settings, FakeClock()) as one, replica(settings, FakeClock()) as two:
        store = one.runtime.state["store"]
        await publish(jetstream, topology, household_registered())
        complaint = complaint_filed()
        await publish(jetstream, topology, complaint)
        case_id = stable_id("case", complaint.data.complaint_id)

        async def ready() -> bool:
            return await store.latest(case_id) is not None and await store.household("3509012003150001") is not None

        await wait_for(ready, what="case and household")
        bodies = [{"command_id": str(uuid.uuid4()), "observations": {"chronic_illness": n % 2 == 0}}
                  for n in range(WRITERS)]
        answers = await asyncio.gather(*(
            (one if n % 2 else two).http.post(f"/cases/{case_id}/assessments", json=body,
                                              headers=bearer(OfficerRole.ASSESSOR))
            for n, body in enumerate(bodies)))
        assert sorted(a.status_code for a in answers) == [201] * WRITERS, [a.text for a in answers]

        latest = await store.latest(case_id)
        assert latest is not None and latest.version == 1 + WRITERS
        assert {str(a.assessment_id) for a in latest.assessments} == {a.json()["assessment_id"] for a in answers}
        versions = sorted([d["version"] async for d in store.changes.find({"case_id": str(case_id)})])
        assert versions == list(range(1, WRITERS + 2))  # a complete history, one document per version
        read_model = await store.cases.find_one({"_id": str(case_id)})
        assert read_model is not None and read_model["version"] == latest.version

        async def all_published() -> bool:
            return len(await events_of(jetstream, topology, "CaseAssessed")) == WRITERS

        await wait_for(all_published, what="every assessment published")


async def test_concurrent_referrals_in_one_village_get_consecutive_unique_numbers(
        nats_url: str, mongo_url: str, namespace: str, db_prefix: str, topology: Topology,
        jetstream: JetStreamContext) -> None:
    settings = settings_for(nats_url, mongo_url, namespace, db_prefix, escalation_enabled=False)
    async with replica(settings, FakeClock()) as one, replica(settings, FakeClock()) as two:
        store = one.runtime.state["store"]
        complaints = [complaint_filed(sequence=n, category=ComplaintCategory.AID_NOT_RECEIVED, urgency=Urgency.LOW,
                                      nik=None, kk=None) for n in range(WRITERS)]  # anonymous: no household
        for complaint in complaints:
            await publish(jetstream, topology, complaint)
        case_ids = [stable_id("case", c.data.complaint_id) for c in complaints]

        async def opened() -> bool:
            return all([await store.latest(c) is not None for c in case_ids])

        await wait_for(opened, what="cases opened")
        headers = bearer(OfficerRole.ASSESSOR)
        for case_id in case_ids:
            response = await one.http.post(f"/cases/{case_id}/assessments", json={"observations": {}}, headers=headers)
            assert response.status_code == 201, response.text
        answers = await asyncio.gather(*(
            (one if n % 2 else two).http.post(f"/cases/{case_id}/referrals", json={"target_code": "DINSOS-JEMBER"},
                                              headers=headers)
            for n, case_id in enumerate(case_ids)))
        assert [a.status_code for a in answers] == [201] * WRITERS, [a.text for a in answers]
        numbers = sorted(a.json()["referral"]["referral_number"] for a in answers)
        assert numbers == [f"RJK/3509012001/2026/{n:05d}" for n in range(1, WRITERS + 1)]
