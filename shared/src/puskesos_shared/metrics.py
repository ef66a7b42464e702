"""Prometheus metrics shared by every service (exposed at ``/metrics``)."""

from prometheus_client import Counter, Histogram

MESSAGES_PROCESSED = Counter(
    "puskesos_messages_processed_total",
    "Messages handled by a consumer, by outcome (acked, retry, dead_lettered; redriven, redrive_failed)",
    ["consumer", "outcome"],
)
MESSAGE_LATENCY = Histogram(
    "puskesos_message_processing_seconds",
    "Time from receiving a delivery to its ack, nak or dead letter",
    ["consumer"],
)
EVENTS_PUBLISHED = Counter(
    "puskesos_events_published_total",
    "Events confirmed by the broker, by event type",
    ["event_type"],
)
