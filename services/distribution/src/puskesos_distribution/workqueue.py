"""The service's work queue: a JetStream stream with WorkQueue retention and its pull workers.

* Stream ``{NS}_DISTRIBUTION_WORK`` holds ``{ns}.work.distribution.{allocate|disburse}.{round}``.
  A message stays until a worker acknowledges it, so a killed replica's items are delivered
  again after the ack wait; ``Nats-Msg-Id`` is the item's deterministic id, so publishing an
  item twice (a resent import chunk, a retried allocation) stores it once.
* One durable pull consumer per kind, shared by every replica: running more replicas is just
  starting more processes.
* Each delivery goes through the kit's ``process_delivery`` (explicit ack after the handler,
  delayed NAK on errors, dead letters with the reason; nothing is dropped silently).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from functools import partial
from typing import cast

import nats.errors
import structlog
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError
from puskesos_shared.messaging import ConsumerPolicy, DeadLetters, encode_event, event_headers, process_delivery
from puskesos_shared.messaging.consumer import Delivery, EventHandler, Outcome
from puskesos_shared.messaging.streams import ensure_stream, until_ready
from puskesos_shared.tasks import honour_cancellation
from puskesos_shared.topology import DUPLICATE_WINDOW_SECONDS, Topology

from .workitems import WorkItem, decode_work_item

log = structlog.get_logger("puskesos.distribution.work")

ALLOCATE = "allocate"
DISBURSE = "disburse"
CONSUMERS = {ALLOCATE: "distribution_allocate", DISBURSE: "distribution_disburse"}


def work_stream(topology: Topology) -> str:
    return f"{topology.namespace.upper()}_DISTRIBUTION_WORK"


def work_subject(topology: Topology, kind: str, round_id: uuid.UUID | None = None) -> str:
    """``{ns}.work.distribution.{kind}.{round hex}``; without a round, the wildcard of the kind."""
    tail = round_id.hex if round_id is not None else ">"
    return f"{topology.namespace}.work.distribution.{kind}.{tail}"


def work_stream_config(topology: Topology) -> StreamConfig:
    return StreamConfig(
        name=work_stream(topology),
        description="Distribution work items (allocate a candidate, disburse an allocation); removed when done.",
        subjects=[f"{topology.namespace}.work.distribution.>"],
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        num_replicas=topology.replicas,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
        discard=DiscardPolicy.NEW,  # never drop queued work to make room
    )


async def ensure_work_queue(js: JetStreamContext, topology: Topology, policies: dict[str, ConsumerPolicy]) -> None:
    """Creates the stream and the durable consumers (idempotent; several replicas may race)."""
    await ensure_stream(js, work_stream_config(topology))
    for kind, consumer in CONSUMERS.items():
        config = policies[kind].consumer_config(consumer, [work_subject(topology, kind)])
        try:
            await until_ready(partial(js.add_consumer, work_stream(topology), config), f"consumer {consumer}")
        except BadRequestError as exc:  # exists with another config: keep it, say so
            log.warning("work_consumer_config_kept", consumer=consumer, error=str(exc))


class WorkPublisher:
    """Publishes work items to the work stream with ``Nats-Msg-Id`` = the item's id."""

    def __init__(self, js: JetStreamContext, topology: Topology, *, timeout: float = 10.0,
                 max_in_flight: int = 256) -> None:
        self._js, self.topology, self._timeout = js, topology, timeout
        self._gate = asyncio.Semaphore(max_in_flight)

    async def publish(self, item: WorkItem) -> None:
        subject = work_subject(self.topology, type(item).KIND, uuid.UUID(item.correlation_id))
        async with self._gate:
            await self._js.publish(subject, encode_event(item), headers=event_headers(item),
                                   stream=work_stream(self.topology), timeout=self._timeout)

    async def publish_all(self, items: Sequence[WorkItem]) -> None:
        await asyncio.gather(*(self.publish(item) for item in items))


async def run_worker(
    js: JetStreamContext,
    topology: Topology,
    kind: str,
    *,
    handler: Callable[[WorkItem, Delivery], Awaitable[None]],
    dead_letters: DeadLetters,
    policy: ConsumerPolicy,
    drain_seconds: float = 5.0,
) -> None:
    """Pulls work of one kind forever (cancel to stop), at most ``policy.concurrency`` at a time.

    On cancellation it stops fetching and gives running items ``drain_seconds`` to finish;
    whatever is still running then is redelivered after the ack wait (handlers are idempotent).
    """
    consumer = CONSUMERS[kind]
    sub = await js.pull_subscribe_bind(consumer, work_stream(topology))
    running: set[asyncio.Task[Outcome]] = set()
    typed_handler = cast(EventHandler, handler)  # the decoder only yields WorkItems
    try:
        while True:
            honour_cancellation()  # a cancellation nats-py's fetch swallowed (puskesos_shared.tasks)
            free = policy.concurrency - len(running)
            if free <= 0:
                await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                continue
            try:
                msgs = await sub.fetch(free, timeout=policy.fetch_timeout_seconds)
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            except nats.errors.ConnectionReconnectingError:
                await asyncio.sleep(0.5)
                continue
            except nats.errors.Error as exc:  # a leader election, a node gone: the next fetch finds the new leader
                log.warning("work_fetch_failed", consumer=consumer, error=type(exc).__name__)
                await asyncio.sleep(0.5)
                continue
            for msg in msgs:
                task = asyncio.create_task(process_delivery(
                    msg, consumer=consumer, handler=typed_handler, dead_letters=dead_letters,
                    policy=policy, decoder=decode_work_item,
                ))
                running.add(task)
                task.add_done_callback(running.discard)
    finally:
        if running:
            with suppress(asyncio.CancelledError):
                await asyncio.wait(set(running), timeout=drain_seconds)
            for task in running:
                task.cancel()
        with suppress(Exception):
            await sub.unsubscribe()
