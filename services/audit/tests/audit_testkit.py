"""Helpers for the audit service's tests: settings, publishing, waiting, tokens, tampering."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from audit_flow import RULES_DIR
from nats.js import JetStreamContext
from puskesos_audit.chain import Record, chunk_id, chunk_records, rebuild_chunk
from puskesos_audit.settings import AuditSettings
from puskesos_audit.store import CHUNKS
from puskesos_shared.auth import Officer, issue_token
from puskesos_shared.contracts import Event, subject_for
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.messaging import encode_event, event_headers
from puskesos_shared.topology import Topology
from pymongo.asynchronous.database import AsyncDatabase

SECRET = "audit-tests-secret-0123456789abcdefgh"
T = TypeVar("T")


def settings_for(nats_url: str, mongo_url: str, namespace: str, db_prefix: str, **extra: Any) -> AuditSettings:
    values: dict[str, Any] = {
        "nats_url": nats_url, "mongo_url": mongo_url, "namespace": namespace, "mongo_db": f"{db_prefix}_audit",
        "auth_secret": SECRET, "log_json": True, "audit_rules_dir": str(RULES_DIR),
        "audit_fetch_timeout_seconds": 0.2, **extra,
    }
    return AuditSettings(_env_file=None, **values)  # type: ignore[call-arg]


def token(role: OfficerRole = OfficerRole.AUDITOR, *scope: str) -> str:
    officer = Officer(officer_id=f"{role.value}-1", role=role, scope=scope or ("35.73",))
    return issue_token(officer, SECRET)


def auth(role: OfficerRole = OfficerRole.AUDITOR, *scope: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(role, *scope)}"}


async def publish(js: JetStreamContext, topology: Topology, events: Sequence[Event]) -> int:
    """Publishes events as the services do (Nats-Msg-Id = event id); returns the last stream sequence."""
    seq = 0
    for event in events:
        ack = await js.publish(subject_for(event, topology), encode_event(event), headers=event_headers(event),
                               stream=topology.events_stream)
        seq = ack.seq
    return seq


async def publish_raw(js: JetStreamContext, topology: Topology, subject_tail: str, body: bytes, msg_id: str) -> int:
    ack = await js.publish(f"{topology.namespace}.events.{subject_tail}", body, headers={"Nats-Msg-Id": msg_id},
                           stream=topology.events_stream)
    return int(ack.seq)


async def wait_for(condition: Callable[[], Awaitable[T]], *, timeout: float = 30.0, what: str = "condition") -> T:
    """Polls ``condition`` until it returns a truthy value; fails with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = await condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def wait_logged(db: AsyncDatabase[dict[str, Any]], seq: int, timeout: float = 30.0) -> None:
    """Waits until the log holds ``seq`` and the trace index has caught up with the log."""

    async def head_reached() -> bool:
        head = await db["meta"].find_one({"_id": "head"})
        index = await db["meta"].find_one({"_id": "index"})
        return (head is not None and index is not None and int(head.get("seq", 0)) >= seq
                and int(index["chunk"]) >= int(head["chunk"]))

    await wait_for(head_reached, timeout=timeout, what=f"the audit log and its index to reach sequence {seq}")


# -- tampering (what someone with write access to the database could do) -------------------------
async def load_chunk(db: AsyncDatabase[dict[str, Any]], number: int) -> tuple[dict[str, Any], list[Record]]:
    doc = await db[CHUNKS].find_one({"_id": chunk_id(number)})
    assert doc is not None, f"chunk {number} not found"
    return doc, chunk_records(doc)


async def rewrite_chunk(db: AsyncDatabase[dict[str, Any]], doc: dict[str, Any], records: list[Record]) -> None:
    new = rebuild_chunk(doc, records)
    for field in ("total",):
        if field in doc:
            new[field] = doc[field]
    await db[CHUNKS].replace_one({"_id": doc["_id"]}, new)
