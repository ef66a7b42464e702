"""Publishing the outboxes of many written documents at once (the bulk registry import).

The same guarantees as ``OutboxRelay.flush``, at batch speed: every entry goes to JetStream with
its ``Nats-Msg-Id`` (the event id) through async publishes, a bounded number in flight; the
entries of the documents whose publishes were all confirmed are then removed in one update.
A document with an unconfirmed entry keeps its outbox and goes through the relay's ordinary
flush; once that fails too (the broker is away) the relay's sweep publishes the rest later.
Nothing is lost, and a repeat is de-duplicated by the broker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import PubAck
from puskesos_shared.messaging import PublishError
from puskesos_shared.metrics import EVENTS_PUBLISHED
from puskesos_shared.mongo import Document
from puskesos_shared.outbox import OUTBOX_FIELD
from pymongo.asynchronous.collection import AsyncCollection

from .context import log

#: How long the batch waits for the broker's acknowledgements before handing over to the relay.
ACK_TIMEOUT_SECONDS = 30.0
Flush = Callable[[AsyncCollection[Document], str, Sequence[dict[str, Any]]], Awaitable[None]]


async def _confirmed(futures: list[asyncio.Future[PubAck]]) -> list[bool]:
    if not futures:
        return []
    try:
        results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), ACK_TIMEOUT_SECONDS)
    except TimeoutError:
        return [f.done() and not f.cancelled() and f.exception() is None for f in futures]
    return [not isinstance(r, BaseException) for r in results]


async def publish_outboxes(js: JetStreamContext, stream: str, collection: AsyncCollection[Document],
                           docs: Sequence[tuple[str, Sequence[dict[str, Any]]]], flush: Flush) -> int:
    """Publishes the entries of ``docs`` (``(document id, entries)``); returns how many were confirmed here.

    The JetStream context bounds the publishes in flight (``publish_async_max_pending``).
    """
    futures: list[asyncio.Future[PubAck]] = []
    owners: list[int] = []  # the document of each future
    try:
        for position, (_, entries) in enumerate(docs):
            for entry in entries:
                futures.append(await js.publish_async(entry["subject"], entry["body"].encode(),
                                                      headers=dict(entry["headers"]), stream=stream))
                owners.append(position)
    except Exception as exc:  # the connection is away: the relay's flush takes the rest
        log.warning("bulk_publish_interrupted", published=len(futures), error=f"{type(exc).__name__}: {exc}")
    acked = [0] * len(docs)
    for position, ok in zip(owners, await _confirmed(futures), strict=True):
        acked[position] += ok
    done = [(doc_id, entries) for (doc_id, entries), n in zip(docs, acked, strict=True) if n == len(entries)]
    if done:
        await collection.update_many({"_id": {"$in": [doc_id for doc_id, _ in done]}}, {"$set": {OUTBOX_FIELD: []}})
    for (doc_id, entries), n in zip(docs, acked, strict=True):
        if n != len(entries):
            try:
                await flush(collection, doc_id, entries)
            except PublishError as exc:  # the broker is away: the relay, now marked dirty, sweeps the rest
                log.warning("bulk_publish_deferred", collection=collection.name, error=str(exc))
                break
    for _, entries in done:
        for entry in entries:
            EVENTS_PUBLISHED.labels(event_type=entry.get("event_type", "?")).inc()
    return sum(len(entries) for _, entries in done)
