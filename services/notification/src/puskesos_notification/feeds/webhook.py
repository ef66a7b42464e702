"""A webhook subscriber's sink: CloudEvents 1.0, structured mode, signed, at least once, in order.

Each event is one ``POST`` of ``application/cloudevents+json``: ``id`` is the event id (a repeat is
recognisable), ``type`` is ``id.puskesos.<producer>.<event>.v<n>``, ``source`` the producing service,
``time`` when it happened, ``dataschema`` the published schema of the copy, the extension
``puskesossequence`` its place in the events stream (ascending within a feed), and ``data`` the event
made safe for the subscriber's account. The ``Puskesos-Signature`` header is
``t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``: the receiver checks both, so a
captured request cannot be replayed later (``puskesos_shared.subscribers.verify``).

Order: the next event is sent only once the previous one was accepted (2xx). A timeout, a connection
error, 408/425/429 or a 5xx is retried with exponential backoff (capped at ``backoff_max``) for up to
``give_up_after`` seconds; any other 4xx, or running out of time, sends the event to the dead-letter
stream (consumer ``webhook-<name>``; ``puskesos dlq redrive`` sends it again) and the feed goes on.
Every outcome is written to the delivery log (``feed_deliveries``): delivered, dead-lettered or
re-driven, with the attempts and the last error (a status code or an error type; never a body).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import httpx
import structlog
from puskesos_shared.messaging.dead_letter import DeadLetters
from puskesos_shared.messaging.headers import DLQ_ORIGINAL_SEQUENCE
from puskesos_shared.subscribers import SIGNATURE_HEADER, Subscriber, sign
from puskesos_shared.topology import Topology
from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection

from .worker import Relayed

log = structlog.get_logger("puskesos.notification.webhooks")
Document = dict[str, Any]
RETRYABLE_STATUS = frozenset({408, 425, 429})
CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"


def cloud_event(body: bytes, *, namespace: str, sequence: int, pii: str) -> bytes:
    """The CloudEvents document of an event already made safe for the subscriber."""
    event = json.loads(body)
    producer = str(event.get("producer", "unknown"))
    subject_name = _subject_name(str(event.get("event_type", "")))
    version = event.get("schema_version", 1)
    document = {
        "specversion": "1.0",
        "id": str(event.get("event_id")),
        "source": f"urn:puskesos:{namespace}:{producer}",
        "type": f"id.puskesos.{producer}.{subject_name}.v{version}",
        "time": event.get("occurred_at"),
        "datacontenttype": "application/json",
        "dataschema": f"urn:puskesos:schema:feeds:{pii}:{event.get('event_type')}.v{version}",
        "puskesossequence": sequence,
        "data": event,
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def _subject_name(event_type: str) -> str:
    out = []
    for i, ch in enumerate(event_type):
        if ch.isupper() and i:
            out.append("_")
        out.append(ch.lower())
    return "".join(out) or "unknown"


class DeliveryLog:
    """The ``feed_deliveries`` collection: one document per subscriber, generation and event."""

    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self.collection = collection

    async def create_indexes(self) -> None:
        await self.collection.create_index([("subscriber", 1), ("sequence", 1)])
        await self.collection.create_index([("subscriber", 1), ("status", 1)])

    async def record(self, entries: Sequence[Document]) -> None:
        if entries:
            await self.collection.bulk_write([UpdateOne({"_id": e["_id"]}, {"$set": e}, upsert=True)
                                              for e in entries], ordered=True)

    async def counts(self, subscriber: str) -> dict[str, int]:
        out: dict[str, int] = {}
        async for row in await self.collection.aggregate([{"$match": {"subscriber": subscriber}},
                                                          {"$group": {"_id": "$status", "n": {"$sum": 1}}}]):
            out[str(row["_id"])] = int(row["n"])
        return out


class GiveUp(Exception):
    """The receiver refused the event for good, or did not take it in time."""


class WebhookSink:
    def __init__(self, topology: Topology, deliveries: DeliveryLog, dead_letters: DeadLetters,
                 secret_of: Callable[[str], bytes | None], *, client: httpx.AsyncClient | None = None,
                 timeout: float = 10.0, backoff_initial: float = 0.5, backoff_max: float = 10.0,
                 give_up_after: float = 24 * 3600.0) -> None:
        self.topology, self.deliveries, self.dead_letters = topology, deliveries, dead_letters
        self.secret_of = secret_of
        self.client = client or httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        self.backoff_initial, self.backoff_max, self.give_up_after = backoff_initial, backoff_max, give_up_after

    async def close(self) -> None:
        await self.client.aclose()

    async def deliver(self, subscriber: Subscriber, generation: int, items: Sequence[Relayed],
                      keep_alive: Callable[[], Awaitable[None]]) -> None:
        done: list[Document] = []
        secret = self.secret_of(subscriber.name)  # read once a batch, not once a POST
        for item in items:
            entry = {"_id": f"{subscriber.name}:{generation}:{item.sequence}", "subscriber": subscriber.name,
                     "generation": generation, "sequence": item.sequence, "event_id": item.event_id}
            started = dt.datetime.now(dt.UTC)
            try:
                attempts, status = await self.post(subscriber, secret, item.body, item.sequence, keep_alive)
                done.append(entry | {"status": "delivered", "attempts": attempts, "last_status": status,
                                     "first_attempt_at": started, "delivered_at": dt.datetime.now(dt.UTC)})
            except GiveUp as exc:
                await self.dead_letters.send(
                    body=item.msg.data, original_headers=dict(item.msg.headers or {}), original_subject=item.subject,
                    original_stream=self.topology.events_stream, original_sequence=item.sequence,
                    consumer=subscriber.relay_consumer, deliveries=int(item.msg.metadata.num_delivered),
                    reason=str(exc))
                done.append(entry | {"status": "dead_lettered", "attempts": exc.args[1] if len(exc.args) > 1 else 0,
                                     "last_error": str(exc), "first_attempt_at": started})
                log.warning("webhook_dead_lettered", subscriber=subscriber.name, sequence=item.sequence,
                            reason=str(exc))
            if len(done) >= 100:
                await self.deliveries.record(done)
                done = []
        await self.deliveries.record(done)

    async def post(self, subscriber: Subscriber, secret: bytes | None, body: bytes, sequence: int,
                   keep_alive: Callable[[], Awaitable[None]] | None = None,
                   give_up_after: float | None = None) -> tuple[int, int]:
        """POSTs one event until it is accepted; returns (attempts, status). Raises GiveUp."""
        if secret is None:
            raise GiveUp(f"no signing secret for subscriber {subscriber.name}", 0)
        document = cloud_event(body, namespace=self.topology.namespace, sequence=sequence, pii=subscriber.pii.value)
        assert subscriber.webhook_url is not None
        patience = self.give_up_after if give_up_after is None else give_up_after
        deadline = time.monotonic() + patience
        delay, attempt, last_alive = self.backoff_initial, 0, time.monotonic()
        while True:
            attempt += 1
            headers = {"Content-Type": CONTENT_TYPE, SIGNATURE_HEADER: sign(secret, document, int(time.time()))}
            try:
                response = await self.client.post(subscriber.webhook_url, content=document, headers=headers)
                status, error = response.status_code, f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                status, error = 0, type(exc).__name__
            if 200 <= status < 300:
                if attempt > 1:
                    log.info("webhook_delivered_after_retries", subscriber=subscriber.name, sequence=sequence,
                             attempts=attempt)
                return attempt, status
            if status and status < 500 and status not in RETRYABLE_STATUS:
                raise GiveUp(f"refused by the receiver: {error}", attempt)
            if time.monotonic() + delay > deadline:
                raise GiveUp(f"not accepted within {patience:.0f} s: {error}", attempt)
            if attempt == 1 or attempt % 10 == 0:
                log.warning("webhook_retrying", subscriber=subscriber.name, sequence=sequence, attempt=attempt,
                            error=error, retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff_max)
            if keep_alive is not None and time.monotonic() - last_alive > 5:
                await keep_alive()
                last_alive = time.monotonic()

    async def redrive(self, subscriber: Subscriber, original: bytes, headers: Mapping[str, str],
                      transform: Callable[[bytes], bytes | None], *, patience: float = 60.0) -> None:
        """Sends a dead-lettered event again (same CloudEvents id, so the receiver's repeat check makes it one
        effect), retrying for up to ``patience`` seconds; raises when it is still not accepted."""
        body = transform(original)
        if body is None:
            raise GiveUp("the event cannot be made safe for this subscriber", 0)
        sequence = int(headers.get(DLQ_ORIGINAL_SEQUENCE, "0") or 0)
        attempts, status = await self.post(subscriber, self.secret_of(subscriber.name), body, sequence,
                                           give_up_after=patience)
        event_id = headers.get("Nats-Msg-Id", "")
        await self.deliveries.record([{"_id": f"{subscriber.name}:redrive:{sequence}", "subscriber": subscriber.name,
                                       "sequence": sequence, "event_id": event_id, "status": "redriven",
                                       "attempts": attempts, "last_status": status,
                                       "delivered_at": dt.datetime.now(dt.UTC)}])
