"""The messaging kit against a real nats-server: de-duplication, retries, dead letters."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from faststream.nats import NatsBroker
from nats.js import JetStreamContext
from puskesos_shared.contracts import ComplaintFiled, Event
from puskesos_shared.contracts.examples import example
from puskesos_shared.messaging import (
    ConsumerPolicy,
    DeadLetters,
    Delivery,
    EventPublisher,
    TransientError,
    subscribe_events,
)
from puskesos_shared.messaging import headers as h
from puskesos_shared.topology import Topology

pytestmark = pytest.mark.integration

FAST = ConsumerPolicy(max_attempts=3, backoff_initial_seconds=0.05, backoff_max_seconds=0.2,
                      ack_wait_seconds=5, fetch_timeout_seconds=0.2)


def complaint(n: int) -> ComplaintFiled:
    base = example("ComplaintFiled")
    assert isinstance(base, ComplaintFiled)
    return base.model_copy(update={"event_id": uuid.UUID(int=n), "correlation_id": f"case:{n}"})


async def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    """Polls ``condition`` until true; fails with a timeout otherwise."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def stream_messages(js: JetStreamContext, stream: str) -> list[Any]:
    info = await js.stream_info(stream)
    return [await js.get_msg(stream, seq) for seq in range(info.state.first_seq, info.state.last_seq + 1)
            if info.state.messages]


async def test_same_event_published_twice_is_one_message(broker: NatsBroker, topology: Topology,
                                                         jetstream: JetStreamContext) -> None:
    publisher = EventPublisher(broker, topology)
    event = complaint(1)
    first = await publisher.publish(event)
    second = await publisher.publish(event)
    assert not first.duplicate
    assert second.duplicate is True
    assert second.seq == first.seq
    info = await jetstream.stream_info(topology.events_stream)
    assert info.state.messages == 1
    stored = await jetstream.get_msg(topology.events_stream, first.seq)
    assert stored.headers is not None
    assert stored.headers[h.MSG_ID] == str(event.event_id)
    assert stored.subject == f"{topology.namespace}.events.intake.complaint_filed.v1"


async def test_raw_publish_without_msg_id_is_refused(broker: NatsBroker, topology: Topology) -> None:
    publisher = EventPublisher(broker, topology)
    with pytest.raises(ValueError, match="Nats-Msg-Id"):
        await publisher.publish_raw(topology.event_subject("intake", "complaint_filed", 1), b"{}", {})


async def test_streams_use_file_storage_and_a_duplicate_window(jetstream: JetStreamContext,
                                                               topology: Topology) -> None:
    for name in (topology.events_stream, topology.dead_letter_stream):
        info = await jetstream.stream_info(name)
        assert str(getattr(info.config.storage, "value", info.config.storage)) == "file"
        assert (info.config.duplicate_window or 0) >= 3600


