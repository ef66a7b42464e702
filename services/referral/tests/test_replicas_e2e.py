"""Two real referral processes on one namespace and database: overdue cases escalate exactly once per level,
and when one replica is killed (SIGKILL) the other carries on."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from nats.js import JetStreamContext
from puskesos_referral.store import MongoCaseStore
from puskesos_shared.contracts import CaseEscalated
from puskesos_shared.contracts.intake import ComplaintCategory, Urgency
from puskesos_shared.ids import stable_id
from puskesos_shared.mongo import Mongo
from puskesos_shared.testing.processes import ServiceProcess
from puskesos_shared.topology import Topology
from referral_testkit import HEAD_NIK, KK, SECRET, complaint_filed, events_of, publish, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
CASES = 4
READY_TIMEOUT = 90.0


@pytest.fixture
def env(nats_url: str, mongo_url: str, namespace: str, db_prefix: str) -> dict[str, str]:
    return {"PUSKESOS_NATS_URL": nats_url, "PUSKESOS_MONGO_URL": mongo_url, "PUSKESOS_NAMESPACE": namespace,
            "PUSKESOS_MONGO_DB": f"{db_prefix}_referral", "PUSKESOS_AUTH_SECRET": SECRET,
            "PUSKESOS_ESCALATION_INTERVAL_SECONDS": "0.2", "PUSKESOS_PENDING_SWEEP_SECONDS": "0.5",
            "PUSKESOS_CONSUMER_ACK_WAIT_SECONDS": "3"}


def referral(env: dict[str, str], log_path: Path) -> ServiceProcess:
    return ServiceProcess("puskesos_referral", log_path=log_path, env=env)


@pytest_asyncio.fixture
async def replicas(env: dict[str, str], tmp_path: Path,
                   jetstream: JetStreamContext) -> AsyncIterator[list[ServiceProcess]]:
    processes = [referral(env, tmp_path / f"referral-{n}.log").start() for n in (1, 2)]
    try:
        await asyncio.gather(*(asyncio.to_thread(p.wait_ready, READY_TIMEOUT) for p in processes))
        yield processes
    finally:
        for p in processes:
            p.stop()


async def more_sweeps(processes: list[ServiceProcess], count: int = 3) -> None:
    name = "puskesos_referral_escalation_sweeps_total"
    start = [await asyncio.to_thread(p.metric, name) for p in processes]

    async def swept() -> bool:
        now = [await asyncio.to_thread(p.metric, name) for p in processes]
        return all(n >= s + count for n, s in zip(now, start, strict=True))

    await wait_for(swept, timeout=60, what="more sweeps on every live replica")


async def make_overdue(store: MongoCaseStore, case_id: uuid.UUID) -> None:
    """Moves the current level's deadline into the past, as a new version claimed through the store."""
    while True:
        case = await store.latest(case_id)
        assert case is not None
        moved = case.model_copy(update={"level_due_on": dt.date(2026, 1, 5), "version": case.version + 1})
        if await store.append(moved, []) is not None:
            await store.sync_case(moved)
            return


async def test_two_processes_escalate_each_level_once_and_survive_a_kill(
        replicas: list[ServiceProcess], mongo_url: str, db_prefix: str, topology: Topology,
        jetstream: JetStreamContext) -> None:
    mongo = Mongo(mongo_url, f"{db_prefix}_referral")
    store = MongoCaseStore(mongo.db, topology)
    try:
        complaints = [complaint_filed(sequence=n, category=ComplaintCategory.OTHER, urgency=Urgency.LOW,
                                      filed_at=dt.datetime.now(dt.UTC)) for n in range(CASES)]
        for complaint in complaints:
            await publish(jetstream, topology, complaint)
        case_ids = [stable_id("case", c.data.complaint_id) for c in complaints]

        async def at(level: str) -> bool:
            cases = [await store.latest(c) for c in case_ids]
            return all(c is not None and c.level.value == level for c in cases)

        await wait_for(lambda: at("village"), timeout=60, what="cases opened by the replicas")
        await more_sweeps(replicas)
        assert await events_of(jetstream, topology, "CaseEscalated") == []  # on time: nothing

        for case_id in case_ids:
            await make_overdue(store, case_id)
        await wait_for(lambda: at("kecamatan"), timeout=60, what="escalated to the kecamatan")
        await more_sweeps(replicas)
        assert len(await events_of(jetstream, topology, "CaseEscalated")) == CASES

        replicas[0].kill()  # SIGKILL one replica; the other takes over the sweep alone
        for case_id in case_ids:
            await make_overdue(store, case_id)
        await wait_for(lambda: at("dinas_sosial"), timeout=60, what="escalated to the Dinas Sosial")
        await more_sweeps(replicas[1:])

        escalated = [e for e in await events_of(jetstream, topology, "CaseEscalated") if isinstance(e, CaseEscalated)]
        assert len(escalated) == 2 * CASES
        for case_id in case_ids:
            levels = [e.data.to_level.value for e in escalated if e.data.case_id == case_id]
            assert levels == ["kecamatan", "dinas_sosial"]
            history = sorted([d["version"] async for d in store.changes.find({"case_id": str(case_id)})])
            assert history == [1, 2, 3, 4, 5]  # opened, deadline moved, escalated, deadline moved, escalated
            assert await store.unpublished(case_id, 5) == []
    finally:
        await mongo.close()


BURST = 150


async def test_sigkill_while_opening_cases_loses_nothing_and_publishes_nothing_twice(
        env: dict[str, str], tmp_path: Path, mongo_url: str, db_prefix: str, topology: Topology,
        jetstream: JetStreamContext) -> None:
    first = referral(env, tmp_path / "referral-first.log").start()
    second = referral(env, tmp_path / "referral-second.log")
    mongo = Mongo(mongo_url, f"{db_prefix}_referral")
    store = MongoCaseStore(mongo.db, topology)
    try:
        await asyncio.to_thread(first.wait_ready, READY_TIMEOUT)
        complaints = [complaint_filed(sequence=n, filed_at=dt.datetime.now(dt.UTC)) for n in range(BURST)]
        await asyncio.gather(*(publish(jetstream, topology, c) for c in complaints))

        async def some_opened() -> bool:
            return await store.changes.count_documents({}) > 0

        await wait_for(some_opened, timeout=60, what="the first cases opened")
        first.kill()  # SIGKILL in the middle of the burst
        done_before = await store.changes.count_documents({})
        second.start()
        await asyncio.to_thread(second.wait_ready, READY_TIMEOUT)

        async def all_published() -> bool:
            return len(await events_of(jetstream, topology, "CaseOpened")) >= BURST

        await wait_for(all_published, timeout=90, what="every complaint's CaseOpened")
        await wait_for(lambda: _no_pending(store), timeout=30, what="no pending outbox entries")
        opened = await events_of(jetstream, topology, "CaseOpened")
        assert len(opened) == BURST and len({e.event_id for e in opened}) == BURST
        assert {e.correlation_id for e in opened} == {f"case:{stable_id('case', c.data.complaint_id)}"
                                                       for c in complaints}
        assert await store.changes.count_documents({}) == BURST
        assert await store.cases.count_documents({}) == BURST
        assert done_before > 0  # the kill really happened after work had started
        assert "case_opened" in second.log_text()
        for process in (first, second):
            log = process.log_text()
            assert KK not in log and HEAD_NIK not in log  # personal data is masked in logs
    finally:
        first.kill()
        second.stop()
        await mongo.close()


async def _no_pending(store: MongoCaseStore) -> bool:
    return (await store.changes.count_documents({"published": False}) == 0
            and await store.markers.count_documents({}) == 0)
