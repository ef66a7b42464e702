"""A feed subscriber's sink in the service's own process: its subjects in the ``{NS}_FEEDS`` stream.

A batch is published with JetStream's fast ingest (``messaging.fast_ingest``: one flow acknowledgement
every ``flow`` messages, and a final acknowledgement that counts the batch; the feeds stream allows it).
The batch counts as delivered only when the stream confirms every copy; otherwise the worker gives the
batch back and it is sent again, stored once by ``Nats-Msg-Id`` (``copies``). With the worker process
on (the default), the copies are made and published there instead (``copier``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from nats.aio.client import Client as NatsClient
from puskesos_shared.messaging.fast_ingest import FastIngest, Outgoing
from puskesos_shared.subscribers import Subscriber
from puskesos_shared.topology import Topology

from .copies import FAST_INGEST_FLOW, FAST_INGEST_OUTSTANDING_ACKS, FeedHeaders, FeedSubjects
from .worker import Relayed


def feed_headers(subscriber: Subscriber, generation: int, item: Relayed) -> dict[str, str]:
    return FeedHeaders(subscriber, generation).of(item.sequence, item.event_id)


class NatsFeedSink:
    def __init__(self, nc: NatsClient, topology: Topology, *, timeout: float = 15.0) -> None:
        self.topology = topology
        self.fast = FastIngest(nc, flow=FAST_INGEST_FLOW, max_outstanding_acks=FAST_INGEST_OUTSTANDING_ACKS,
                               timeout=timeout)

    async def deliver(self, subscriber: Subscriber, generation: int, items: Sequence[Relayed],
                      keep_alive: Callable[[], Awaitable[None]]) -> None:
        if not items:
            return
        headers, subjects = FeedHeaders(subscriber, generation), FeedSubjects(self.topology, subscriber)
        await self.fast.publish([Outgoing(subjects.of(item.subject), item.body,
                                          headers.of(item.sequence, item.event_id)) for item in items])
