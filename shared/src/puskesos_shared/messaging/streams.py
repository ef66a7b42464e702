"""Creating and updating the streams of a topology (idempotent, safe on every start)."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from nats.js.errors import NotFoundError

from ..topology import Topology


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    assert config.name is not None
    try:
        await js.stream_info(config.name)
    except NotFoundError:
        await js.add_stream(config)
        return
    await js.update_stream(config)


async def ensure_streams(js: JetStreamContext, topology: Topology) -> None:
    for config in topology.stream_configs():
        await ensure_stream(js, config)
