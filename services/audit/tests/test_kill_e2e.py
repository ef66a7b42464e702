"""The audit service as a real process, killed with SIGKILL while it appends: nothing lost, nothing twice."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from audit_flow import build_flow
from audit_testkit import SECRET, wait_for, wait_logged
from nats.js import JetStreamContext
from puskesos_audit import queries
from puskesos_audit.reader import LogReader
from puskesos_audit.store import AuditStore
from puskesos_audit.trace import TraceKind, trace
from puskesos_shared.contracts import subject_for
from puskesos_shared.messaging import encode_event, event_headers
from puskesos_shared.testing.processes import ServiceProcess
from puskesos_shared.topology import Topology
from pymongo import AsyncMongoClient

pytestmark = pytest.mark.e2e


async def _head(db: Any) -> int:
    head = await db["meta"].find_one({"_id": "head"})
    return int(head["seq"]) if head else 0


async def test_sigkill_while_appending_loses_nothing_and_appends_nothing_twice(
    nats_url: str, mongo_url: str, namespace: str, db_prefix: str, jetstream: JetStreamContext, topology: Topology,
    mongo_client: AsyncMongoClient[Any], tmp_path: Path,
) -> None:
    process = ServiceProcess.for_service(
        "audit", nats_url=nats_url, mongo_url=mongo_url, namespace=namespace, db_prefix=db_prefix,
        log_dir=tmp_path, extra_env={"PUSKESOS_AUTH_SECRET": SECRET, "PUSKESOS_AUDIT_CHUNK_MAX_RECORDS": "50",
                                     "PUSKESOS_AUDIT_CHECKPOINT_EVERY_RECORDS": "300"})
    db = mongo_client[f"{db_prefix}_audit"]
    events = [e for seed in range(100, 260) for e in build_flow(seed).events]  # 1,920 events

    async def publish(batch: list[Any]) -> int:
        acks = await asyncio.gather(*(jetstream.publish(subject_for(e, topology), encode_event(e),
                                                        headers=event_headers(e), stream=topology.events_stream)
                                      for e in batch))
        return max(a.seq for a in acks)

    try:
        process.start()
        process.wait_ready()
        parts = [events[i:i + 480] for i in range(0, len(events), 480)]
        last = 0
        for part in parts:
            target = last + len(part) // 3
            last = await publish(part)
            # kill it in the middle of appending this part, then start it again
            await wait_for(lambda t=target: _at_least(db, t), timeout=60, what=f"the log to pass {target}")
            assert process.kill() == -9
            process.start()
            process.wait_ready()
        await wait_for(lambda: _at_least(db, last), timeout=120, what="the log to catch up")
        await wait_logged(db, last, timeout=120)
    finally:
        process.stop()

    reader, client = LogReader.connect(mongo_url, f"{db_prefix}_audit")
    try:
        assert [r.seq for r in reader.records()] == list(range(1, last + 1))
        from puskesos_audit.settings import AuditSettings

        settings = AuditSettings(_env_file=None, auth_secret=SECRET)  # type: ignore[call-arg]
        report = queries.verify(reader, settings.checkpoint_key())
        assert report.ok, report.findings
        assert report.checkpoints_checked >= 3
    finally:
        client.close()
    assert await db["events"].count_documents({}) == last
    flow = build_flow(200)
    result = await trace(AuditStore(db), TraceKind.ALLOCATION, str(flow.ids["allocation_id"]), settings.index_key())
    assert {"CaseAssessed", "AidAllocated", "AidDisbursed", "NotificationSent"} <= {n.event_type for n in result.nodes}


async def _at_least(db: Any, seq: int) -> bool:
    return await _head(db) >= seq
