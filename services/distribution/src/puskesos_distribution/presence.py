"""How many replicas run: a presence request over core NATS, answered by every replica.

Each replica subscribes to ``{ns}.commands.distribution.presence.v1`` without a queue group and
answers with its instance id; ``gather`` sends one request and collects the answers for a short
bounded window. The asking replica answers its own request too, so a gathering without its own
answer did not reach the broker (not permitted, disconnected): the count is then unknown (None),
never a guess.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import structlog
from faststream.nats import NatsBroker, NatsMessage
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from puskesos_shared.topology import Topology

log = structlog.get_logger("puskesos.distribution.presence")

SERVICE = "distribution"


def presence_subject(topology: Topology) -> str:
    return topology.command_subject(SERVICE, "presence")


@dataclass
class Presence:
    """This replica's presence: answers the requests, and gathers the answers of all replicas."""

    broker: NatsBroker
    topology: Topology
    instance: str
    window_seconds: float = 0.3

    def serve(self) -> None:
        @self.broker.subscriber(presence_subject(self.topology), title=f"{SERVICE}.presence",
                                description="Every replica answers with its instance id (no queue group)")
        async def _answer(msg: NatsMessage) -> bytes:
            return json.dumps({"instance": self.instance}).encode()

    def _client(self) -> NatsClient | None:
        state = self.broker.config.connection_state
        return state.connection if state and state.connection and state.connection.is_connected else None

    async def gather(self) -> dict[str, Any]:
        """``{"replicas": N | None, "instances": [ids]}`` from the answers within the window."""
        nc = self._client()
        if nc is None:
            return {"replicas": None, "instances": []}
        answers: list[dict[str, Any]] = []

        async def collect(msg: Msg) -> None:
            try:
                answers.append(json.loads(msg.data))
            except (ValueError, TypeError):
                log.warning("presence_answer_unreadable")

        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox, cb=collect)
        try:
            await nc.publish(presence_subject(self.topology), b"{}", reply=inbox)
            await nc.flush(timeout=max(round(self.window_seconds), 1))
            await asyncio.sleep(self.window_seconds)  # the gathering window: answers arrive within it or not at all
        except Exception as exc:  # a broker going away mid-request: the count is unknown, the status still answers
            log.warning("presence_request_failed", error=type(exc).__name__)
        finally:
            with suppress(Exception):
                await sub.unsubscribe()
        instances = sorted({str(a.get("instance")) for a in answers if isinstance(a, dict) and a.get("instance")})
        if self.instance not in instances:
            log.warning("presence_unanswered", answers=len(instances))
            return {"replicas": None, "instances": instances}
        return {"replicas": len(instances), "instances": instances}
