"""Messaging kit: publishing with Nats-Msg-Id, consumer defaults, dead letters, streams."""

from .consumer import ConsumerPolicy, Delivery, Outcome, TransientError, process_delivery
from .dead_letter import DeadLetters
from .publisher import EventPublisher, PublishError, encode_event, event_headers
from .streams import ensure_streams
from .subscription import subscribe_events

__all__ = [
    "ConsumerPolicy",
    "DeadLetters",
    "Delivery",
    "EventPublisher",
    "Outcome",
    "PublishError",
    "TransientError",
    "encode_event",
    "ensure_streams",
    "event_headers",
    "process_delivery",
    "subscribe_events",
]
