"""Commands of the external subscribers' feeds (``{ns}.commands.notification.*.v1``), used by
``puskesos subscribers``:

* ``subscribers_changed``: every replica (no queue group) reads the declarations file again now;
* ``feed_replay``: restart one subscriber's feed from a stream sequence or a time (a new generation);
* ``feed_status``: each declared subscriber's feed: start, generation, relayed, pending, deliveries.
"""

from __future__ import annotations

import os
import socket
from typing import Any, Self

from faststream.nats import NatsBroker
from puskesos_shared.commands import CommandError, subscribe_command
from puskesos_shared.topology import Topology
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from .supervisor import Feeds
from .worker import FeedStart

_STRICT = ConfigDict(extra="forbid", frozen=True)


class SubscribersChanged(BaseModel):
    """Read the subscribers file again (sent after ``subscribers add`` or ``revoke``)."""

    model_config = _STRICT


class FeedReplayRequest(BaseModel):
    """Replay a subscriber's feed from a stream sequence or a time (neither: from the first event)."""

    model_config = _STRICT
    subscriber: str = Field(min_length=1, max_length=40)
    from_seq: int | None = Field(default=None, ge=1, description="Events-stream sequence to start at")
    since: AwareDatetime | None = Field(default=None, description="Time to start at (events stored since)")

    @model_validator(mode="after")
    def _one_start(self) -> Self:
        if self.from_seq is not None and self.since is not None:
            raise ValueError("give from_seq or since, not both")
        return self


class FeedStatusRequest(BaseModel):
    """The state of every declared subscriber's feed."""

    model_config = _STRICT


def register_feed_commands(broker: NatsBroker, topology: Topology, feeds: Feeds) -> list[str]:
    instance = f"{socket.gethostname()}:{os.getpid()}"

    async def replay(req: FeedReplayRequest) -> dict[str, Any]:
        start = FeedStart(from_seq=req.from_seq if req.from_seq is not None else (None if req.since else 1),
                          since=req.since)
        try:
            return await feeds.replay(req.subscriber, start)
        except LookupError:
            raise CommandError("subscriber_not_found", "no subscriber of that name is declared",
                               [{"loc": ["subscriber"], "msg": "not declared", "type": "subscriber_not_found"}],
                               status=404) from None

    async def status(req: FeedStatusRequest) -> dict[str, Any]:
        return {"feeds": await feeds.status()}

    async def changed(req: SubscribersChanged) -> dict[str, Any]:
        return await feeds.reconcile() | {"instance": instance}

    return [
        subscribe_command(broker, topology, service="notification", name="subscribers_changed",
                          request=SubscribersChanged, handler=changed, every_replica=True),
        subscribe_command(broker, topology, service="notification", name="feed_replay", request=FeedReplayRequest,
                          handler=replay),
        subscribe_command(broker, topology, service="notification", name="feed_status", request=FeedStatusRequest,
                          handler=status),
    ]
