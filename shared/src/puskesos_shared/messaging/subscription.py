"""Wiring a handler to a durable JetStream pull consumer through FastStream."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from faststream import AckPolicy
from faststream.nats import JStream, NatsBroker, NatsMessage, PullSub

from ..contracts.envelope import Event
from ..contracts.registry import subjects_for
from ..topology import Topology
from .consumer import ConsumerPolicy, Decoder, EventHandler, process_delivery, redrive_delivery
from .dead_letter import DeadLetters
from .redrive import RedriveHandler


def subscribe_events(
    broker: NatsBroker,
    topology: Topology,
    dead_letters: DeadLetters,
    *,
    consumer: str,
    events: Sequence[type[Event]],
    handler: EventHandler,
    policy: ConsumerPolicy | None = None,
    subjects: Sequence[str] | None = None,
) -> None:
    """Registers a durable pull consumer ``consumer`` for ``events`` on the events stream.

    Several processes registering the same ``consumer`` share its messages (that is how a
    service scales out). Pass ``subjects`` to widen the filter (e.g. every event for audit).
    The consumer is also registered for re-drives of its dead letters (``dead_letters.redrive``),
    which run the same decode + handler path as a live delivery.
    """
    policy = policy or ConsumerPolicy()
    filters = list(subjects) if subjects else subjects_for(events, topology)
    if not filters:
        raise ValueError("a consumer needs at least one event type or subject")
    accepted = None if subjects else tuple(events)

    subscriber = broker.subscriber(
        filters[0],
        stream=JStream(topology.events_stream, declare=False),
        durable=consumer,
        config=policy.consumer_config(consumer, filters),
        pull_sub=PullSub(batch_size=policy.concurrency, timeout=policy.fetch_timeout_seconds),
        ack_policy=AckPolicy.MANUAL,
        title=f"{consumer}",
        description=f"Durable consumer {consumer} of {', '.join(filters)}",
    )

    dead_letters.redrive.register(consumer, event_redrive_handler(consumer, handler, events=accepted),
                                  subjects=filters)

    @subscriber
    async def _on_message(msg: NatsMessage) -> None:
        await process_delivery(
            msg.raw_message,
            consumer=consumer,
            handler=handler,
            dead_letters=dead_letters,
            policy=policy,
            events=accepted,
        )


def event_redrive_handler(consumer: str, handler: EventHandler, *, events: Sequence[type[Event]] | None = None,
                          decoder: Decoder | None = None) -> RedriveHandler:
    """The re-drive of an event consumer's dead letter: ``process_delivery``'s decode and handler, no ack."""

    async def redrive(body: bytes, headers: Mapping[str, str]) -> None:
        await redrive_delivery(body, headers, consumer=consumer, handler=handler, events=events, decoder=decoder)

    return redrive
