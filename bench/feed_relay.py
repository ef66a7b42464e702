"""Feed relay benchmark: a late subscriber's replay of the whole events stream, and the webhook rate.

    uv run python bench/feed_relay.py [--events 1000000] [--webhook-events 20000] [--batch N] [--keep-dir]

Starts nats-server (JetStream, file storage) and the local Mongo engine (the feeds' state lives there) in a
temporary directory (or uses PUSKESOS_NATS_URL / PUSKESOS_MONGO_URL), then:

1. fills ``{NS}_EVENTS`` with ``--events`` events: the contract examples (``contracts.examples``), each copy
   with fresh UUIDs (event id, case, complaint...) and the NIKs, KK number and phone of one of 250,000
   households, on their own subjects, published with pipelined ``publish_async``; prints the fill rate;
2. replays them to a late NATS subscriber (``--pii pseudonymous``) from sequence 1 through the production
   path: the subscribers file, ``Feeds.reconcile`` and ``Feeds.replay`` (``FeedStart(from_seq=1)``), so
   the ``FeedWorker`` reads and its worker process (``copier``: the ``Pseudonymiser``, fast-ingest
   publishing) makes and stores the copies, until the subscriber's feed holds every copy; then the subscriber reads its
   feed with a plain nats-py pull consumer as ``examples/nats_subscriber.py`` does (fetch 100, skip a
   repeated event id, ack each);
3. the floor from the same run: the same replay for a ``--pii full`` subscriber (no transform, the same
   worker and sink), and a bare copy (fetch a batch, ``publish_async`` each message into a feed, wait for
   the acks, acknowledge the batch: no worker, no state, no transform);
4. the webhook rate: ``--webhook-events`` events (the last ones of the stream) replayed to a pseudonymous
   webhook subscriber through the ``WebhookSink`` (CloudEvents, signed, one POST at a time) to a local
   receiver in its own process (stdlib ``ThreadingHTTPServer``, HTTP/1.1 keep-alive; checks every
   signature and drops a repeated id, as ``examples/webhook_receiver.py``); floor: the same documents
   POSTed one at a time with plain httpx to the same receiver.

Prints events, seconds and events/s of each phase, the CPU seconds of this process, of the feeds' transform
worker process and of nats-server in each phase, how busy the machine was (all cores), and this process's
peak RSS. Issue target: a late subscriber's replay >= 20,000 events/s.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import hashlib
import hmac
import json
import logging
import multiprocessing
import os
import pstats
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import nats
import nats.errors
from faststream.nats import NatsBroker
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from puskesos_notification.feeds.copier import WorkerConnection
from puskesos_notification.feeds.supervisor import Feeds, FeedSettings
from puskesos_notification.feeds.transform import FeedTransform
from puskesos_notification.feeds.webhook import CONTENT_TYPE, cloud_event
from puskesos_notification.feeds.worker import FeedStart
from puskesos_notification.settings import NotificationSettings
from puskesos_shared.contracts import subject_for
from puskesos_shared.contracts.examples import EXAMPLES
from puskesos_shared.contracts.pseudonymous import PiiLevel
from puskesos_shared.localstack import free_port
from puskesos_shared.logging import configure_logging
from puskesos_shared.messaging import encode_event, ensure_streams, event_headers
from puskesos_shared.messaging.dead_letter import DeadLetters
from puskesos_shared.messaging.publisher import EventPublisher
from puskesos_shared.subscribers import SIGNATURE_HEADER, Subscriber, SubscriberBook, SubscriberSecrets, sign
from puskesos_shared.testing.servers import ServerHandle, resolve_mongo, resolve_nats
from puskesos_shared.topology import Topology
from pymongo import AsyncMongoClient
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

HOUSEHOLDS = 250_000  # the seeds' registry
HASH_SECRET = b"bench-feed-relay-hash-secret-0123456789"
WEBHOOK_SECRET = "bench-feed-relay-webhook-secret-0123456789"
TARGET = 20_000.0
DEFAULT_BATCH: int = NotificationSettings.model_fields["feed_batch"].default
_TOKENS = re.compile(rb"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
                     rb"|(?<![0-9A-Za-z])[0-9]{16}(?![0-9A-Za-z])|\+628[0-9]{8,11})")
_RAW_NIK = re.compile(rb"(?<![0-9])[0-9]{16}(?![0-9])")
_VERSION_MASK = ~((0xF << 76) | (0x3 << 62))
_VERSION_BITS = (0x4 << 76) | (0x2 << 62)


# realistic events ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Split:
    static: tuple[bytes, ...]
    tokens: tuple[bytes, ...]

    @classmethod
    def of(cls, raw: bytes) -> _Split:
        pieces = _TOKENS.split(raw)
        return cls(tuple(pieces[0::2]), tuple(pieces[1::2]))

    def render(self, fresh: dict[bytes, bytes]) -> bytes:
        out = [self.static[0]]
        for token, static in zip(self.tokens, self.static[1:], strict=True):
            out.append(fresh[token])
            out.append(static)
        return b"".join(out)


@dataclass(frozen=True, slots=True)
class _Template:
    subject: str
    body: _Split
    headers: tuple[tuple[str, _Split], ...]
    uuids: tuple[bytes, ...]
    digits: tuple[tuple[bytes, int], ...]  # token, its index among the household's identifiers
    phones: tuple[bytes, ...]


class EventSource:
    """Copies of the contract examples, each with fresh UUIDs and the identifiers of a random household
    of ``households`` (so a household's NIK recurs across events, as in the audit log)."""

    def __init__(self, topology: Topology, households: int = HOUSEHOLDS, seed: int = 17) -> None:
        self.households = households
        self.rng = random.Random(seed)
        index: dict[bytes, int] = {}
        self.templates: list[_Template] = []
        for build in EXAMPLES.values():
            event = build()
            body = encode_event(event)
            headers = tuple((k, _Split.of(v.encode())) for k, v in event_headers(event).items())
            tokens = set(_TOKENS.findall(body))
            for _, split in headers:
                tokens.update(split.tokens)
            digits = sorted(t for t in tokens if len(t) == 16 and t.isdigit())
            for t in digits:
                index.setdefault(t, len(index))
            self.templates.append(_Template(
                subject_for(event, topology), _Split.of(body), headers,
                uuids=tuple(sorted(t for t in tokens if b"-" in t)),
                digits=tuple((t, index[t]) for t in digits),
                phones=tuple(sorted(t for t in tokens if t.startswith(b"+")))))

    def _uuid(self) -> bytes:
        h = b"%032x" % ((self.rng.getrandbits(128) & _VERSION_MASK) | _VERSION_BITS)
        return b"-".join((h[:8], h[8:12], h[12:16], h[16:20], h[20:]))

    def __iter__(self) -> Iterator[tuple[str, bytes, dict[str, str]]]:
        templates, n = self.templates, 0
        while True:
            tpl = templates[n % len(templates)]
            n += 1
            household = self.rng.randrange(self.households)
            fresh = {token: self._uuid() for token in tpl.uuids}
            for token, i in tpl.digits:  # region code, household, which identifier, the example's tail
                fresh[token] = b"%s%06d%02d%s" % (token[:4], household, i, token[-4:])
            for token in tpl.phones:
                fresh[token] = b"+628%010d" % household
            yield (tpl.subject, tpl.body.render(fresh),
                   {k: split.render(fresh).decode() for k, split in tpl.headers})


# measuring -------------------------------------------------------------------------------------------


def _cpu_of(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> dict[int, float]:
    """CPU seconds of each live child process (the feeds' transform workers; spawned, so not forked)."""
    return {child.pid: _cpu_of(child.pid) for child in multiprocessing.active_children() if child.pid}


def _machine() -> tuple[int, int]:
    """All CPU time of the machine and its idle part, in clock ticks (``/proc/stat``)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(ticks), ticks[3] + ticks[4]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Phase:
    name: str
    events: int
    seconds: float
    cpu_self: float
    cpu_nats: float
    cpu_workers: float
    busy: float  # the machine's CPU in use, of all its cores
    note: str = ""

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("nan")

    @property
    def cpu_us(self) -> float:
        """This process's CPU per event: what other work on a shared machine does not change much."""
        return self.cpu_self / self.events * 1e6 if self.events else float("nan")


@dataclass(frozen=True)
class Mark:
    wall: float
    cpu: float
    nats: float
    children: dict[int, float]
    machine: tuple[int, int]


@dataclass
class Meter:
    nats_pid: int | None
    phases: list[Phase] = field(default_factory=list)

    def start(self) -> Mark:
        return Mark(time.perf_counter(), time.process_time(),
                    _cpu_of(self.nats_pid) if self.nats_pid else float("nan"), _children_cpu(), _machine())

    def stop(self, name: str, events: int, started: Mark, note: str = "") -> Phase:
        now = self.start()
        workers = sum(cpu - started.children.get(pid, 0.0) for pid, cpu in now.children.items())
        total, idle = now.machine[0] - started.machine[0], now.machine[1] - started.machine[1]
        phase = Phase(name, events, now.wall - started.wall, now.cpu - started.cpu, now.nats - started.nats, workers,
                      1 - idle / total if total else float("nan"), note)
        self.phases.append(phase)
        return phase


def progress_bar(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=True, refresh_per_second=4, disable=not console.is_terminal)


async def wait_for_count(count: Callable[[], Awaitable[int]], expected: int, what: str, console: Console, *,
                         stall_timeout: float = 120.0, interval: float = 0.2) -> None:
    """Polls ``count`` until it reaches ``expected``; fails when it stops moving for ``stall_timeout`` s."""
    last, moved = -1, time.monotonic()
    with progress_bar(console) as bar:
        task = bar.add_task(what, total=expected)
        while True:
            n = await count()
            bar.update(task, completed=n)
            if n >= expected:
                return
            if n != last:
                last, moved = n, time.monotonic()
            elif time.monotonic() - moved > stall_timeout:
                raise RuntimeError(f"{what}: stuck at {n:,} of {expected:,} for {stall_timeout:.0f} s")
            await asyncio.sleep(interval)


# 1. the events stream ----------------------------------------------------------------------------------


async def fill(nc: NatsClient, topology: Topology, events: int, console: Console, meter: Meter) -> Phase:
    js = nc.jetstream()
    await ensure_streams(js, topology)
    source = iter(EventSource(topology))
    started = meter.start()
    pending: list[asyncio.Future[Any]] = []
    with progress_bar(console) as bar:
        task = bar.add_task("filling the events stream", total=events)
        for n in range(1, events + 1):
            subject, body, headers = next(source)
            pending.append(await js.publish_async(subject, body, headers=headers))
            if len(pending) >= 2000 or n == events:
                await asyncio.gather(*pending)
                pending.clear()
                bar.update(task, completed=n)
    info = await js.stream_info(topology.events_stream)
    assert info.state.messages == events, f"events stream holds {info.state.messages:,}, expected {events:,}"
    return meter.stop("fill: events published (pipelined publish_async)", events, started,
                      f"{info.state.bytes / events:,.0f} stored bytes per event")


# 2-4. the production path --------------------------------------------------------------------------------


class Relay:
    """The notification service's feeds as the service builds them (broker, dead letters, Mongo state)."""

    def __init__(self, workdir: Path, nats_url: str, mongo_url: str, topology: Topology, batch: int) -> None:
        self.topology, self.nats_url = topology, nats_url
        self.book = SubscriberBook(workdir / "subscribers.json")
        self.secrets = SubscriberSecrets(workdir / "subscriber-secrets.json")
        self.broker = NatsBroker(nats_url, name="puskesos-notification-bench",
                                 logger=logging.getLogger("faststream.broker"), js_options={"timeout": 15.0})
        self.mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
        worker = WorkerConnection((nats_url,), None, None, "puskesos-notification-bench-worker")
        self.settings = FeedSettings(subscribers_file=self.book.path, secrets_file=self.secrets.path, batch=batch,
                                     worker=worker)
        self.feeds: Feeds | None = None

    async def __aenter__(self) -> Relay:
        await self.broker.connect()
        nc: NatsClient = self.broker.config.connection_state.connection
        dead_letters = DeadLetters(EventPublisher(self.broker, self.topology), "notification")
        db = self.mongo[f"{self.topology.namespace}_notification"]
        reader = await nats.connect(self.nats_url, name="puskesos-notification-bench-feeds")
        self.feeds = Feeds(nc, reader, db, self.topology, dead_letters, self.settings, HASH_SECRET)
        await self.feeds.create_indexes()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.feeds is not None:
            await self.feeds.close()
        await self.broker.stop()
        await self.mongo.close()

    async def declare(self, *subscribers: Subscriber) -> None:
        """Writes the subscribers file and reconciles: a subscriber no longer declared is retired (its
        consumer deleted, its NATS feed purged), a new one starts on new events."""
        assert self.feeds is not None
        self.book.save(subscribers)
        self.secrets.save({s.name: {"webhook_secret": WEBHOOK_SECRET} for s in subscribers if s.webhook_url})
        await self.feeds.reconcile()

    async def replay(self, subscriber: Subscriber, from_seq: int) -> None:
        assert self.feeds is not None
        await self.feeds.replay(subscriber.name, FeedStart(from_seq=from_seq))

    async def state(self, subscriber: Subscriber) -> dict[str, Any]:
        assert self.feeds is not None
        return await self.feeds.states.get(subscriber.name) or {}


async def relayed(relay: Relay, subscriber: Subscriber) -> int:
    """What the feed's state says it relayed (written just after a batch is acknowledged)."""
    return int((await relay.state(subscriber)).get("relayed") or 0)


async def feed_messages(js: JetStreamContext, topology: Topology) -> int:
    return int((await js.stream_info(topology.feeds_stream)).state.messages)


async def relay_to_feed(relay: Relay, js: JetStreamContext, subscriber: Subscriber, events: int, console: Console,
                        meter: Meter, name: str, profile: cProfile.Profile | None = None) -> Phase:
    await relay.declare(subscriber)  # retires the previous phase's subscriber (its feed purged)
    assert await feed_messages(js, relay.topology) == 0
    started = meter.start()
    if profile is not None:
        profile.enable()
    try:
        await relay.replay(subscriber, 1)

        async def count() -> int:
            return await feed_messages(js, relay.topology)

        await wait_for_count(count, events, f"relaying to {subscriber.name} (pii {subscriber.pii.value})", console)
    finally:
        if profile is not None:
            profile.disable()
    phase = meter.stop(name, events, started)
    await wait_for_count(partial(relayed, relay, subscriber), events, "the feed's state (relayed count)", console)
    state = await relay.state(subscriber)
    phase.note = (f"feed state: generation {state.get('generation')}, relayed {int(state.get('relayed') or 0):,}, "
                  f"dead-lettered {state.get('dead_lettered')}, last seq {int(state.get('last_seq') or 0):,}")
    return phase


async def read_feed(nc: NatsClient, topology: Topology, subscriber: Subscriber, events: int, console: Console,
                    meter: Meter) -> Phase:
    """The subscriber's side, as ``examples/nats_subscriber.py``: its durable consumer, fetch 100, skip a
    repeated event id, ack each. Every 1,000th copy is checked for a raw NIK-shaped run and its pii header."""
    js = nc.jetstream()
    name, stream = subscriber.name, topology.feeds_stream
    await js.add_consumer(stream, ConsumerConfig(name=name, durable_name=name,
                                                 filter_subject=subscriber.feed_filter(topology)))
    feed = await js.pull_subscribe_bind(name, stream)
    seen: set[str] = set()
    checked = leaks = wrong_level = 0
    started = meter.start()
    with progress_bar(console) as bar:
        task = bar.add_task(f"{name} reading its feed", total=events)
        fetches = 0
        while len(seen) < events:
            try:
                msgs = await feed.fetch(100, timeout=5)
            except nats.errors.TimeoutError:
                continue
            for msg in msgs:
                headers = msg.headers or {}
                event_id = headers["Puskesos-Event-Id"]
                if event_id not in seen:
                    seen.add(event_id)
                    if len(seen) % 1000 == 0:
                        checked += 1
                        leaks += _RAW_NIK.search(msg.data) is not None
                        wrong_level += headers.get("Puskesos-Pii") != subscriber.pii.value
                await msg.ack()
            fetches += 1
            if fetches % 20 == 0:
                bar.update(task, completed=len(seen))
    phase = meter.stop(f"read: {name} reads its feed (plain nats-py, fetch 100, ack each)", events, started)
    phase.note = f"{checked:,} copies checked: {leaks} with a raw NIK-shaped number, {wrong_level} with another pii"
    await feed.unsubscribe()
    await js.delete_consumer(stream, name)
    return phase


async def bare_copy(nc: NatsClient, topology: Topology, events: int, batch: int, console: Console,
                    meter: Meter) -> Phase:
    """The floor: the same copy without the worker: fetch a batch, publish_async each body into a feed subject
    (with a Nats-Msg-Id, deduplicated as the sink's), wait for the acks, acknowledge the batch (ack all)."""
    js = nc.jetstream()
    name, stream = "bare-copy", topology.events_stream
    await js.add_consumer(stream, ConsumerConfig(name=name, durable_name=name, ack_policy=AckPolicy.ALL,
                                                 max_ack_pending=batch, deliver_policy=DeliverPolicy.ALL,
                                                 filter_subject=topology.all_events))
    sub = await js.pull_subscribe_bind(name, stream)
    prefix, cut = topology.feed_prefix(name) + ".", len(f"{topology.namespace}.events.")
    copied = 0
    started = meter.start()
    with progress_bar(console) as bar:
        task = bar.add_task("bare copy", total=events)
        while copied < events:
            try:
                msgs = await sub.fetch(batch, timeout=5)
            except nats.errors.TimeoutError:
                continue
            acks = [await js.publish_async(prefix + msg.subject[cut:], msg.data,
                                           headers={"Nats-Msg-Id": f"{name}:{msg.metadata.sequence.stream}"})
                    for msg in msgs]
            await asyncio.gather(*acks)
            await msgs[-1].ack()
            copied += len(msgs)
            bar.update(task, completed=copied)
    phase = meter.stop(f"floor: bare copy (fetch {batch} + publish_async + ack all, no worker)", events, started)
    held = await feed_messages(js, topology)
    phase.note = f"feed holds {held:,}"
    await sub.unsubscribe()
    await js.delete_consumer(stream, name)
    await js.purge_stream(topology.feeds_stream, subject=f"{prefix}>")
    return phase


# the webhook receiver (its own process) ---------------------------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as any real receiver behind a proxy
    secret = b""
    seen: set[str] = set()
    counts = {"accepted": 0, "repeats": 0, "refused": 0}
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        fields = dict(p.split("=", 1) for p in self.headers.get(SIGNATURE_HEADER, "t=0,v1=").split(","))
        expected = hmac.new(self.secret, fields["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
        if abs(time.time() - int(fields["t"])) > 300 or not hmac.compare_digest(expected, fields.get("v1", "")):
            status, outcome = 401, "refused"
        else:
            event_id = json.loads(body)["id"]
            with self.lock:
                outcome = "repeats" if event_id in self.seen else "accepted"
                self.seen.add(event_id)
            status = 204
        with self.lock:
            self.counts[outcome] += 1
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        with self.lock:
            out = json.dumps(self.counts).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve_receiver(port: int) -> None:
    _Receiver.secret = os.environ["BENCH_WEBHOOK_SECRET"].encode()
    ThreadingHTTPServer(("127.0.0.1", port), _Receiver).serve_forever()


@dataclass
class Receiver:
    process: subprocess.Popen[bytes]
    url: str

    @classmethod
    def start(cls, log_path: Path) -> Receiver:
        port = free_port()
        with log_path.open("ab") as log:
            process = subprocess.Popen([sys.executable, __file__, "--serve-receiver", str(port)],
                                       env={**os.environ, "BENCH_WEBHOOK_SECRET": WEBHOOK_SECRET}, stdout=log,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        receiver = cls(process, f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(receiver.url + "/", timeout=1)
                return receiver
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    receiver.stop()
                    raise RuntimeError(f"the webhook receiver did not start; see {log_path}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    async def counts(self, http: httpx.AsyncClient) -> dict[str, int]:
        data: dict[str, int] = (await http.get(self.url + "/")).json()
        return data


async def webhook_phase(relay: Relay, nc: NatsClient, receiver: Receiver, events: int, count: int,
                        console: Console, meter: Meter) -> tuple[Phase, Phase]:
    subscriber = Subscriber(name="late-webhook", events=(">",), pii=PiiLevel.PSEUDONYMOUS,
                            webhook_url=receiver.url + "/events", description="benchmark: a late webhook subscriber")
    first = events - count + 1
    async with httpx.AsyncClient() as http:
        before = await receiver.counts(http)
        await relay.declare(subscriber)
        started = meter.start()
        await relay.replay(subscriber, first)

        async def accepted() -> int:
            return (await receiver.counts(http))["accepted"] - before["accepted"]

        await wait_for_count(accepted, count, "webhook: POSTs accepted", console, interval=0.1)
        service = meter.stop(f"webhook: {count:,} events through the WebhookSink (pseudonymous, one at a time)",
                             count, started)
        await wait_for_count(partial(relayed, relay, subscriber), count, "the feed's state (relayed count)", console)
        state = await relay.state(subscriber)
        after = await receiver.counts(http)
        service.note = (f"relayed {int(state.get('relayed') or 0):,}, dead-lettered {state.get('dead_lettered')}; "
                        "receiver: "
                        f"{after['accepted'] - before['accepted']:,} accepted, {after['repeats']} repeats, "
                        f"{after['refused']} refused")
        await relay.declare()  # retired: stops posting

    # the floor: the same CloudEvents documents, POSTed one at a time with plain httpx
    js = nc.jetstream()
    sub = await js.pull_subscribe(relay.topology.all_events, stream=relay.topology.events_stream,
                                  config=ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                                                        opt_start_seq=first, ack_policy=AckPolicy.NONE))
    transform = FeedTransform.of(subscriber.name, subscriber.pii, HASH_SECRET)
    documents: list[bytes] = []
    while len(documents) < count:
        for msg in await sub.fetch(min(500, count - len(documents)), timeout=10):
            body = transform(msg.data)
            assert body is not None
            documents.append(cloud_event(body, namespace=relay.topology.namespace,
                                         sequence=msg.metadata.sequence.stream, pii=subscriber.pii.value))
    await sub.unsubscribe()
    secret, url = WEBHOOK_SECRET.encode(), receiver.url + "/events"
    async with httpx.AsyncClient(timeout=10.0, follow_redirects=False) as http:
        before = await receiver.counts(http)
        started = meter.start()
        with progress_bar(console) as bar:
            task = bar.add_task("webhook floor: plain httpx POSTs", total=count)
            for i, document in enumerate(documents, 1):
                response = await http.post(url, content=document, headers={
                    "Content-Type": CONTENT_TYPE, SIGNATURE_HEADER: sign(secret, document, int(time.time()))})
                response.raise_for_status()
                if i % 500 == 0:
                    bar.update(task, completed=i)
        floor = meter.stop("floor: the same documents, sequential httpx POSTs", count, started)
        after = await receiver.counts(http)
        floor.note = (f"receiver: {after['repeats'] - before['repeats']:,} answered as repeats (same ids), "
                      f"{after['refused'] - before['refused']} refused")
    return service, floor


def say(console: Console, phase: Phase) -> None:
    console.print(f"   {phase.events:,} events in {phase.seconds:,.1f} s = {phase.rate:,.1f} events/s; {phase.note}")


# the run --------------------------------------------------------------------------------------------


async def run(args: argparse.Namespace, workdir: Path, nats_handle: ServerHandle, mongo_handle: ServerHandle,
              receiver: Receiver, console: Console) -> Meter:
    topology = Topology(namespace=f"bench{uuid.uuid4().hex[:8]}")
    meter = Meter(nats_handle.process.pid if nats_handle.process else None)
    events = args.events
    nc = await nats.connect(nats_handle.url)
    js = nc.jetstream()
    try:
        console.print(f"1. filling {topology.events_stream} with {events:,} events ...")
        phase = await fill(nc, topology, events, console, meter)
        say(console, phase)

        async with Relay(workdir, nats_handle.url, mongo_handle.url, topology, args.batch) as relay:
            late = Subscriber(name="late-pseudonymous", events=(">",), pii=PiiLevel.PSEUDONYMOUS,
                              description="benchmark: a late subscriber replaying from the first event")
            console.print(f"2. replay to {late.name} (pii pseudonymous) from sequence 1, batch {args.batch} ...")
            profile = cProfile.Profile() if args.profile else None
            phase = await relay_to_feed(relay, js, late, events, console, meter,
                                        "relay: events stream -> pseudonymised feed (FeedWorker + NatsFeedSink)",
                                        profile)
            say(console, phase)
            if profile is not None:
                profile.dump_stats(args.profile)
                console.print(f"   profile written to {args.profile}; top 30 by own time:")
                pstats.Stats(profile, stream=sys.stdout).sort_stats("tottime").print_stats(30)
            console.print(f"   peak RSS of this process so far: {peak_rss_mib():,.0f} MiB")
            phase = await read_feed(nc, topology, late, events, console, meter)
            say(console, phase)

            full = Subscriber(name="late-full", events=(">",), pii=PiiLevel.FULL,
                              description="benchmark floor: the same replay without a transform")
            console.print(f"3a. floor: the same replay to {full.name} (pii full: no transform) ...")
            phase = await relay_to_feed(relay, js, full, events, console, meter,
                                        "floor: the same relay, pii full (no transform)")
            say(console, phase)
            await relay.declare()  # retires it: feed purged

            console.print("3b. floor: bare copy, no worker ...")
            phase = await bare_copy(nc, topology, events, args.batch, console, meter)
            say(console, phase)

            count = min(args.webhook_events, events)
            console.print(f"4. webhook: the last {count:,} events to a pseudonymous webhook subscriber ...")
            service, floor = await webhook_phase(relay, nc, receiver, events, count, console, meter)
            say(console, service)
            say(console, floor)
    finally:
        await nc.close()
    return meter


def report(meter: Meter, args: argparse.Namespace, console: Console, receiver_pid: int) -> None:
    table = Table(title=f"feed relay, {args.events:,} events, batch {args.batch}")
    for column in ("phase", "events", "seconds", "events/s", "CPU s (bench)", "µs CPU/event", "CPU s (workers)",
                   "CPU s (nats-server)", "machine busy"):
        table.add_column(column, justify="left" if column == "phase" else "right")
    for p in meter.phases:
        table.add_row(p.name, f"{p.events:,}", f"{p.seconds:,.1f}", f"{p.rate:,.0f}", f"{p.cpu_self:,.1f}",
                      f"{p.cpu_us:,.0f}", f"{p.cpu_workers:,.1f}", f"{p.cpu_nats:,.1f}", f"{p.busy:.0%}")
    console.print(table)
    relay, read, full, bare, hook, hook_floor = meter.phases[1:7]
    verdict = "met" if relay.rate >= TARGET else "NOT met"
    console.print(f"[bold]relay (pseudonymous) {relay.rate:,.0f} events/s: target >= {TARGET:,.0f}/s {verdict}[/bold]; "
                  f"subscriber read {read.rate:,.0f}/s")
    console.print(f"floors: pii full {full.rate:,.0f}/s (relay at {relay.rate / full.rate:.2f}x its rate), "
                  f"bare copy {bare.rate:,.0f}/s (relay at {relay.rate / bare.rate:.2f}x, "
                  f"pii full at {full.rate / bare.rate:.2f}x)")
    console.print(f"this process's CPU per event: relay {relay.cpu_us:,.0f} µs, pii full {full.cpu_us:,.0f} µs, bare "
                  f"copy {bare.cpu_us:,.0f} µs (one core's ceiling: {1e6 / relay.cpu_us:,.0f}, "
                  f"{1e6 / full.cpu_us:,.0f} and {1e6 / bare.cpu_us:,.0f} events/s; the target needs "
                  f"<= {1e6 / TARGET:,.0f} µs)")
    console.print(f"webhook {hook.rate:,.0f} events/s against sequential httpx {hook_floor.rate:,.0f}/s "
                  f"({hook.rate / hook_floor.rate:.2f}x); receiver CPU {_cpu_of(receiver_pid):,.1f} s in all")
    console.print(f"peak RSS of this process: {peak_rss_mib():,.0f} MiB; load average "
                  + " / ".join(f"{v:.2f}" for v in os.getloadavg()) + " (1/5/15 min, 2 cores)")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM too: the ExitStack stops the servers


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the stream (the replay's size)")
    parser.add_argument("--webhook-events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH, help="the NATS feed's batch (service default)")
    parser.add_argument("--keep-dir", action="store_true", help="keep the working directory (servers' data, logs)")
    parser.add_argument("--profile", metavar="FILE", help="cProfile the pseudonymous relay phase into FILE")
    parser.add_argument("--serve-receiver", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_receiver:
        serve_receiver(args.serve_receiver)
        return
    configure_logging("warning", json=False)
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print("load average before: " + " / ".join(f"{v:.2f}" for v in os.getloadavg()))
    signal.signal(signal.SIGTERM, _interrupt)
    workdir = Path(tempfile.mkdtemp(prefix="bench-feed-relay-"))
    try:
        with ExitStack() as stack:
            nats_handle = resolve_nats(workdir)
            stack.callback(nats_handle.close)
            mongo_handle = resolve_mongo(workdir, heap="2g")
            stack.callback(mongo_handle.close)
            receiver = Receiver.start(workdir / "receiver.log")
            stack.callback(receiver.stop)
            console.print(f"nats: {nats_handle.origin} {nats_handle.url}; mongo: {mongo_handle.origin} "
                          f"{mongo_handle.url}; receiver {receiver.url}; workdir {workdir}")
            meter = asyncio.run(run(args, workdir, nats_handle, mongo_handle, receiver, console))
            report(meter, args, console, receiver.process.pid)
    except KeyboardInterrupt:
        console.print("interrupted: servers stopped")
        raise SystemExit(130) from None
    finally:
        if args.keep_dir:
            console.print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
