"""One subscriber's feed: its durable consumer on the events stream, read in order, in batches.

The notification service owns every outgoing copy of an event for an external subscriber, as it owns
the messages to residents: a consumer ``nats-<name>`` or ``webhook-<name>`` on ``{NS}_EVENTS`` filtered
to the subscriber's granted events. Each batch is made safe for the subscriber's account (the
``Pseudonymiser``) and handed to its sink, then acknowledged at once (acknowledge-all: the last message
of the batch acknowledges the batch). The consumer lets at most one batch be outstanding
(``max_ack_pending`` = batch size), so replicas take turns and the order of the stream is kept.

Where a feed starts is kept in the service's database (``feeds`` collection): new events only, a stream
sequence or a time. A replay (``replay``) records a new start and a new generation, then re-creates the
consumer there; since a durable consumer remembers what was acknowledged, a feed interrupted by a crash
resumes where it stopped. A relayed copy's ``Nats-Msg-Id`` is ``<name>:<generation>:<sequence>``, so a
batch sent twice is stored once in the feed, and a replay is a new generation that is stored again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import nats.errors
import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from puskesos_shared.messaging.dead_letter import DeadLetters
from puskesos_shared.messaging.streams import until_ready
from puskesos_shared.subscribers import Subscriber
from puskesos_shared.tasks import honour_cancellation
from puskesos_shared.topology import Topology
from pymongo.asynchronous.collection import AsyncCollection

log = structlog.get_logger("puskesos.notification.feeds")

Document = dict[str, Any]
Transform = Callable[[bytes], bytes | None]


@dataclass(frozen=True, slots=True)
class FeedStart:
    """Where a feed starts: new events only (neither given), a stream sequence, or a time."""

    from_seq: int | None = None
    since: dt.datetime | None = None

    def as_document(self) -> Document:
        return {"from_seq": self.from_seq, "since": self.since}

    @classmethod
    def from_document(cls, doc: Document) -> FeedStart:
        since = doc.get("since")
        if isinstance(since, dt.datetime) and since.tzinfo is None:
            since = since.replace(tzinfo=dt.UTC)
        return cls(from_seq=doc.get("from_seq"), since=since)

    def describe(self) -> str:
        if self.from_seq is not None:
            return f"stream sequence {self.from_seq}"
        if self.since is not None:
            return f"events since {self.since.isoformat()}"
        return "new events"


@dataclass(frozen=True, slots=True)
class Relayed:
    """One event of a batch, made safe for the subscriber."""

    msg: Msg
    subject: str
    body: bytes
    sequence: int
    event_id: str


class Sink(Protocol):
    async def deliver(self, subscriber: Subscriber, generation: int, items: Sequence[Relayed],
                      keep_alive: Callable[[], Awaitable[None]]) -> None:
        """Delivers the items in order; raises when the batch must be tried again later."""


def consumer_config(subscriber: Subscriber, topology: Topology, start: FeedStart, *, batch: int,
                    ack_wait: float) -> ConsumerConfig:
    name = subscriber.relay_consumer
    config = ConsumerConfig(
        durable_name=name, name=name, ack_policy=AckPolicy.ALL, ack_wait=ack_wait, max_deliver=-1,
        max_ack_pending=batch, filter_subjects=subscriber.event_filters(topology),
        description=f"feed of external subscriber {subscriber.name} ({subscriber.delivery.value}, "
                    f"pii {subscriber.pii.value})",
    )
    if start.from_seq is not None:
        config.deliver_policy, config.opt_start_seq = DeliverPolicy.BY_START_SEQUENCE, start.from_seq
    elif start.since is not None:
        config.deliver_policy, config.opt_start_time = DeliverPolicy.BY_START_TIME, start.since
    else:
        config.deliver_policy = DeliverPolicy.NEW
    return config


class FeedStates:
    """Per subscriber: its start, its generation and what it relayed (the ``feeds`` collection)."""

    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self.collection = collection

    async def get(self, name: str) -> Document | None:
        return await self.collection.find_one({"_id": name})

    async def ensure(self, subscriber: Subscriber, start: FeedStart) -> Document:
        now = dt.datetime.now(dt.UTC)
        await self.collection.update_one(
            {"_id": subscriber.name},
            {"$setOnInsert": {"generation": 1, "start": start.as_document(), "created_at": now, "relayed": 0,
                              "dead_lettered": 0, "last_seq": None}},
            upsert=True)
        doc = await self.get(subscriber.name)
        assert doc is not None
        return doc

    async def restart(self, name: str, start: FeedStart) -> int:
        doc = await self.collection.find_one_and_update(
            {"_id": name}, {"$inc": {"generation": 1}, "$set": {"start": start.as_document(),
                                                               "restarted_at": dt.datetime.now(dt.UTC)}},
            upsert=True, return_document=True)
        return int(doc["generation"]) if doc else 1

    async def progressed(self, name: str, *, relayed: int, dead_lettered: int, last_seq: int) -> None:
        await self.collection.update_one(
            {"_id": name}, {"$inc": {"relayed": relayed, "dead_lettered": dead_lettered},
                            "$max": {"last_seq": last_seq}, "$set": {"updated_at": dt.datetime.now(dt.UTC)}})

    async def forget(self, name: str) -> None:
        await self.collection.delete_one({"_id": name})


async def ensure_consumer(js: JetStreamContext, topology: Topology, config: ConsumerConfig) -> None:
    """Creates the consumer unless it exists (an existing one keeps its position)."""
    try:
        await js.consumer_info(topology.events_stream, config.durable_name or "")
        return
    except NotFoundError:
        pass
    await until_ready(partial(js.add_consumer, topology.events_stream, config), f"consumer {config.durable_name}")


async def delete_consumer(js: JetStreamContext, topology: Topology, name: str) -> None:
    with suppress(NotFoundError):
        await js.delete_consumer(topology.events_stream, name)


class FeedWorker:
    """Runs one subscriber's feed until cancelled."""

    def __init__(self, js: JetStreamContext, topology: Topology, subscriber: Subscriber, *, transform: Transform,
                 sink: Sink, states: FeedStates, dead_letters: DeadLetters, batch: int, ack_wait: float,
                 fetch_timeout: float = 5.0, retry_delay: float = 1.0) -> None:
        self.js, self.topology, self.subscriber = js, topology, subscriber
        self.transform, self.sink, self.states, self.dead_letters = transform, sink, states, dead_letters
        self.batch, self.ack_wait, self.fetch_timeout, self.retry_delay = batch, ack_wait, fetch_timeout, retry_delay

    async def run(self) -> None:
        while True:  # a replay re-creates the consumer (maybe on another replica): bind to the new one
            await self._run_bound()
            await asyncio.sleep(self.retry_delay)

    async def _run_bound(self) -> None:
        name = self.subscriber.relay_consumer
        state = await self.states.ensure(self.subscriber, FeedStart())
        config = consumer_config(self.subscriber, self.topology, FeedStart.from_document(state["start"]),
                                 batch=self.batch, ack_wait=self.ack_wait)
        await ensure_consumer(self.js, self.topology, config)
        sub = await self.js.pull_subscribe_bind(name, self.topology.events_stream)
        log.info("feed_started", subscriber=self.subscriber.name, consumer=name, generation=state["generation"])
        try:
            while True:
                honour_cancellation()
                try:
                    msgs = await sub.fetch(self.batch, timeout=self.fetch_timeout)
                except (nats.errors.TimeoutError, TimeoutError):
                    continue
                except NotFoundError:
                    log.info("feed_consumer_recreated", subscriber=self.subscriber.name)
                    return
                except nats.errors.Error as exc:
                    log.warning("feed_fetch_failed", subscriber=self.subscriber.name, error=type(exc).__name__)
                    await asyncio.sleep(self.retry_delay)
                    continue
                if msgs:  # nats-py's fetch returns [] when a pull ends on a 408/404 status with nothing
                    await self._handle(msgs)
        finally:
            with suppress(Exception):
                await sub.unsubscribe()

    async def _handle(self, msgs: list[Msg]) -> None:
        state = await self.states.get(self.subscriber.name)
        generation = int(state["generation"]) if state else 1
        items: list[Relayed] = []
        dead = 0
        for msg in msgs:
            seq = int(msg.metadata.sequence.stream)
            body = self.transform(msg.data)
            headers = dict(msg.headers or {})
            if body is None:  # an event this release cannot make safe for the account: never passed on
                await self.dead_letters.send(
                    body=msg.data, original_headers=headers, original_subject=msg.subject,
                    original_stream=self.topology.events_stream, original_sequence=seq,
                    consumer=self.subscriber.relay_consumer, deliveries=int(msg.metadata.num_delivered),
                    reason=f"cannot be made safe for a subscriber with pii {self.subscriber.pii.value} "
                           "(an event type or version this release does not know)")
                dead += 1
                continue
            items.append(Relayed(msg, msg.subject, body, seq, headers.get("Nats-Msg-Id", "")))

        async def keep_alive() -> None:
            for msg in msgs:
                with suppress(Exception):
                    await msg.in_progress()

        try:
            await self.sink.deliver(self.subscriber, generation, items, keep_alive)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the whole batch again, in order, after a pause
            log.warning("feed_batch_failed_will_retry", subscriber=self.subscriber.name, error=type(exc).__name__,
                        first_seq=int(msgs[0].metadata.sequence.stream))
            # Given back at once (no redelivery delay): redelivered messages come before any newer one, so
            # the next batch is this one again. With a delayed NAK a newer event could be delivered first,
            # and acknowledging it (acknowledge-all) would acknowledge this batch unsent. The pause is here,
            # before the next fetch, with no pull request open.
            for msg in msgs:
                with suppress(Exception):
                    await msg.nak()
            await asyncio.sleep(self.retry_delay)
            return
        await msgs[-1].ack_sync()  # acknowledge-all: the batch is done
        await self.states.progressed(self.subscriber.name, relayed=len(items), dead_lettered=dead,
                                     last_seq=int(msgs[-1].metadata.sequence.stream))
