"""Redelivered and duplicated inputs change nothing and publish nothing twice (real NATS and the Mongo engine)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from puskesos_referral.domain.decisions import close_case, open_case
from puskesos_referral.handlers import CONSUMER
from puskesos_shared.contracts import Actor
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.contracts.referral import CaseResolution
from puskesos_shared.ids import stable_id
from puskesos_shared.topology import Topology
from referral_testkit import (
    FakeClock,
    bearer,
    command,
    complaint_filed,
    events_of,
    household,
    household_registered,
    household_updated,
    publish,
    replica,
    settings_for,
    stream_events,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def consumed_everything(js: JetStreamContext, topology: Topology) -> bool:
    """The service's consumer has handled and acknowledged every message in the stream."""
    try:
        info = await js.consumer_info(topology.events_stream, CONSUMER)
    except Exception:
        return False
    return info.num_pending == 0 and info.num_ack_pending == 0


async def test_redelivered_and_copied_complaints_open_one_case_and_publish_once(
        nats_url: str, mongo_url: str, namespace: str, db_prefix: str, topology: Topology,
        jetstream: JetStreamContext) -> None:
    async with replica(settings_for(nats_url, mongo_url, namespace, db_prefix), FakeClock()) as r:
        changes = r.runtime.state["store"].changes
        complaint = complaint_filed()
        await publish(jetstream, topology, complaint)
        await publish(jetstream, topology, complaint, msg_id=f"replay-{uuid.uuid4()}")  # a replayed copy
        copy = complaint.model_copy(update={"event_id": uuid.uuid4()})  # same complaint, re-emitted by intake
        await publish(jetstream, topology, copy)
        await wait_for(lambda: consumed_everything(jetstream, topology), what="all three handled")
        before = await changes.find_one({})
        assert before is not None and before["version"] == 1
        assert before["published"] is True and await changes.count_documents({}) == 1
        assert len(await events_of(jetstream, topology, "CaseOpened")) == 1
        # and once more, later (a consumer reset replaying the stream)
        await publish(jetstream, topology, complaint, msg_id=f"replay-{uuid.uuid4()}")
        await wait_for(lambda: consumed_everything(jetstream, topology), what="replay handled")
        assert await changes.find_one({}) == before
        assert len(await events_of(jetstream, topology, "CaseOpened")) == 1
        assert await changes.count_documents({}) == 1
        assert await r.runtime.state["store"].cases.count_documents({}) == 1


async def test_a_case_written_but_not_published_is_published_once_on_redelivery(
        nats_url: str, mongo_url: str, namespace: str, db_prefix: str, topology: Topology,
        jetstream: JetStreamContext) -> None:
    clock = FakeClock()
    async with replica(settings_for(nats_url, mongo_url, namespace, db_prefix), clock) as r:
        store = r.runtime.state["store"]
        complaint = complaint_filed()
        decision = open_case(complaint, clock())
        assert await store.append(decision.case, decision.events) is not None  # the crash: no read model, no flush
        assert await events_of(jetstream, topology, "CaseOpened") == []
        await publish(jetstream, topology, complaint)  # the redelivery after the crash
        await wait_for(lambda: consumed_everything(jetstream, topology), what="redelivery handled")

        async def published() -> bool:
            return len(await events_of(jetstream, topology, "CaseOpened")) == 1

        await wait_for(published, what="CaseOpened from the outbox")
        opened = (await events_of(jetstream, topology, "CaseOpened"))[0]
        assert opened.event_id == decision.events[0].event_id
        assert await store.unpublished(decision.case.case_id, 1) == []
        assert await store.cases.count_documents({}) == 1  # the read model was completed too


async def test_a_change_left_half_done_by_a_crash_is_finished_by_the_sweep(
        nats_url: str, mongo_url: str, namespace: str, db_prefix: str, topology: Topology,
        jetstream: JetStreamContext) -> None:
    settings = settings_for(nats_url, mongo_url, namespace, db_prefix, pending_sweep_seconds=0.1)
    async with replica(settings, FakeClock()) as r:
        store, service = r.runtime.state["store"], r.runtime.state["service"]
        complaint = complaint_filed(nik=None, kk=None)
        await publish(jetstream, topology, complaint)
        case_id = stable_id("case", complaint.data.complaint_id)

        async def opened() -> bool:
            return len(await events_of(jetstream, topology, "CaseOpened")) == 1

        await wait_for(opened, what="case opened")
        case = await store.latest(case_id)
        decision = close_case(case, command_id=str(uuid.uuid4()), resolution=CaseResolution.RESOLVED,
                              reason="Sudah ditangani.", actor=Actor.system("test"), now=service.clock())
        await store.mark_pending(decision.case)
        assert await store.append(decision.case, decision.events) is not None  # the process died here

        async def finished() -> bool:
            doc = await store.cases.find_one({"_id": str(case_id)})
            return (doc is not None and doc["status"] == "closed"
                    and len(await events_of(jetstream, topology, "CaseClosed")) == 1)

        await wait_for(finished, what="read model and CaseClosed completed by the sweep")
        assert await store.unpublished(case_id, decision.case.version) == []

        async def no_markers() -> bool:
            return await store.markers.count_documents({}) == 0

        await wait_for(no_markers, what="the pending marker removed")