async def test_transient_failure_is_retried_and_poison_goes_to_dead_letters(
    broker: NatsBroker, topology: Topology, jetstream: JetStreamContext
) -> None:
    publisher = EventPublisher(broker, topology)
    seen: list[tuple[int, int]] = []
    done: set[int] = set()

    async def handler(event: Event, delivery: Delivery) -> None:
        n = uuid.UUID(str(event.event_id)).int
        seen.append((n, delivery.attempt))
        if n == 2 and delivery.attempt == 1:
            raise TransientError("database briefly unavailable")
        if n == 3:
            raise RuntimeError("bug: cannot handle this complaint")
        done.add(n)

    subscribe_events(broker, topology, DeadLetters(publisher, "probe"), consumer="probe-complaints",
                     events=[ComplaintFiled],
                     handler=handler, policy=FAST)
    await broker.start()

    for n in (1, 2, 3):
        await publisher.publish(complaint(n))
    # a message that is not even JSON, on a subject the consumer reads
    await publisher.publish_raw(topology.event_subject("intake", "complaint_filed", 1), b"{not json",
                                {h.MSG_ID: "garbage-1"})
    # an event version this release does not know
    future = json.loads(complaint(5).model_dump_json())
    future["schema_version"] = 9
    await publisher.publish_raw(topology.event_subject("intake", "complaint_filed", 1),
                                json.dumps(future).encode(), {h.MSG_ID: "future-5"})
    for n in (6, 7):
        await publisher.publish(complaint(n))

    async def dead_letters() -> list[Any]:
        return await stream_messages(jetstream, topology.dead_letter_stream)

    await wait_for(lambda: {1, 2, 6, 7} <= done)
    letters: list[Any] = []

    async def poll_letters() -> None:
        nonlocal letters
        while len(letters) < 3:
            letters = await dead_letters()
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll_letters(), timeout=15)

    # the transient failure succeeded on its second delivery
    assert (2, 1) in seen and (2, 2) in seen
    # the poison message ran exactly max_attempts times, then was dead-lettered
    assert [a for n, a in seen if n == 3] == [1, 2, 3]
    reasons = {m.headers[h.DLQ_ORIGINAL_SEQUENCE]: m for m in letters}
    assert len(reasons) == 3
    by_reason = sorted(m.headers[h.DLQ_REASON] for m in letters)
    assert any("gave up after 3 attempts: RuntimeError: bug" in r for r in by_reason)
    assert any("malformed JSON" in r for r in by_reason)
    assert any("unknown schema_version 9 of ComplaintFiled" in r for r in by_reason)
    for m in letters:
        assert m.headers[h.DLQ_ORIGINAL_SUBJECT] == topology.event_subject("intake", "complaint_filed", 1)
        assert m.headers[h.DLQ_CONSUMER] == "probe-complaints"
        assert m.subject == topology.dead_letter_subject("probe", "probe-complaints")
    poison = next(m for m in letters if "gave up" in m.headers[h.DLQ_REASON])
    assert json.loads(poison.data)["event_id"] == str(uuid.UUID(int=3))  # original body kept

    # nothing left pending: every message was acked or terminated
    await wait_until_settled(jetstream, topology.events_stream, "probe-complaints")


async def wait_until_settled(js: JetStreamContext, stream: str, consumer: str, timeout: float = 10) -> None:
    async def settled() -> None:
        while True:
            info = await js.consumer_info(stream, consumer)
            if info.num_ack_pending == 0 and info.num_pending == 0:
                return
            await asyncio.sleep(0.05)

    await asyncio.wait_for(settled(), timeout)


async def test_delivery_beyond_the_attempt_limit_is_dead_lettered_without_running_the_handler(
    broker: NatsBroker, topology: Topology, jetstream: JetStreamContext, nats_client: Any
) -> None:
    """A message whose handling kept killing the process is parked, not run again and not dropped."""
    publisher = EventPublisher(broker, topology)
    policy = ConsumerPolicy(max_attempts=2, ack_wait_seconds=0.3, fetch_timeout_seconds=0.2,
                            backoff_initial_seconds=0.05)
    subject = topology.event_subject("intake", "complaint_filed", 1)
    await publisher.publish(complaint(11))
    # a "crashing consumer": takes the message on the same durable and never answers, twice
    js = nats_client.jetstream()
    crashing = await js.pull_subscribe(subject, durable="crashy", stream=topology.events_stream,
                                       config=policy.consumer_config("crashy", [subject]))
    for attempt in range(1, policy.max_attempts + 1):
        # fetch blocks until ack_wait has expired on the previous, unanswered delivery
        [msg] = await crashing.fetch(1, timeout=5)
        assert msg.metadata.num_delivered == attempt
    await crashing.unsubscribe()

    ran: list[Event] = []

    async def handler(event: Event, delivery: Delivery) -> None:
        ran.append(event)

    subscribe_events(broker, topology, DeadLetters(publisher, "probe"), consumer="crashy", events=[ComplaintFiled],
                     handler=handler, policy=policy)
    await broker.start()
    await wait_until_settled(jetstream, topology.events_stream, "crashy")
    letters = await stream_messages(jetstream, topology.dead_letter_stream)
    assert ran == []
    assert len(letters) == 1
    assert "the consumer stopped while handling it" in letters[0].headers[h.DLQ_REASON]
    assert letters[0].headers[h.DLQ_DELIVERIES] == "3"
