"""Making a feed's events safe for its subscriber, in this process or in worker processes.

``FeedTransform`` is a subscriber's transform: its personal-data level and its own pseudonym key, and
nothing else, so it can be sent to a worker process (a ``Pseudonymiser`` holds hash states that cannot).
Each process builds the ``Pseudonymiser`` of a transform once and keeps it.

Pseudonymising costs about 20 µs of CPU per event, as much as reading and publishing the event
together, so a replay of the whole events stream on one core cannot reach 20,000 events/s.
``TransformPool`` runs large batches in ``processes`` worker processes (started with ``spawn``, on
first use), split into one part per process, while the service's own process reads the next batch and
publishes the previous one. Batches smaller than ``min_batch`` (live traffic: a few events at a time)
and ``full`` feeds (nothing to do) stay in the service's process, as does everything when
``processes`` is 0.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Final

import structlog
from puskesos_shared.contracts.pseudonymous import PiiLevel, Pseudonymiser

log = structlog.get_logger("puskesos.notification.feeds")

_PSEUDONYMISERS: dict[tuple[bytes, PiiLevel], Pseudonymiser] = {}


@dataclass(frozen=True, slots=True)
class FeedTransform:
    """One subscriber's transform: ``transform(body)`` is the copy to relay, or ``None`` (dead-letter it)."""

    level: PiiLevel
    key: bytes = b""

    def __repr__(self) -> str:  # never the key
        return f"FeedTransform(level={self.level.value!r})"

    @classmethod
    def of(cls, subscriber_name: str, level: PiiLevel, hash_secret: bytes) -> FeedTransform:
        if level is PiiLevel.FULL:
            return cls(level)
        key = hmac.new(hash_secret, f"feed-pseudonym:{subscriber_name}".encode(), hashlib.sha256).digest()
        return cls(level, key)

    def _pseudonymiser(self) -> Pseudonymiser:
        found = _PSEUDONYMISERS.get((self.key, self.level))
        if found is None:
            found = _PSEUDONYMISERS[(self.key, self.level)] = Pseudonymiser(self.key, self.level)
        return found

    def __call__(self, body: bytes) -> bytes | None:
        if self.level is PiiLevel.FULL:
            return body
        return self._pseudonymiser().transform(body)

    def many(self, bodies: list[bytes]) -> list[bytes | None]:
        if self.level is PiiLevel.FULL:
            return list(bodies)
        transform = self._pseudonymiser().transform
        return [transform(body) for body in bodies]


def _many(transform: FeedTransform, bodies: list[bytes]) -> list[bytes | None]:
    """In a worker process."""
    return transform.many(bodies)


class TransformPool:
    """Worker processes for large batches; ``run`` gives each body's copy in order."""

    DEFAULT_MIN_BATCH: Final = 200

    def __init__(self, processes: int, *, min_batch: int = DEFAULT_MIN_BATCH) -> None:
        if processes < 0:
            raise ValueError("processes is 0 (none) or more")
        self.processes, self.min_batch = processes, min_batch
        self._executor: ProcessPoolExecutor | None = None

    def _started(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(self.processes, mp_context=get_context("spawn"))
            log.info("feed_transform_processes_started", processes=self.processes)
        return self._executor

    def warm(self, transform: FeedTransform) -> None:
        """Starts the processes (a spawned process imports the contracts first: about a second) for a feed
        that will use them, so its first large batch does not wait."""
        if self.processes and transform.level is not PiiLevel.FULL:
            executor = self._started()
            for _ in range(self.processes):
                executor.submit(_many, transform, [])

    async def run(self, transform: FeedTransform, bodies: list[bytes]) -> list[bytes | None]:
        if self.processes == 0 or transform.level is PiiLevel.FULL or len(bodies) < self.min_batch:
            return transform.many(bodies)
        executor = self._started()
        loop = asyncio.get_running_loop()
        size = -(-len(bodies) // self.processes)
        try:
            parts = await asyncio.gather(*(loop.run_in_executor(executor, _many, transform, bodies[i:i + size])
                                           for i in range(0, len(bodies), size)))
        except BrokenProcessPool:  # a worker died (killed, out of memory): new ones for the batch's next try
            log.warning("feed_transform_processes_broken")
            self.close()
            raise
        return [copy for part in parts for copy in part]

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
