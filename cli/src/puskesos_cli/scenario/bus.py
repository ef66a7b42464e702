"""The scenario on the bus: target systems answering referrals, reading the events stream, consumer lag.

The scenario connects like an external system would (in the demo, as the stack's ``admin``
user; in tests, without authentication): it sends NATS commands, and reads the events stream
through an ephemeral consumer, never the services' databases.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import nats
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from puskesos_shared.commands import CommandReply, send_command
from puskesos_shared.settings import nats_servers
from puskesos_shared.topology import Topology

from .env import ScenarioEnv

FETCH_BATCH = 2000
#: What the end-state checks and the summary read of an event's data; the rest (a household's members,
#: names, NIKs, addresses) is dropped as it is read. KK numbers stay: one allocation per family is checked.
KEPT_DATA = frozenset({
    "complaint_id", "case_id", "round_id", "allocation_id", "kk_number", "amount", "reason", "final", "village_code",
    "source_event_id", "notification_id", "channel", "totals", "reconciliation", "to_level", "from_level", "basis",
    "outcome",
})


def slim(body: dict[str, Any]) -> dict[str, Any]:
    data = body.get("data")
    if isinstance(data, dict):
        body["data"] = {k: v for k, v in data.items() if k in KEPT_DATA}
    return body


@dataclass(frozen=True)
class Lag:
    """What is still on its way: per durable consumer, messages not yet delivered or not yet acknowledged."""

    consumers: dict[str, int]
    stream_last_seq: int

    @property
    def total(self) -> int:
        return sum(self.consumers.values())


class Bus:
    def __init__(self, nc: NatsClient, topology: Topology) -> None:
        self.nc, self.topology = nc, topology
        self.js: JetStreamContext = nc.jetstream()

    async def command(self, service: str, name: str, body: dict[str, Any], *, timeout: float = 15.0) -> CommandReply:
        return await send_command(self.nc, self.topology.command_subject(service, name), body, timeout=timeout)

    async def lag(self) -> Lag:
        stream = self.topology.events_stream
        info = await self.js.stream_info(stream)
        consumers = {c.name: int(c.num_pending or 0) + int(c.num_ack_pending or 0)
                     for c in await self.js.consumers_info(stream)
                     if c.config.durable_name}
        return Lag(consumers, int(info.state.last_seq))

    async def work_queued(self) -> int:
        """Distribution work items not yet done (the work queue keeps an item until it is acknowledged)."""
        name = f"{self.topology.namespace.upper()}_DISTRIBUTION_WORK"
        try:
            info = await self.js.stream_info(name)
        except nats.js.errors.NotFoundError:
            return 0
        return int(info.state.messages)

    async def dead_letters(self) -> int:
        info = await self.js.stream_info(self.topology.dead_letter_stream)
        return int(info.state.messages)

    async def events(self, subject: str | None = None, *,
                     progress: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:
        """Every event on the stream (or under ``subject``), oldest first, as JSON objects with ``_seq``.

        ``progress(read, total)`` is called after each batch (total: the stream's messages when the read began).
        """
        stream = self.topology.events_stream
        state = (await self.js.stream_info(stream)).state
        if int(state.last_seq) == 0:
            return []
        config = ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE,
                                inactive_threshold=60.0, max_ack_pending=-1)
        sub = await self.js.pull_subscribe(subject or self.topology.all_events, stream=stream, config=config)
        out: list[dict[str, Any]] = []
        try:
            while True:
                try:
                    batch = await sub.fetch(FETCH_BATCH, timeout=2)
                except nats.errors.TimeoutError:
                    batch = []
                for msg in batch:
                    try:
                        body = json.loads(msg.data)
                    except ValueError:
                        continue  # not an event (the dead-letter stream is where such things are kept)
                    if isinstance(body, dict):
                        body["_seq"] = msg.metadata.sequence.stream
                        out.append(slim(body))
                if progress is not None:
                    progress(len(out), int(state.messages))
                info = await sub.consumer_info()
                if not info.num_pending:  # a snapshot: what was on the stream when we got here
                    break
        finally:
            await sub.unsubscribe()
        return out


@asynccontextmanager
async def connect(env: ScenarioEnv) -> AsyncIterator[Bus]:
    nc = await nats.connect(nats_servers(env.nats_url), user=env.nats_user, password=env.nats_password,
                            name="puskesos-scenario", max_reconnect_attempts=10)
    try:
        yield Bus(nc, Topology(namespace=env.namespace))
    finally:
        await nc.drain()
