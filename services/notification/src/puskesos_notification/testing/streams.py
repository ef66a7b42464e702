"""Waiting on conditions and reading what the service published (tests and benchmarks)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from puskesos_shared.contracts import Event, NotificationFailed, NotificationSent, decode_event
from puskesos_shared.topology import Topology

T = TypeVar("T")


async def wait_until(check: Callable[[], Awaitable[T | None] | T | None], *, timeout: float = 30.0,
                     what: str = "condition", interval: float = 0.05) -> T:
    """Polls ``check`` until it returns a truthy value (returned); fails with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value) or isinstance(value, Awaitable):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(interval)


async def read_events(js: JetStreamContext, topology: Topology,
                      models: tuple[type[Event], ...] = (NotificationSent, NotificationFailed)) -> list[Event]:
    """Every notification event of ``models`` in the events stream, in stream order (an ephemeral consumer)."""
    out: list[Event] = []
    sub = await js.pull_subscribe(topology.events_of("notification"), stream=topology.events_stream,
                                  config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, inactive_threshold=10))
    try:
        while True:
            try:
                batch = await sub.fetch(500, timeout=0.5)
            except (NatsTimeout, TimeoutError):  # nats-py raises either when the batch is not full
                break
            for msg in batch:
                event = decode_event(msg.data)
                if isinstance(event, models):
                    out.append(event)
                await msg.ack()
    finally:
        await sub.unsubscribe()
    return out


async def consumer_idle(js: JetStreamContext, topology: Topology, consumer: str) -> bool:
    """Whether a durable consumer has handled everything it was given (nothing pending or unacked)."""
    info = await js.consumer_info(topology.events_stream, consumer)
    return bool(info.num_pending == 0 and info.num_ack_pending == 0)
