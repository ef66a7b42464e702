"""The feed relay's wire-protocol helpers against a real nats-server: ``BatchPuller`` (JetStream pull
requests on a callback subscription) and ``FastIngest`` (ADR-50 fast batch publishing)."""

from __future__ import annotations

import uuid

import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig
from puskesos_shared.messaging.fast_ingest import FastIngest, FastIngestError, FastIngestUnsupported, Outgoing
from puskesos_shared.messaging.pull import BatchPuller, ConsumerGone

pytestmark = pytest.mark.integration


def outgoing(subject: str, numbers: range, *, body: bytes = b"{}", run: str = "a") -> list[Outgoing]:
    return [Outgoing(subject, body + str(n).encode(), {"Nats-Msg-Id": f"{run}:{n}", "Seq": str(n)})
            for n in numbers]


async def stream_of(js: JetStreamContext, *, batched: bool = True, max_msg_size: int | None = None) -> str:
    name = f"T{uuid.uuid4().hex[:10].upper()}"
    await js.add_stream(StreamConfig(name=name, subjects=[f"{name.lower()}.>"], allow_batched=batched or None,
                                     max_msg_size=max_msg_size, duplicate_window=120))
    return name


async def stored(js: JetStreamContext, stream: str) -> list[int]:
    """The ``Seq`` header of every stored message, in stream order."""
    info = await js.stream_info(stream)
    out = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await js.get_msg(stream, seq)
        assert msg.headers is not None
        out.append(int(msg.headers["Seq"]))
    return out


async def test_fast_ingest_stores_a_batch_in_order_and_a_repeat_once(nats_client: NatsClient,
                                                                     jetstream: JetStreamContext) -> None:
    stream = await stream_of(jetstream)
    subject = f"{stream.lower()}.x"
    fast = FastIngest(nats_client, flow=10, max_outstanding_acks=1)  # small flow: the publisher waits often

    ack = await fast.publish(outgoing(subject, range(250)))
    assert (ack.stream, ack.count, ack.last_seq) == (stream, 250, 250)
    # sent again with 50 more (a batch given back after a crash): the first 250 are duplicates
    ack = await fast.publish(outgoing(subject, range(300)))
    assert (ack.count, ack.last_seq) == (300, 300)
    assert await stored(jetstream, stream) == list(range(300))
    # a batch of one message commits at once
    ack = await fast.publish(outgoing(subject, range(300, 301)))
    assert (ack.count, ack.last_seq) == (1, 301)


async def test_fast_ingest_refused_by_a_stream_without_it(nats_client: NatsClient,
                                                          jetstream: JetStreamContext) -> None:
    stream = await stream_of(jetstream, batched=False)
    with pytest.raises(FastIngestUnsupported):
        await FastIngest(nats_client).publish(outgoing(f"{stream.lower()}.x", range(20)))
    with pytest.raises(FastIngestUnsupported):
        await FastIngest(nats_client).publish(outgoing(f"{stream.lower()}.x", range(1)))


async def test_fast_ingest_fails_a_batch_with_a_refused_message(nats_client: NatsClient,
                                                                jetstream: JetStreamContext) -> None:
    """A message the stream refuses (too large) fails the batch; what follows it is not stored, so a
    caller that sends the batch again (fixed) gets every message in order."""
    stream = await stream_of(jetstream, max_msg_size=512)
    subject = f"{stream.lower()}.x"
    items = outgoing(subject, range(40))
    items[25] = Outgoing(subject, b"x" * 2000, items[25].headers)
    with pytest.raises(FastIngestError) as refused:
        await FastIngest(nats_client, flow=5).publish(items)
    assert not isinstance(refused.value, FastIngestUnsupported)
    assert await stored(jetstream, stream) == list(range(25))
    ack = await FastIngest(nats_client, flow=5).publish(outgoing(subject, range(40)))
    assert ack.count == 40
    assert await stored(jetstream, stream) == list(range(40))


async def test_batch_puller_reads_batches_in_order_and_ends_on_expiry(nats_client: NatsClient,
                                                                      jetstream: JetStreamContext) -> None:
    stream = await stream_of(jetstream)
    await FastIngest(nats_client).publish(outgoing(f"{stream.lower()}.x", range(1200)))
    await jetstream.add_consumer(stream, ConsumerConfig(durable_name="reader", ack_policy=AckPolicy.ALL,
                                                        deliver_policy=DeliverPolicy.ALL, max_ack_pending=500))
    seen: list[int] = []
    puller = BatchPuller(nats_client, stream, "reader")
    while len(seen) < 1200:
        msgs = await puller.fetch(500, timeout=2)
        assert 0 < len(msgs) <= 500
        seen += [int(msg.headers["Seq"]) for msg in msgs if msg.headers]
        await msgs[-1].ack_sync()  # acknowledge-all
    assert seen == list(range(1200))
    assert await puller.fetch(500, timeout=0.3) == []  # nothing left: the request expires
    await jetstream.delete_consumer(stream, "reader")
    with pytest.raises(ConsumerGone):
        await puller.fetch(10, timeout=0.5)
    with pytest.raises(ConsumerGone):
        await BatchPuller(nats_client, stream, "never-created").fetch(10, timeout=0.5)
