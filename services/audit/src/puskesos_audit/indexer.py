"""Writes the trace index of a chunk: event summaries, postings per entity key, origins.

Entities with many events (an aid round: tens of thousands) get an origin document but no
postings: nothing walks them event by event (history replay scans the log instead).

Postings are numbered per key (``p:<key>:0``, ``:1``...) so that a reader finds them all by
point lookups. The next number of each key is remembered here; a key not in memory (after a
restart, or written by another replica) is claimed at 0 and, when that insert is refused as a
duplicate, the real end is found by galloping point lookups. Re-indexing a chunk after a crash
may repeat a posting: readers de-duplicate by the event they point to.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import structlog
from bson import Binary
from puskesos_shared.tasks import honour_cancellation

from .chain import Record, RecordKind, chunk_records
from .errors import describe_error
from .extract import WIDE_KINDS, Extracted, extract
from .store import EVENTS, ORIGINS, POSTINGS, AuditStore, origin_id, posting_id

log = structlog.get_logger("puskesos.audit.indexer")

_CACHE_KEYS = 200_000


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
        "origin_of": list(x.origin_of),
        "body": Binary(record.body),
    }


def index_documents(records: Sequence[Record], chunk: int, index_key: bytes
                    ) -> tuple[list[dict[str, Any]], list[tuple[str, str, int]], list[dict[str, Any]]]:
    """Summaries, postings (key, summary id, seq) and origin documents of a chunk's records (pure)."""
    summaries: list[dict[str, Any]] = []
    postings: list[tuple[str, str, int]] = []
    origins: list[dict[str, Any]] = []
    for record in records:
        if record.kind != RecordKind.MESSAGE:
            continue
        x = extract(record.body, _headers(record.headers), index_key)
        doc_id = summary_id(x, record.seq)
        summaries.append(summary_document(record, chunk, x, doc_id))
        for key in (*x.keys, *(f"ch:{parent}" for parent, _ in x.parents)):
            if key.split(":", 1)[0] not in WIDE_KINDS:
                postings.append((key, doc_id, record.seq))
        for key in x.origin_of:
            origins.append({"_id": origin_id(key), "doc": doc_id, "seq": record.seq})
    return summaries, postings, origins


class Indexer:
    def __init__(self, store: AuditStore, index_key: bytes) -> None:
        self._store = store
        self._key = index_key
        self._next: OrderedDict[str, int] = OrderedDict()

    def forget(self) -> None:
        """Drops the remembered posting numbers (after a failed write, they may be ahead of the store)."""
        self._next.clear()

    async def index(self, records: Sequence[Record], chunk: int) -> None:
        summaries, postings, origins = index_documents(records, chunk, self._key)
        try:
            await self._insert_summaries(summaries, chunk)
            await self._store.insert_many(ORIGINS, origins)  # first definition wins
            await self._add_postings(postings)
        except BaseException:
            self.forget()
            raise

    async def _insert_summaries(self, summaries: list[dict[str, Any]], chunk: int) -> None:
        refused = await self._store.insert_many(EVENTS, summaries)
        if not refused:
            return
        again: list[dict[str, Any]] = []
        for i in refused:
            doc = summaries[i]
            existing = await self._store.get(EVENTS, doc["_id"])
            if existing is not None and existing.get("seq") == doc["seq"]:
                continue  # the same message indexed before (a re-index after a crash)
            # the same event id published twice under different sequences: keep both, say so
            again.append({**doc, "_id": f"s:{doc['seq']}", "duplicate_of": doc["_id"]})
        await self._store.insert_many(EVENTS, again)

    def _claim(self, key: str) -> int:
        n = self._next.pop(key, 0)
        self._next[key] = n + 1
        if len(self._next) > _CACHE_KEYS:
            self._next.popitem(last=False)
        return n

    async def _add_postings(self, postings: Sequence[tuple[str, str, int]]) -> None:
        pending = list(postings)
        while pending:
            claimed = [(key, self._claim(key)) for key, _, _ in pending]
            docs = [{"_id": posting_id(key, n), "key": key, "n": n, "doc": doc_id, "seq": seq}
                    for (key, n), (_, doc_id, seq) in zip(claimed, pending, strict=True)]
            refused = await self._store.insert_many(POSTINGS, docs)
            if not refused:
                return
            retry_from: dict[str, int] = {}
            for i in refused:
                key, n = claimed[i]
                retry_from[key] = max(retry_from.get(key, 0), n)
            await self._find_ends(retry_from)
            pending = [pending[i] for i in refused]

    async def _find_ends(self, occupied: dict[str, int]) -> None:
        """Finds the first free number of each key, many keys at a time."""
        limit = asyncio.Semaphore(32)

        async def find_end(key: str, taken: int) -> None:
            async with limit:
                end = await self._end_of(key, taken)
            self._next.pop(key, None)
            self._next[key] = end

        await asyncio.gather(*(find_end(k, n) for k, n in occupied.items()))

    async def _end_of(self, key: str, occupied: int) -> int:
        """The first free posting number of ``key``, knowing ``occupied`` is taken (galloping search)."""
        lo, step = occupied, 1
        while await self._store.exists(POSTINGS, posting_id(key, lo + step)):
            lo += step
            step *= 2
        hi = lo + step  # free; lo taken
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if await self._store.exists(POSTINGS, posting_id(key, mid)):
                lo = mid
            else:
                hi = mid
        return hi



class IndexFollower:
    """Indexes committed chunks in order, behind the appender (``meta.index`` is its position)."""

    def __init__(self, store: AuditStore, indexer: Indexer, wake: asyncio.Event | None = None,
                 poll_seconds: float = 1.0) -> None:
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
