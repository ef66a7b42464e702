"""The outbox inside the document: events a write produces are stored with the write.

MongoDB-compatible stores here have no multi-document transactions, so the events go into
the written document itself (field ``_outbox``) in the same single-document write. After
the broker confirms them they are pulled out. At start-up, and periodically, every document
still holding entries is republished; the broker's duplicate window (``Nats-Msg-Id`` = the
event id) keeps each event exactly once in the stream even if the crash came after the
publish and before the pull.

The removal (``$pullAll`` of exactly the entries sent) is an atomic update, so it cannot remove an
entry a concurrent write added meanwhile; that entry is published by its own writer or the sweep.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from contextlib import suppress
from typing import Any

import structlog
from nats.js import JetStreamContext
from nats.js.api import PubAck
from pymongo.asynchronous.collection import AsyncCollection

from .contracts.envelope import Event
from .contracts.registry import subject_for
from .messaging.publisher import EventPublisher, PublishError, encode_event, event_headers
from .metrics import EVENTS_PUBLISHED
from .mongo import Document
from .topology import Topology

OUTBOX_FIELD = "_outbox"
#: Present exactly when a document holds an entry (every entry has an ``event_id``): the sweep's index key.
PENDING_KEY = f"{OUTBOX_FIELD}.0.event_id"
log = structlog.get_logger("puskesos.outbox")


def outbox_entries(events: Iterable[Event], topology: Topology) -> list[dict[str, Any]]:
    """Entries to store in ``_outbox`` (``$push`` with ``$each``, or in the inserted document)."""
    return [
        {
            "event_id": str(e.event_id),
            "event_type": e.event_type,
            "subject": subject_for(e, topology),
            "body": encode_event(e).decode(),
            "headers": event_headers(e),
        }
        for e in events
    ]


#: How long ``flush_many`` waits for the broker's acknowledgements before handing over to ``flush``.
ACK_TIMEOUT_SECONDS = 30.0


async def _confirmed(futures: list[asyncio.Future[PubAck]]) -> list[bool]:
    if not futures:
        return []
    try:
        results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), ACK_TIMEOUT_SECONDS)
    except TimeoutError:
        return [f.done() and not f.cancelled() and f.exception() is None for f in futures]
    return [not isinstance(r, BaseException) for r in results]


class OutboxRelay:
    """Publishes outbox entries and removes them once the broker has confirmed them."""

    def __init__(self, publisher: EventPublisher, collections: Sequence[AsyncCollection[Document]]) -> None:
        self._publisher = publisher
        self._collections = collections  # the service's list: collections added in configure() count
        # Set when a flush failed: only then does the periodic sweep scan the collections
        # (start-up always scans, which covers a crash between a write and its flush).
        self._dirty = False

    async def flush(
        self, collection: AsyncCollection[Document], doc_id: Any, entries: Sequence[dict[str, Any]]
    ) -> None:
        """Publishes ``entries`` of one document in order, then removes them from it.

        ``entries`` must be exactly as stored (same keys in the same order): removal matches whole elements.

        On a publish error the entries stay in the document; the periodic sweep retries them.
        """
        published: list[dict[str, Any]] = []
        try:
            for entry in entries:
                await self._publisher.publish_raw(entry["subject"], entry["body"].encode(), entry["headers"])
                EVENTS_PUBLISHED.labels(event_type=entry.get("event_type", "?")).inc()
                published.append(entry)
        except BaseException:
            self._dirty = True
            raise
        finally:
            if published:
                # $pullAll removes exactly the entries sent, never one added since
                await collection.update_one({"_id": doc_id}, {"$pullAll": {OUTBOX_FIELD: published}})

    async def flush_many(self, js: JetStreamContext, stream: str, collection: AsyncCollection[Document],
                         docs: Sequence[tuple[Any, Sequence[dict[str, Any]]]]) -> int:
        """``flush`` for many freshly written documents at batch speed (a bulk import): every entry goes
        out as an async JetStream publish (its ``Nats-Msg-Id`` header is the event id; ``js`` bounds the
        publishes in flight), the outboxes whose entries were all confirmed are emptied in one update,
        and a document with an unconfirmed entry goes through ``flush`` (then the sweep, if the broker
        is away). Only for documents no other writer adds entries to meanwhile (the update empties the
        whole outbox). Returns how many entries were confirmed here.
        """
        futures: list[asyncio.Future[PubAck]] = []
        owners: list[int] = []  # the document of each future
        try:
            for position, (_, entries) in enumerate(docs):
                for entry in entries:
                    futures.append(await js.publish_async(entry["subject"], entry["body"].encode(),
                                                          headers=dict(entry["headers"]), stream=stream))
                    owners.append(position)
        except Exception as exc:  # the connection is away: flush (and the sweep) take the rest
            log.warning("outbox_bulk_publish_interrupted", published=len(futures),
                        error=f"{type(exc).__name__}: {exc}")
        acked = [0] * len(docs)
        for position, ok in zip(owners, await _confirmed(futures), strict=True):
            acked[position] += ok
        done = [(doc_id, entries) for (doc_id, entries), n in zip(docs, acked, strict=True) if n == len(entries)]
        if done:
            await collection.update_many({"_id": {"$in": [doc_id for doc_id, _ in done]}},
                                         {"$set": {OUTBOX_FIELD: []}})
        for (doc_id, entries), n in zip(docs, acked, strict=True):
            if n != len(entries):
                try:
                    await self.flush(collection, doc_id, entries)
                except PublishError as exc:  # the broker is away: the relay, now marked dirty, sweeps the rest
                    log.warning("outbox_bulk_publish_deferred", collection=collection.name, error=str(exc))
                    break
        for _, entries in done:
            for entry in entries:
                EVENTS_PUBLISHED.labels(event_type=entry.get("event_type", "?")).inc()
        return sum(len(entries) for _, entries in done)

    async def ensure_indexes(self) -> None:
        """A sparse index of the documents holding outbox entries, so the sweep reads only those
        (the local engine and MongoDB both serve ``$exists: true`` from it) instead of scanning
        every document of a collection that grows (a 250,000-household registry: ~1 s a sweep)."""
        for collection in self._collections:
            await collection.create_index([(PENDING_KEY, 1)], sparse=True, name="outbox_pending")

    async def republish_pending(self) -> int:
        """Publishes every entry still waiting in any document; returns how many were sent."""
        self._dirty = False
        sent = 0
        for collection in self._collections:
            cursor = collection.find({PENDING_KEY: {"$exists": True}}, {OUTBOX_FIELD: 1})
            async for doc in cursor:
                entries = doc.get(OUTBOX_FIELD) or []
                try:
                    await self.flush(collection, doc["_id"], entries)
                except PublishError as exc:
                    log.warning("outbox_republish_failed", collection=collection.name, error=str(exc))
                    self._dirty = True
                    return sent
                sent += len(entries)
        if sent:
            log.info("outbox_republished", events=sent)
        return sent

    async def run_sweeper(self, interval_seconds: float = 5.0, full_scan_every: int = 60) -> None:
        """Sweeps forever (cancel the task to stop): retries entries a failed publish left behind.

        A scan runs after a failed flush, and otherwise every ``full_scan_every`` intervals as a
        safety net (an entry whose flush was interrupted by cancellation, say).
        """
        ticks = 0
        while True:
            await asyncio.sleep(interval_seconds)
            ticks += 1
            if self._dirty or ticks % full_scan_every == 0:
                with suppress(Exception):
                    await self.republish_pending()
