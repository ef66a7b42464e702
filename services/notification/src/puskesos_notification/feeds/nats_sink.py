"""A feed subscriber's sink: its own subjects in the ``{NS}_FEEDS`` stream.

A batch is published with pipelined JetStream publishes (each one acknowledged by the stream before
the batch counts as delivered). Headers say what the copy is without opening it: the original event's
id and type, the events-stream sequence it was copied from, the feed generation and the account's
personal-data level. The original's other headers are not copied (a correlation id may name a household).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from nats.js import JetStreamContext
from puskesos_shared.subscribers import Subscriber
from puskesos_shared.topology import Topology

from .worker import Relayed

EVENT_ID = "Puskesos-Event-Id"
SOURCE_SEQ = "Puskesos-Source-Seq"
GENERATION = "Puskesos-Feed-Generation"
PII = "Puskesos-Pii"


def feed_headers(subscriber: Subscriber, generation: int, item: Relayed) -> dict[str, str]:
    return {"Nats-Msg-Id": f"{subscriber.name}:{generation}:{item.sequence}", EVENT_ID: item.event_id,
            SOURCE_SEQ: str(item.sequence), GENERATION: str(generation), PII: subscriber.pii.value,
            "Content-Type": "application/json"}


class NatsFeedSink:
    def __init__(self, js: JetStreamContext, topology: Topology, *, timeout: float = 15.0) -> None:
        self.js, self.topology, self.timeout = js, topology, timeout

    async def deliver(self, subscriber: Subscriber, generation: int, items: Sequence[Relayed],
                      keep_alive: Callable[[], Awaitable[None]]) -> None:
        if not items:
            return
        stream = self.topology.feeds_stream
        futures = [await self.js.publish_async(self.topology.feed_subject(subscriber.name, item.subject), item.body,
                                               headers=feed_headers(subscriber, generation, item), stream=stream)
                   for item in items]
        await asyncio.wait_for(asyncio.gather(*futures), timeout=self.timeout)
