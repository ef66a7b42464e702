"""A feed subscriber's sink: its own subjects in the ``{NS}_FEEDS`` stream.

A batch is published with JetStream's fast ingest (``messaging.fast_ingest``: one flow acknowledgement
every ``flow`` messages, and a final acknowledgement that counts the batch; the feeds stream allows it),
so a replay is not bound by one acknowledgement per event. The batch counts as delivered only when the
stream confirms every copy; otherwise the worker gives the batch back and it is sent again, stored once
by ``Nats-Msg-Id``.

Headers say what the copy is without opening it: the original event's id and type, the events-stream
sequence it was copied from, the feed generation and the account's personal-data level. The original's
other headers are not copied (a correlation id may name a household).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from nats.aio.client import Client as NatsClient
from puskesos_shared.messaging.fast_ingest import FastIngest, Outgoing
from puskesos_shared.subscribers import Subscriber
from puskesos_shared.topology import Topology

from .worker import Relayed

EVENT_ID = "Puskesos-Event-Id"
SOURCE_SEQ = "Puskesos-Source-Seq"
GENERATION = "Puskesos-Feed-Generation"
PII = "Puskesos-Pii"


class FeedHeaders:
    """The headers of one batch's copies (what they share is made once a batch)."""

    def __init__(self, subscriber: Subscriber, generation: int) -> None:
        self.msg_id = f"{subscriber.name}:{generation}:"
        self.generation, self.pii = str(generation), subscriber.pii.value

    def __call__(self, item: Relayed) -> dict[str, str]:
        seq = str(item.sequence)
        return {"Nats-Msg-Id": self.msg_id + seq, EVENT_ID: item.event_id, SOURCE_SEQ: seq,
                GENERATION: self.generation, PII: self.pii, "Content-Type": "application/json"}


def feed_headers(subscriber: Subscriber, generation: int, item: Relayed) -> dict[str, str]:
    return FeedHeaders(subscriber, generation)(item)


class NatsFeedSink:
    def __init__(self, nc: NatsClient, topology: Topology, *, timeout: float = 15.0) -> None:
        self.topology = topology
        self.fast = FastIngest(nc, timeout=timeout)

    async def deliver(self, subscriber: Subscriber, generation: int, items: Sequence[Relayed],
                      keep_alive: Callable[[], Awaitable[None]]) -> None:
        if not items:
            return
        headers, events = FeedHeaders(subscriber, generation), f"{self.topology.namespace}.events."
        prefix, cut = f"{self.topology.feed_prefix(subscriber.name)}.", len(events)
        outgoing = []
        for item in items:
            if not item.subject.startswith(events):
                raise ValueError(f"{item.subject!r} is not an event subject of namespace {self.topology.namespace}")
            outgoing.append(Outgoing(prefix + item.subject[cut:], item.body, headers(item)))
        await self.fast.publish(outgoing)
