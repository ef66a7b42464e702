"""NATS feed copies made safe and published by a worker process.

A replay reads the whole events stream. Per event, the relay pays nats-py's parsing of the delivered
message (about 16 µs of CPU), the pseudonymiser (about 20 µs) and the publish of the copy (about 10 µs):
on one core, well under 20,000 events/s. So the service's process only reads (and acknowledges), and one
worker process per replica (``spawn``, started with the first NATS feed) makes each part of a batch safe
and publishes it with fast ingest on a NATS connection of its own, as soon as the part has arrived.

Parts run one at a time, in the order they were handed over, so the copies are stored in the order of
the events stream. Each reading run of a feed has an id; once a part of a run fails, the worker refuses
every later part of that run, so nothing newer is stored before the failed part is sent again (the
feed worker gives the batch back and starts a new run). A part answers which of its events could not be
made safe (the feed worker dead-letters them); the others are stored when it returns.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Final

import nats
import structlog
from nats.aio.client import Client as NatsClient
from puskesos_shared.messaging.fast_ingest import FastIngest, FastIngestError, Outgoing

from .copies import FeedHeaders, FeedSubjects
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
class Part:
    """Consecutive events of one batch of one feed: (event subject, stored body, stream sequence, event id)."""

    run: str
    transform: FeedTransform
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

    def run(self, part: Part) -> list[int]:
        if part.run in self.failed:
            raise FastIngestError("an earlier part of this run was not stored")
        try:
            return self.loop.run_until_complete(self._run(part))
        except BaseException:
            if len(self.failed) >= _FAILED_RUNS_KEPT:
                self.failed.clear()
            self.failed.add(part.run)
            raise

    async def _run(self, part: Part) -> list[int]:
        copies = part.transform.many([body for _, body, _, _ in part.events])
        unsafe: list[int] = []
        outgoing: list[Outgoing] = []
        for i, ((subject, _, sequence, event_id), copy) in enumerate(zip(part.events, copies, strict=True)):
            if copy is None:
                unsafe.append(i)
            else:
                outgoing.append(Outgoing(part.subjects.of(subject), copy, part.headers.of(sequence, event_id)))
        if outgoing:
            await FastIngest(await self._connected(), timeout=self.connection.timeout).publish(outgoing)
        return unsafe

    async def _connected(self) -> NatsClient:
        if self.nc is None or self.nc.is_closed:
            c = self.connection
            self.nc = await nats.connect(list(c.servers), name=c.name, user=c.user, password=c.password,
                                         max_reconnect_attempts=-1, reconnect_time_wait=1)
        return self.nc


_WORKER: _Worker | None = None


def _start(connection: WorkerConnection) -> None:
    global _WORKER
    _WORKER = _Worker(connection)


def _ready() -> None:
    """Nothing: submitted once, so the worker process has started (imports included) before it is needed."""


def _run_part(part: Part) -> list[int]:
    assert _WORKER is not None, "the worker process was started without its connection"
    return _WORKER.run(part)


class Copier:
    """This replica's worker process for NATS feeds (one process: parts run in the order handed over)."""

    def __init__(self, connection: WorkerConnection) -> None:
        self.connection = connection
        self._executor: ProcessPoolExecutor | None = None

    def _started(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(1, mp_context=get_context("spawn"), initializer=_start,
                                                 initargs=(self.connection,))
            self._executor.submit(_ready)
            log.info("feed_worker_process_started")
        return self._executor

    def warm(self) -> None:
        self._started()

    async def run(self, part: Part) -> list[int]:
        """Makes the part safe and stores it in the feed; the indexes of the events that could not be made
        safe. Raises when the part (or an earlier part of its run) was not stored."""
        executor = self._started()
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, _run_part, part)
        except BrokenProcessPool:  # the worker died (killed, out of memory): a new one for the next run
            log.warning("feed_worker_process_broken")
            self.close()
            raise

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
