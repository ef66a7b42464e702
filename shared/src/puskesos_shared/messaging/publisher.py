"""Publishing events: always to JetStream, always with ``Nats-Msg-Id`` set to the event id.

FastStream's ``message_id`` is not ``Nats-Msg-Id``; the broker only de-duplicates on the
header, so this helper sets it on every publish and refuses raw publishes without it.
"""

from __future__ import annotations

from collections.abc import Mapping

from faststream.nats import NatsBroker
from nats.js.api import PubAck

from ..contracts.envelope import Event
from ..contracts.registry import subject_for
from ..topology import Topology
from . import headers as h


def event_headers(event: Event) -> dict[str, str]:
    out = {
        h.MSG_ID: str(event.event_id),
        h.EVENT_TYPE: event.event_type,
        h.SCHEMA_VERSION: str(event.schema_version),
        h.CORRELATION_ID: event.correlation_id,
    }
    if event.causation_id:
        out[h.CAUSATION_ID] = event.causation_id
    return out


def encode_event(event: Event) -> bytes:
    return event.model_dump_json().encode()


class PublishError(RuntimeError):
    """The broker did not confirm a publish; the caller must keep the event and retry."""


class EventPublisher:
    """Publishes events of one topology to the events stream and waits for the broker's ack."""

    def __init__(self, broker: NatsBroker, topology: Topology, *, timeout: float = 5.0) -> None:
        self._broker = broker
        self.topology = topology
        self._timeout = timeout

    async def publish(self, event: Event) -> PubAck:
        return await self.publish_raw(subject_for(event, self.topology), encode_event(event), event_headers(event))

    async def publish_raw(self, subject: str, body: bytes, headers: Mapping[str, str]) -> PubAck:
        """Publishes already-encoded bytes (an outbox entry, a dead letter) with their headers."""
        if not headers.get(h.MSG_ID):
            raise ValueError(f"refusing to publish to {subject} without a {h.MSG_ID} header")
        stream = (
            self.topology.dead_letter_stream
            if subject.startswith(f"{self.topology.namespace}.dlq.")
            else self.topology.events_stream
        )
        try:
            ack = await self._broker.publish(
                body, subject, headers=dict(headers), stream=stream, timeout=self._timeout
            )
        except Exception as exc:  # nats raises several unrelated types; callers see one
            raise PublishError(f"publish to {subject} failed: {exc!r}") from exc
        if ack is None:  # pragma: no cover - FastStream returns an ack whenever stream= is given
            raise PublishError(f"publish to {subject} was not acknowledged")
        return ack
