"""The dead-letter stream: where a message goes when no retry can help, with the reason.

The original body is kept byte for byte; the original subject, stream sequence, the
consumer that gave up, the delivery count and the reason travel in headers. The copy's
``Nats-Msg-Id`` is derived from (consumer, stream, sequence), so a consumer that crashes
after dead-lettering and sees the message again does not copy it twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from . import headers as h
from .publisher import EventPublisher
from .redrive import RedriveRegistry


def dead_letter_headers(
    *,
    original_headers: Mapping[str, str],
    original_subject: str,
    original_stream: str,
    original_sequence: int,
    consumer: str,
    deliveries: int,
    reason: str,
    failed_at: dt.datetime,
) -> dict[str, str]:
    out = {k: v for k, v in original_headers.items() if not k.startswith("Nats-")}
    reason = " ".join(reason.split())  # headers are single-line
    if len(reason) > h.MAX_REASON_CHARS:
        reason = reason[: h.MAX_REASON_CHARS - 1] + "…"
    out.update(
        {
            h.MSG_ID: f"dlq:{consumer}:{original_stream}:{original_sequence}",
            h.DLQ_REASON: reason or "(no reason given)",
            h.DLQ_ORIGINAL_SUBJECT: original_subject,
            h.DLQ_ORIGINAL_STREAM: original_stream,
            h.DLQ_ORIGINAL_SEQUENCE: str(original_sequence),
            h.DLQ_CONSUMER: consumer,
            h.DLQ_DELIVERIES: str(deliveries),
            h.DLQ_FAILED_AT: failed_at.isoformat(),
        }
    )
    if original_headers.get(h.MSG_ID):
        out["Puskesos-Dlq-Original-Msg-Id"] = original_headers[h.MSG_ID]
    return out


class DeadLetters:
    """Copies messages of one service's consumers to ``{ns}.dlq.{service}.{consumer}``.

    ``redrive`` lists the consumers of this process their dead letters can be re-driven to
    (``subscribe_events`` registers each one; see ``redrive``).
    """

    def __init__(self, publisher: EventPublisher, service: str) -> None:
        self._publisher = publisher
        self.service = service
        self.redrive = RedriveRegistry()

    async def send(
        self,
        *,
        body: bytes,
        original_headers: Mapping[str, str],
        original_subject: str,
        original_stream: str,
        original_sequence: int,
        consumer: str,
        deliveries: int,
        reason: str,
    ) -> None:
        headers = dead_letter_headers(
            original_headers=original_headers,
            original_subject=original_subject,
            original_stream=original_stream,
            original_sequence=original_sequence,
            consumer=consumer,
            deliveries=deliveries,
            reason=reason,
            failed_at=dt.datetime.now(dt.UTC),
        )
        subject = self._publisher.topology.dead_letter_subject(self.service, consumer)
        await self._publisher.publish_raw(subject, body, headers)
