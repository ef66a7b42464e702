"""The feed relay against real servers (nats-server, the local Mongo engine): a replay through the
worker process gives the same copies as the transform in the service's process, in stream order; two replicas
of the service relay one feed in order, one at a time, and the standby takes over when the pinned one
stops."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import nats
import pytest
import pytest_asyncio
from faststream.nats import NatsBroker
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from puskesos_notification.feeds import worker as worker_module
from puskesos_notification.feeds.copier import WorkerConnection
from puskesos_notification.feeds.copies import SOURCE_SEQ
from puskesos_notification.feeds.supervisor import Feeds, FeedSettings
from puskesos_notification.feeds.transform import FeedTransform
from puskesos_notification.feeds.worker import FeedStart
from puskesos_shared.contracts import subject_for
from puskesos_shared.contracts.examples import EXAMPLES
from puskesos_shared.contracts.pseudonymous import PiiLevel
from puskesos_shared.messaging import encode_event, event_headers
from puskesos_shared.messaging.dead_letter import DeadLetters
from puskesos_shared.messaging.publisher import EventPublisher
from puskesos_shared.subscribers import Subscriber, SubscriberBook
from puskesos_shared.topology import Topology
from pymongo import AsyncMongoClient

pytestmark = pytest.mark.integration

HASH_SECRET = b"test-feed-relay-hash-secret-0123456789"
SUBSCRIBER = Subscriber(name="dinsos-test", events=(">",), pii=PiiLevel.PSEUDONYMOUS)


async def publish_events(js: JetStreamContext, topology: Topology, count: int) -> None:
    """``count`` copies of the contract examples, each with its own event id, in one order."""
    builds = list(EXAMPLES.values())
    acks = []
    for n in range(count):
        event = builds[n % len(builds)]().model_copy(update={"event_id": uuid.uuid4()})
        acks.append(await js.publish_async(subject_for(event, topology), encode_event(event),
                                           headers=event_headers(event)))
    await asyncio.gather(*acks)


async def feed_copies(js: JetStreamContext, topology: Topology) -> list[tuple[int, bytes]]:
    """Every copy in the feeds stream, in its order: (source sequence, body)."""
    info = await js.stream_info(topology.feeds_stream)
    out = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await js.get_msg(topology.feeds_stream, seq)
        assert msg.headers is not None and msg.data is not None
        out.append((int(msg.headers[SOURCE_SEQ]), msg.data))
    return out


async def until(condition: Callable[[], Awaitable[bool]], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


class Replica:
    """One notification replica's feeds: its own connections, the shared subscribers file and database."""

    def __init__(self, nats_url: str, mongo: AsyncMongoClient[dict[str, Any]], db_name: str, topology: Topology,
                 settings: FeedSettings) -> None:
        self.nats_url, self.mongo, self.db_name, self.topology, self.settings = (
            nats_url, mongo, db_name, topology, settings)
        self.stack = AsyncExitStack()
        self.feeds: Feeds | None = None

    async def start(self) -> Feeds:
        nc: NatsClient = await nats.connect(self.nats_url)
        self.stack.push_async_callback(nc.drain)
        broker = NatsBroker(self.nats_url)
        await broker.connect()
        self.stack.push_async_callback(broker.stop)
        reader: NatsClient = await nats.connect(self.nats_url)  # closed by feeds.close()
        feeds = Feeds(nc, reader, self.mongo[self.db_name], self.topology,
                      DeadLetters(EventPublisher(broker, self.topology), "notification"), self.settings, HASH_SECRET)
        self.stack.push_async_callback(feeds.close)
        await feeds.reconcile()
        self.feeds = feeds
        return feeds

    async def stop(self) -> None:
        await self.stack.aclose()


@pytest_asyncio.fixture
async def replicas(nats_url: str, jetstream: JetStreamContext, topology: Topology, db_prefix: str, tmp_path: Path,
                   mongo_client: AsyncMongoClient[dict[str, Any]]) -> AsyncIterator[Callable[..., Replica]]:
    made: list[Replica] = []
    book = SubscriberBook(tmp_path / "subscribers.json")
    book.save([SUBSCRIBER])

    def replica(*, batch: int = 1000, worker_process: bool = True, ack_wait: float = 60.0) -> Replica:
        worker = WorkerConnection((nats_url,), None, None, "pytest-feeds-worker") if worker_process else None
        settings = FeedSettings(subscribers_file=book.path, secrets_file=None, batch=batch, ack_wait=ack_wait,
                                worker=worker)
        made.append(Replica(nats_url, mongo_client, f"{db_prefix}_notification", topology, settings))
        return made[-1]

    yield replica
    for r in made:
        await r.stop()


@pytest.mark.parametrize("backlog", [0, 100], ids=["copies-made-here", "copies-made-by-the-worker"])
async def test_a_replay_through_the_worker_process_is_in_order_and_as_in_process(
        replicas: Callable[..., Replica], jetstream: JetStreamContext, topology: Topology, backlog: int,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # with a backlog of 0 every batch's copies are made in the service's process (in a thread) and only
    # stored by the worker process; with 100, the worker process makes them all
    monkeypatch.setattr(worker_module, "COPIER_BACKLOG", backlog)
    events = 5000
    await publish_events(jetstream, topology, events)
    feeds = await replicas(batch=1000).start()
    await feeds.replay(SUBSCRIBER.name, FeedStart(from_seq=1))

    async def all_relayed() -> bool:
        return int((await jetstream.stream_info(topology.feeds_stream)).state.messages) >= events

    await until(all_relayed, f"{events} copies in the feed")
    copies = await feed_copies(jetstream, topology)
    assert [seq for seq, _ in copies] == list(range(1, events + 1))
    in_process = FeedTransform.of(SUBSCRIBER.name, SUBSCRIBER.pii, HASH_SECRET)
    for seq, body in copies[::97]:  # the worker process made the same bytes the transform makes here
        original = await jetstream.get_msg(topology.events_stream, seq)
        assert body == in_process(original.data or b"")


async def test_two_replicas_relay_one_feed_in_order_and_the_standby_takes_over(
        replicas: Callable[..., Replica], jetstream: JetStreamContext, topology: Topology) -> None:
    # small batches, so the two replicas would interleave if both received; a short pin, for the takeover
    pinned = replicas(batch=200, worker_process=False, ack_wait=3.0)
    standby = replicas(batch=200, worker_process=False, ack_wait=3.0)
    feeds = await pinned.start()
    await feeds.replay(SUBSCRIBER.name, FeedStart(from_seq=1))
    await publish_events(jetstream, topology, 600)

    def relayed(count: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return int((await jetstream.stream_info(topology.feeds_stream)).state.messages) >= count
        return check

    await until(relayed(600), "the first 600 copies")
    await standby.start()  # its pulls wait: the consumer's pin is the first replica's
    await publish_events(jetstream, topology, 2000)
    await until(relayed(2600), "2,600 copies")
    await pinned.stop()  # the standby is pinned once the first replica's pin times out
    await publish_events(jetstream, topology, 1000)
    await until(relayed(3600), "3,600 copies after the takeover")
    copies = await feed_copies(jetstream, topology)
    assert [seq for seq, _ in copies] == list(range(1, 3601))
