"""One subscriber's feed: its durable consumer on the events stream, read in order, in batches.

The notification service owns every outgoing copy of an event for an external subscriber, as it owns
the messages to residents: a consumer ``nats-<name>`` or ``webhook-<name>`` on ``{NS}_EVENTS`` filtered
to the subscriber's granted events, acknowledge-all (the last message of a batch acknowledges it).

One replica at a time: the consumer has a ``pinned_client`` priority group (ADR-42, nats-server 2.11+),
so the server delivers to one pinned replica and keeps the others' pulls waiting; a standby is pinned
when the pinned replica has not pulled for ``ack_wait``, after its unacknowledged events came back.
Within the pinned replica, up to ``depth`` batches are outstanding (``max_ack_pending``): a reader task
reads ahead (``BatchPuller``: JetStream's pull requests on a callback subscription, a third of the cost
of nats-py's ``fetch``, on a connection of the feeds' own) while the writer finishes the batch before.
Each batch is made safe for the account (the ``Pseudonymiser``) and stored in order: for a NATS feed
by the worker process (``copier``), for a webhook by its sink here. A failed batch is given back,
after the batches read behind it have come, with them, so it comes again before anything newer.

Where a feed starts is kept in the service's database (``feeds`` collection): new events only, a stream
sequence or a time. A replay (``replay``) records a new start and a new generation, then re-creates the
consumer there; since a durable consumer remembers what was acknowledged, a feed interrupted by a crash
resumes where it stopped. A relayed copy's ``Nats-Msg-Id`` is ``<name>:<generation>:<sequence>``, so a
batch sent twice is stored once in the feed, and a replay is a new generation that is stored again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import nats.errors
import structlog
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import APIError, NotFoundError
from puskesos_shared.contracts.pseudonymous import PiiLevel
from puskesos_shared.messaging.dead_letter import DeadLetters
from puskesos_shared.messaging.pull import JS_API_PREFIX, BatchPuller, ConsumerGone, stream_sequence
from puskesos_shared.messaging.streams import until_ready
from puskesos_shared.subscribers import Subscriber
from puskesos_shared.topology import Topology
from pymongo.asynchronous.collection import AsyncCollection

from .copier import Batch, Copier
from .copies import FeedHeaders, FeedSubjects
from .transform import FeedTransform

log = structlog.get_logger("puskesos.notification.feeds")

Document = dict[str, Any]
#: JetStream's "consumer already exists" (another replica created it first).
CONSUMER_EXISTS = 10148
#: Batches waiting in the worker process above which this process makes the next batch's copies.
COPIER_BACKLOG = 2


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


#: The consumer's priority group (ADR-42 ``pinned_client``): one replica at a time relays a feed.
RELAY_GROUP = "relay"


def _created_config(config: ConsumerConfig, pin_timeout: float) -> dict[str, Any]:
    """The consumer's configuration as JetStream's API takes it, with its priority group (nats-py's
    ``ConsumerConfig`` has no fields for them)."""
    return {**config.as_dict(), "priority_policy": "pinned_client", "priority_groups": [RELAY_GROUP],
            "priority_timeout": int(pin_timeout * 1_000_000_000)}


async def _api(nc: NatsClient, subject: str, request: dict[str, Any], timeout: float) -> dict[str, Any]:
    reply = await nc.request(f"{JS_API_PREFIX}.{subject}", json.dumps(request).encode(), timeout=timeout)
    answer: dict[str, Any] = json.loads(reply.data)
    if error := answer.get("error"):
        APIError.from_error(error)  # raises NotFoundError, ServiceUnavailableError... as nats-py does
    return answer


async def ensure_consumer(nc: NatsClient, topology: Topology, config: ConsumerConfig, *, pin_timeout: float,
                          timeout: float = 5.0) -> None:
    """Creates the consumer unless it exists (an existing one keeps its position).

    A consumer made by an earlier release has no priority group, and JetStream cannot add one to an
    existing consumer: it is replaced by one that starts after its acknowledgement floor."""
    stream, name = topology.events_stream, config.durable_name or ""
    try:
        info = await until_ready(partial(_api, nc, f"CONSUMER.INFO.{stream}.{name}", {}, timeout), f"consumer {name}")
    except NotFoundError:
        info = None
    if info is not None:
        if info["config"].get("priority_policy") == "pinned_client":
            return
        floor = int((info.get("ack_floor") or {}).get("stream_seq") or 0)
        config.deliver_policy, config.opt_start_seq, config.opt_start_time = (
            DeliverPolicy.BY_START_SEQUENCE, floor + 1, None)
        log.info("feed_consumer_replaced_for_pinning", consumer=name, from_seq=floor + 1)
        with suppress(NotFoundError):
            await _api(nc, f"CONSUMER.DELETE.{stream}.{name}", {}, timeout)
    request = {"stream_name": stream, "config": _created_config(config, pin_timeout), "action": "create"}
    try:
        await until_ready(partial(_api, nc, f"CONSUMER.CREATE.{stream}.{name}", request, timeout), f"consumer {name}")
    except APIError as exc:
        if exc.err_code != CONSUMER_EXISTS:  # another replica created it first
            raise


async def delete_consumer(js: JetStreamContext, topology: Topology, name: str) -> None:
    with suppress(NotFoundError):
        await js.delete_consumer(topology.events_stream, name)


@dataclass(frozen=True, slots=True)
class _Copied:
    """A batch made safe: which of its events could not be, and its copies (``None`` when the worker
    process stored them itself)."""

    unsafe: list[int]
    copies: list[bytes | None] | None


@dataclass(slots=True)
class _Fetched:
    """A batch read from the consumer, being made safe (and stored, by the worker process)."""

    msgs: list[Msg]
    copied: asyncio.Task[_Copied]
    generation: int

    def abandon(self) -> None:
        self.copied.cancel()


class _Reader:
    """Reads a feed's batches ahead of its writer: up to ``depth`` batches are outstanding (read, being
    made safe, or being written), as the consumer's ``max_ack_pending`` allows."""

    def __init__(self, worker: FeedWorker, *, depth: int) -> None:
        self.worker = worker
        self.ready: asyncio.Queue[_Fetched] = asyncio.Queue()
        self.room = asyncio.Semaphore(depth)
        self.stopping = self.fetching = False
        self.task = asyncio.create_task(self._run(), name=f"feed reader {worker.subscriber.name}")
        # what ends it is raised by next(); a reader left to finish its pull after its writer was cancelled
        # ends with nobody to ask (the consumer deleted when a subscriber is revoked, for instance)
        self.task.add_done_callback(lambda task: task.cancelled() or task.exception())

    async def _run(self) -> None:
        while True:
            await self.room.acquire()
            if self.stopping:
                return
            self.fetching = True
            try:
                fetched = await self.worker._fetch()
            finally:
                self.fetching = False
            if fetched is None:
                self.room.release()
            else:
                self.ready.put_nowait(fetched)

    async def next(self) -> _Fetched:
        """The next batch, in order; raises what ended the reader (``ConsumerGone``: the consumer was re-created)."""
        getting = asyncio.ensure_future(self.ready.get())
        try:
            await asyncio.wait((getting, self.task), return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not getting.done():
                getting.cancel()
        if getting.done() and not getting.cancelled():
            return getting.result()
        self.task.result()
        raise RuntimeError("the feed reader ended")  # pragma: no cover - _run ends by raising or when stopped

    def written(self) -> None:
        """The writer is done with a batch: room for another."""
        self.room.release()

    async def stop(self) -> list[_Fetched]:
        """Ends reading and gives the batches read, in order. A pull in progress is waited for, never
        cancelled: its messages would be delivered to nobody, and acknowledging a later batch
        (acknowledge-all) would acknowledge them unsent."""
        self.stopping = True
        if not self.fetching:
            self.task.cancel()
        await asyncio.wait((self.task,))
        if not self.task.cancelled():
            with suppress(Exception):  # an error the writer already met in next(), or one that no longer matters
                self.task.result()
        held = []
        while not self.ready.empty():
            held.append(self.ready.get_nowait())
        return held


class FeedWorker:
    """Runs one subscriber's feed until cancelled.

    Up to ``depth`` batches are outstanding: the next ones are read and made safe while one is stored.
    Only the pinned replica receives them, and batches are stored in order, so the order of the stream
    holds. A failed batch is given back (with the batches read after it) and tried again.
    """

    def __init__(self, nc: NatsClient, reader: NatsClient, topology: Topology, subscriber: Subscriber, *,
                 transform: FeedTransform, copier: Copier | None, sink: Sink, states: FeedStates,
                 dead_letters: DeadLetters, batch: int, ack_wait: float, depth: int = 1, fetch_timeout: float = 5.0,
                 retry_delay: float = 1.0) -> None:
        self.nc, self.topology, self.subscriber = nc, topology, subscriber
        self.transform, self.copier, self.sink, self.states = transform, copier, sink, states
        self.dead_letters, self.depth = dead_letters, depth
        self.batch, self.ack_wait, self.fetch_timeout, self.retry_delay = batch, ack_wait, fetch_timeout, retry_delay
        self.ack_timeout = 5.0
        self.puller = BatchPuller(reader, topology.events_stream, subscriber.relay_consumer, group=RELAY_GROUP)
        self.subjects, self.run_id = FeedSubjects(topology, subscriber), ""
        self._handed: asyncio.Future[None] | None = None  # the last batch read was handed to the worker process

    async def run(self) -> None:
        while True:  # a replay re-creates the consumer (maybe on another replica): bind to the new one
            await self._run_bound()
            await asyncio.sleep(self.retry_delay)

    async def _run_bound(self) -> None:
        name = self.subscriber.relay_consumer
        state = await self.states.ensure(self.subscriber, FeedStart())
        config = consumer_config(self.subscriber, self.topology, FeedStart.from_document(state["start"]),
                                 batch=self.batch * self.depth, ack_wait=self.ack_wait)
        await ensure_consumer(self.nc, self.topology, config, pin_timeout=self.ack_wait)
        log.info("feed_started", subscriber=self.subscriber.name, consumer=name, generation=state["generation"])
        reader = self._reader()
        try:
            while True:
                current = await reader.next()
                if await self._write(current):
                    reader.written()
                else:
                    # Given back in order, once no pull is open (an open pull could receive the failed batch
                    # again after newer events): this batch, then those read after it.
                    for batch in (current, *await reader.stop()):
                        batch.abandon()
                        await self._give_back(batch.msgs)
                    await asyncio.sleep(self.retry_delay)
                    reader = self._reader()
        except ConsumerGone:
            log.info("feed_consumer_recreated", subscriber=self.subscriber.name)
        finally:
            await reader.stop()

    def _reader(self) -> _Reader:
        self.run_id = uuid.uuid4().hex  # the worker process refuses a run's batches after one failed
        return _Reader(self, depth=self.depth)

    async def _fetch(self) -> _Fetched | None:
        # The generation is read before the pull: a replay records its new one before it re-creates the
        # consumer, and _write reads it again before acknowledging.
        state = await self.states.get(self.subscriber.name)
        generation = int(state["generation"]) if state else 1
        try:
            msgs = await self.puller.fetch(self.batch, timeout=self.fetch_timeout)
        except nats.errors.Error as exc:
            log.warning("feed_fetch_failed", subscriber=self.subscriber.name, error=type(exc).__name__)
            await asyncio.sleep(self.retry_delay)
            return None
        if not msgs:
            return None
        previous, self._handed = self._handed, asyncio.get_running_loop().create_future()
        copied = asyncio.create_task(self._copy(self.run_id, FeedHeaders(self.subscriber, generation), msgs,
                                                previous, self._handed))
        return _Fetched(msgs, copied, generation)

    async def _copy(self, run: str, headers: FeedHeaders, msgs: list[Msg], previous: asyncio.Future[None] | None,
                    handed: asyncio.Future[None]) -> _Copied:
        """Makes the batch's copies: by the worker process, which also stores them, or here (webhooks, no
        worker process). With a backlog of batches in the worker process, this process makes the copies
        (in a thread) and the worker process only stores them. Batches are handed over in order: after
        ``previous`` was, then ``handed`` is set."""
        try:
            if self.copier is None:
                copies = self.transform.many([msg.data for msg in msgs])
                return _Copied([i for i, copy in enumerate(copies) if copy is None], copies)
            unsafe: list[int] = []
            transform: FeedTransform | None = self.transform
            events = [(msg.subject, msg.data, stream_sequence(msg), (msg.headers or {}).get("Nats-Msg-Id", ""))
                      for msg in msgs]
            if self.copier.in_flight >= COPIER_BACKLOG and self.transform.level is not PiiLevel.FULL:
                copies = await asyncio.to_thread(self.transform.many, [body for _, body, _, _ in events])
                unsafe = [i for i, copy in enumerate(copies) if copy is None]
                events = [(subject, copy, seq, event_id)
                          for (subject, _, seq, event_id), copy in zip(events, copies, strict=True) if copy is not None]
                transform = None
            if previous is not None:
                await previous
            stored = self.copier.run(Batch(run, transform, headers, self.subjects, events))
        finally:
            if not handed.done():
                handed.set_result(None)
        return _Copied(unsafe + await stored, None)  # one of them is empty

    async def _give_back(self, msgs: list[Msg]) -> None:
        # At once (no redelivery delay), with no pull open: redelivered messages come before any newer one,
        # so the next batch is this one again. With a delayed NAK a newer event could be delivered first,
        # and acknowledging it (acknowledge-all) would acknowledge this batch unsent.
        for msg in msgs:
            with suppress(Exception):
                await msg.nak()

    async def _write(self, fetched: _Fetched) -> bool:
        """Publishes one batch (or waits for the worker process to have stored it) and acknowledges it;
        ``False`` when it must be given back and tried again."""
        msgs = fetched.msgs
        try:
            copied = await fetched.copied
            unsafe = [msgs[i] for i in copied.unsafe]
            if copied.copies is not None:  # made here: published here, in order
                items = [Relayed(msg, msg.subject, copy, stream_sequence(msg),
                                 (msg.headers or {}).get("Nats-Msg-Id", ""))
                         for msg, copy in zip(msgs, copied.copies, strict=True) if copy is not None]

                async def keep_alive() -> None:
                    for msg in msgs:
                        with suppress(Exception):
                            await msg.in_progress()

                await self.sink.deliver(self.subscriber, fetched.generation, items, keep_alive)
            for msg in unsafe:  # an event this release cannot make safe for the account: never passed on
                await self.dead_letters.send(
                    body=msg.data, original_headers=dict(msg.headers or {}), original_subject=msg.subject,
                    original_stream=self.topology.events_stream, original_sequence=stream_sequence(msg),
                    consumer=self.subscriber.relay_consumer, deliveries=int(msg.metadata.num_delivered),
                    reason=f"cannot be made safe for a subscriber with pii {self.subscriber.pii.value} "
                           "(an event type or version this release does not know)")
            state = await self.states.get(self.subscriber.name)
            if state is not None and int(state["generation"]) != fetched.generation:
                raise RuntimeError("a replay began a new generation while the batch was relayed")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the whole batch again, in order, after a pause
            log.warning("feed_batch_failed_will_retry", subscriber=self.subscriber.name, error=type(exc).__name__,
                        first_seq=stream_sequence(msgs[0]))
            return False
        await asyncio.gather(
            # acknowledge-all: the batch is done (on the service's connection, not behind the next batches)
            self.nc.request(msgs[-1].reply, b"+ACK", timeout=self.ack_timeout),
            self.states.progressed(self.subscriber.name, relayed=len(msgs) - len(unsafe), dead_lettered=len(unsafe),
                                   last_seq=stream_sequence(msgs[-1])))
        return True
