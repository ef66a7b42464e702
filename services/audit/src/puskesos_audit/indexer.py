"""Writes the trace index of a chunk: event summaries (with the keys they are found by) and origins.

Each summary lists its ``index_keys``: the entity keys it concerns and ``ch:<parent event id>``
for each event it comes from; a trace finds an entity's events, or an event's children, with
one query on the multikey index of that field. Entities with many events (an aid round: tens of
thousands) are left out of ``index_keys`` (nothing walks them event by event; history replay
scans the log instead) but get an origin document like every entity.

Every document has a deterministic ``_id``, so indexing a chunk again (after a crash, or by a
second replica) inserts nothing twice: the duplicates are refused and ignored.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import structlog
from bson import Binary
from puskesos_shared.tasks import honour_cancellation

from .chain import Record, RecordKind, chunk_records
from .errors import describe_error
from .extract import WIDE_KINDS, Extracted, extract
from .store import EVENTS, INDEX_KEYS, ORIGINS, AuditStore, origin_id

log = structlog.get_logger("puskesos.audit.indexer")


def summary_id(x: Extracted, seq: int) -> str:
    return f"e:{x.event_id}" if x.decoded and x.event_id else f"s:{seq}"


def _headers(raw: bytes) -> dict[str, str]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def summary_document(record: Record, chunk: int, x: Extracted, doc_id: str) -> dict[str, Any]:
    env = x.envelope
    return {
        "_id": doc_id, "seq": record.seq, "chunk": chunk, "ts": record.ts, "subject": record.subject,
        "hash": record.hash, "event_id": x.event_id, "event_type": x.event_type,
        "schema_version": x.schema_version, "error": x.error,
        "occurred_at": env.get("occurred_at"), "producer": env.get("producer"), "actor": env.get("actor"),
        "village_code": env.get("village_code"), "correlation_id": env.get("correlation_id"),
        "causation_id": env.get("causation_id"),
        "parents": [{"id": p, "rel": rel} for p, rel in x.parents], "keys": list(x.keys),
        "origin_of": list(x.origin_of), INDEX_KEYS: index_keys(x),
        "body": Binary(record.body),
    }


def index_documents(records: Sequence[Record], chunk: int, index_key: bytes
                    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Summaries and origin documents of a chunk's records (pure)."""
    summaries: list[dict[str, Any]] = []
    origins: list[dict[str, Any]] = []
    for record in records:
        if record.kind != RecordKind.MESSAGE:
            continue
        x = extract(record.body, _headers(record.headers), index_key)
        doc_id = summary_id(x, record.seq)
        summaries.append(summary_document(record, chunk, x, doc_id))
        for key in x.origin_of:
            origins.append({"_id": origin_id(key), "doc": doc_id, "seq": record.seq})
    return summaries, origins


def index_keys(x: Extracted) -> list[str]:
    """The keys a message is found by: its narrow entity keys and the events it comes from."""
    keys = (*x.keys, *(f"ch:{parent}" for parent, _ in x.parents))
    return list(dict.fromkeys(k for k in keys if k.split(":", 1)[0] not in WIDE_KINDS))


class Indexer:
    def __init__(self, store: AuditStore, index_key: bytes) -> None:
        self._store = store
        self._key = index_key

    async def index(self, records: Sequence[Record], chunk: int) -> None:
        summaries, origins = index_documents(records, chunk, self._key)
        await self._insert_summaries(summaries)
        await self._store.insert_many(ORIGINS, origins)  # first definition wins

    async def _insert_summaries(self, summaries: list[dict[str, Any]]) -> None:
        refused = await self._store.insert_many(EVENTS, summaries)
        if not refused:
            return
        existing = await self._store.get_many(EVENTS, [summaries[i]["_id"] for i in refused])
        again: list[dict[str, Any]] = []
        for i, found in zip(refused, existing, strict=True):
            doc = summaries[i]
            if found is not None and found.get("seq") == doc["seq"]:
                continue  # the same message indexed before (a re-index after a crash)
            # the same event id published twice under different sequences: keep both, say so; a trace
            # finds the event once (by its first copy)
            again.append({**doc, "_id": f"s:{doc['seq']}", "duplicate_of": doc["_id"], INDEX_KEYS: []})
        await self._store.insert_many(EVENTS, again)


class IndexFollower:
    """Indexes committed chunks in order, behind the appender (``meta.index`` is its position)."""

    def __init__(self, store: AuditStore, indexer: Indexer, wake: asyncio.Event | None = None,
                 poll_seconds: float = 10.0) -> None:
        self.store, self.indexer = store, indexer
        self.wake = wake or asyncio.Event()
        self.poll_seconds = poll_seconds
        self.position = -1

    async def catch_up(self) -> int:
        """Indexes every chunk written after the index's position; returns how many."""
        self.position = await self.store.index_position()
        done = 0
        while True:
            doc = await self.store.get_chunk(self.position + 1)
            if doc is None:
                return done
            number = self.position + 1
            await self.indexer.index(chunk_records(doc), number)
            await self.store.advance_index(number)
            self.position = number
            done += 1

    async def run(self) -> None:
        delay = 0.5
        while True:
            self.wake.clear()
            try:
                await self.catch_up()
                delay = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("audit_index_failed", error=describe_error(exc), retry_in=delay)
                await asyncio.sleep(delay)  # back-off before retrying a failing dependency
                delay = min(delay * 2, 30.0)
                continue
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=self.poll_seconds)
            except TimeoutError:
                honour_cancellation()
