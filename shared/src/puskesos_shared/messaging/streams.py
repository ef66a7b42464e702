"""Creating and updating the streams of a topology (idempotent, safe on every start).

In a cluster, creating a replicated stream waits for its peers to agree, and several service
processes starting together race to create the same streams: a JetStream API call can time out or
answer "temporarily unavailable" (no meta leader during an election) although it will succeed a
moment later. Such answers are retried until ``timeout``; any other error is raised at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import nats.errors
import structlog
from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from nats.js.errors import APIError, NotFoundError, ServiceUnavailableError

from ..topology import Topology

log = structlog.get_logger("puskesos.streams")
T = TypeVar("T")

#: JetStream's "stream name already in use" (a concurrent creator won): read it and update instead.
STREAM_NAME_IN_USE = 10058


async def _ensure_once(js: JetStreamContext, config: StreamConfig) -> None:
    assert config.name is not None
    try:
        await js.stream_info(config.name)
    except NotFoundError:
        try:
            await js.add_stream(config)
            return
        except APIError as exc:
            if exc.err_code != STREAM_NAME_IN_USE:
                raise
    await js.update_stream(config)


async def until_ready(call: Callable[[], Awaitable[T]], what: str, *, timeout: float = 120.0) -> T:
    """``call()`` (an idempotent JetStream API call), again while the cluster is not ready for it."""
    deadline = time.monotonic() + timeout
    attempt = 0
    while True:
        attempt += 1
        try:
            return await call()
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError, ServiceUnavailableError) as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("jetstream_not_ready_retrying", what=what, attempt=attempt, error=type(exc).__name__)
            await asyncio.sleep(min(0.2 * attempt, 2.0))


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    await until_ready(lambda: _ensure_once(js, config), f"stream {config.name}")


async def ensure_streams(js: JetStreamContext, topology: Topology) -> None:
    for config in topology.stream_configs():
        await ensure_stream(js, config)