async def test_concurrent_handling_of_one_complaint_opens_one_case(
        nats_url: str, mongo_url: str, namespace: str, db_prefix: str, topology: Topology,
        jetstream: JetStreamContext) -> None:
    async with replica(settings_for(nats_url, mongo_url, namespace, db_prefix), FakeClock()) as r:
        service = r.runtime.state["service"]
        complaint = complaint_filed()
        results = await asyncio.gather(*(service.on_complaint_filed(complaint) for _ in range(4)))
        assert sorted(results) == [False, False, False, True]
        assert len(await events_of(jetstream, topology, "CaseOpened")) == 1


async def test_household_revisions_apply_only_forward_and_publish_nothing(
        nats_url: str, mongo_url: str, namespace: str, db_prefix: str, topology: Topology,
        jetstream: JetStreamContext) -> None:
    async with replica(settings_for(nats_url, mongo_url, namespace, db_prefix), FakeClock()) as r:
        store = r.runtime.state["store"]
        registered = household_registered()
        rev2 = household_updated(household(income=900_000), 2)
        rev3 = household_updated(household(income=700_000), 3)
        for event in (registered, rev3, rev2):  # rev 2 arrives late
            await publish(jetstream, topology, event)
        await publish(jetstream, topology, rev3, msg_id=f"replay-{uuid.uuid4()}")
        await publish(jetstream, topology, registered, msg_id=f"replay-{uuid.uuid4()}")
        await wait_for(lambda: consumed_everything(jetstream, topology), what="household events handled")
        found = await store.household(registered.data.household.kk_number)
        assert found is not None
        stored, revision = found
        assert revision == 3 and stored.socio_economic.monthly_income == 700_000
        assert await stream_events(jetstream, topology) == []  # the referral service published nothing
        assert await store.revisions.count_documents({}) == 3  # revisions 1, 2 and 3, each once
        assert await store.households.count_documents({}) == 1


async def test_retried_commands_apply_once(nats_url: str, mongo_url: str, namespace: str, db_prefix: str,
                                           topology: Topology, jetstream: JetStreamContext,
                                           nats_client: NatsClient) -> None:
    async with replica(settings_for(nats_url, mongo_url, namespace, db_prefix), FakeClock()) as r:
        store = r.runtime.state["store"]
        await publish(jetstream, topology, household_registered())
        complaint = complaint_filed()
        await publish(jetstream, topology, complaint)
        await wait_for(lambda: consumed_everything(jetstream, topology), what="inputs handled")
        case_id = stable_id("case", complaint.data.complaint_id)
        headers = bearer(OfficerRole.ASSESSOR)

        assess = {"command_id": str(uuid.uuid4()), "observations": {"needs_hospital_care": True}}
        codes = [(await r.http.post(f"/cases/{case_id}/assessments", json=assess, headers=headers)).status_code
                 for _ in range(2)]
        assert codes == [201, 200]

        refer = {"command_id": str(uuid.uuid4()), "target_code": "RSD-SOEBANDI"}
        answers = [await r.http.post(f"/cases/{case_id}/referrals", json=refer, headers=headers) for _ in range(3)]
        assert [a.status_code for a in answers] == [201, 200, 200]
        numbers = {a.json()["referral"]["referral_number"] for a in answers}
        assert numbers == {"RJK/3509012001/2026/00001"}
        assert await store.numbers.count_documents({}) == 1

        response = {"referral_number": "RJK/3509012001/2026/00001", "outcome": "accepted", "responded_by": "RSD"}
        replies = [await command(nats_client, topology, "respond_referral", response) for _ in range(2)]
        assert [rep.result["duplicate"] for rep in replies if rep.result] == [False, True]

        close = {"command_id": str(uuid.uuid4()), "resolution": "withdrawn", "reason": "Keluarga pindah ke Bali."}
        codes = [(await r.http.post(f"/cases/{case_id}/close", json=close, headers=headers)).status_code
                 for _ in range(2)]
        assert codes == [201, 200]

        types = [s.event.event_type for s in await stream_events(jetstream, topology)]
        assert types == ["CaseOpened", "CaseAssessed", "ReferralIssued", "ReferralResolved", "CaseClosed"]
        case = await store.latest(case_id)
        assert case is not None and case.version == 5


async def test_unconfirmed_publishes_are_retried_and_finished_without_loss(mongo_url: str, db_prefix: str,
                                                                           topology: Topology) -> None:
    """The broker refuses: the input is retried (TransientError) and a marker lets the sweep finish the change."""
    from puskesos_referral.service import ReferralService
    from puskesos_referral.store import MongoCaseStore
    from puskesos_shared.messaging import TransientError
    from puskesos_shared.mongo import Mongo

    mongo = Mongo(mongo_url, f"{db_prefix}_outage")
    store = MongoCaseStore(mongo.db, topology)
    await store.create_indexes()
    sent: list[str] = []
    broker_up = False

    async def flush(change: str, entries: list[dict[str, object]]) -> bool:
        if broker_up:
            sent.extend(str(e["event_id"]) for e in entries)
        return broker_up

    service = ReferralService(store, flush, FakeClock())
    try:
        complaint = complaint_filed()
        with pytest.raises(TransientError):
            await service.on_complaint_filed(complaint)
        with pytest.raises(TransientError):  # the redelivery, while the broker is still down
            await service.on_complaint_filed(complaint)
        assert sent == [] and await store.markers.count_documents({}) >= 1
        broker_up = True
        assert await service.finish_pending() >= 1  # even if the input were dead-lettered by now
        assert await service.on_complaint_filed(complaint) is False  # a later redelivery: nothing to do
        assert sent == [str(open_case(complaint, FakeClock()()).events[0].event_id)]
        assert await store.markers.count_documents({}) == 0
        assert await store.cases.count_documents({}) == 1
    finally:
        await mongo.close()
