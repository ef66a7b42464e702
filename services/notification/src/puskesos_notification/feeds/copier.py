"""NATS feed copies made safe and published by a worker process.

A replay reads the whole events stream. Per event, the relay pays nats-py's parsing of the delivered
message (about 16 µs of CPU), the pseudonymiser (about 20 µs) and the publish of the copy (about 10 µs):
on one core, well under 20,000 events/s. So the service's process only reads (and acknowledges), and one
worker process per replica (``spawn``, started with the first NATS feed) makes each batch safe
and publishes it with fast ingest on a NATS connection of its own, each copy made as it is sent (the
server stores one while the next is made).

Batches run one at a time, in the order they were handed over, so the copies are stored in the order of
the events stream. Each reading run of a feed has an id; once a batch of a run fails, the worker refuses
every later batch of that run, so nothing newer is stored before the failed batch is sent again (the
feed worker gives it back and starts a new run). A batch answers which of its events could not be made
safe (the feed worker dead-letters them); the others are stored when it returns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Final

import nats
import structlog
from nats.aio.client import Client as NatsClient
from puskesos_shared.messaging.fast_ingest import FastIngest, FastIngestError, Outgoing
from puskesos_shared.settings import CONNECTION_OPTIONS

from .copies import FAST_INGEST_FLOW, FAST_INGEST_OUTSTANDING_ACKS, FeedHeaders, FeedSubjects
from .transform import FeedTransform

log = structlog.get_logger("puskesos.notification.feeds")

#: Failed runs remembered by the worker process (a run is abandoned at its first failure).
_FAILED_RUNS_KEPT: Final = 1000


@dataclass(frozen=True, slots=True)
class WorkerConnection:
    """How the worker process connects: the service's servers and credentials, its own client name."""

    servers: tuple[str, ...]
    user: str | None
    password: str | None = field(repr=False)
    name: str
    timeout: float = 15.0


@dataclass(frozen=True, slots=True)
class Batch:
    """One batch of one feed: (event subject, body, stream sequence, event id) of each event. ``transform``
    makes each body safe; ``None`` when the service's process made the copies already (the bodies)."""

    run: str
    transform: FeedTransform | None
    headers: FeedHeaders
    subjects: FeedSubjects
    events: list[tuple[str, bytes, int, str]]


class _Worker:
    """The worker process's state: its event loop, its NATS connection, the runs that failed."""

    def __init__(self, connection: WorkerConnection) -> None:
        self.connection = connection
        self.loop = asyncio.new_event_loop()
        self.nc: NatsClient | None = None
        self.failed: set[str] = set()

    def run(self, batch: Batch) -> list[int]:
        if batch.run in self.failed:
            raise FastIngestError("an earlier batch of this run was not stored")
        try:
            return self.loop.run_until_complete(self._run(batch))
        except BaseException:
            if len(self.failed) >= _FAILED_RUNS_KEPT:
                self.failed.clear()
            self.failed.add(batch.run)
            raise

    async def _run(self, batch: Batch) -> list[int]:
        unsafe: list[int] = []

        def copies() -> Iterator[Outgoing]:  # made as they are sent: the server stores one while the next is made
            transform = batch.transform
            for i, (subject, body, sequence, event_id) in enumerate(batch.events):
                copy = body if transform is None else transform(body)
                if copy is None:
                    unsafe.append(i)
                else:
                    yield Outgoing(batch.subjects.of(subject), copy, batch.headers.of(sequence, event_id))

        fast = FastIngest(await self._connected(), flow=FAST_INGEST_FLOW,
                          max_outstanding_acks=FAST_INGEST_OUTSTANDING_ACKS, timeout=self.connection.timeout)
        await fast.publish(copies())
        return unsafe

    async def _connected(self) -> NatsClient:
        if self.nc is None or self.nc.is_closed:
            c = self.connection
            self.nc = await nats.connect(list(c.servers), name=c.name, user=c.user, password=c.password,
                                         **CONNECTION_OPTIONS)
        return self.nc


_WORKER: _Worker | None = None


def _start(connection: WorkerConnection) -> None:
    global _WORKER
    _WORKER = _Worker(connection)


def _ready() -> None:
    """Nothing: submitted once, so the worker process has started (imports included) before it is needed."""


def _run_batch(batch: Batch) -> list[int]:
    assert _WORKER is not None, "the worker process was started without its connection"
    return _WORKER.run(batch)


class Copier:
    """This replica's worker process for NATS feeds (one process: batches run in the order handed over)."""

    def __init__(self, connection: WorkerConnection) -> None:
        self.connection = connection
        self._executor: ProcessPoolExecutor | None = None
        #: Batches handed over and not done yet (a backlog: the service's process makes the next copies).
        self.in_flight = 0

    def _started(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(1, mp_context=get_context("spawn"), initializer=_start,
                                                 initargs=(self.connection,))
            self._executor.submit(_ready)
            log.info("feed_worker_process_started")
        return self._executor

    def warm(self) -> None:
        self._started()

    def run(self, batch: Batch) -> asyncio.Future[list[int]]:
        """Hands the batch over (it runs after every batch handed over before it): the indexes of the events
        that could not be made safe, once the others are stored. Fails when the batch (or an earlier batch
        of its run) was not stored."""
        done = asyncio.get_running_loop().run_in_executor(self._started(), _run_batch, batch)
        self.in_flight += 1
        done.add_done_callback(self._done)
        return done

    def _done(self, done: asyncio.Future[list[int]]) -> None:
        self.in_flight -= 1
        if not done.cancelled() and isinstance(done.exception(), BrokenProcessPool):
            # the worker died (killed, out of memory): a new one for the next run
            log.warning("feed_worker_process_broken")
            self.close()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
