"""The notification domain (pure): recipients, notification ids, delivery records and their events.

Once only. A notification is identified by ``stable_id("notification", source event id, recipient
id, template id)``: the same event for the same recipient and template is one notification, however
often the event is delivered, by however many replicas. Its delivery record moves
``pending → sent`` or ``pending → failed`` exactly once (a guarded single-document update that also
stores the outcome event in the record's outbox); the provider receives the notification id as its
``Idempotency-Key``, so a resend after a crash between the provider call and the record update is
harmless. Outcome events have ids derived from the notification id.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from puskesos_shared.contracts import Actor, Event, NotificationFailed, NotificationSent
from puskesos_shared.contracts.notification import (
    FailureReason,
    NotificationChannel,
    NotificationFailedData,
    NotificationSentData,
    Recipient,
    RecipientKind,
)
from puskesos_shared.ids import derived_event_id, stable_id

from .formatting import mask_phone
from .templates import Rendered

ACTOR = Actor.system("notification")


class ContactKeys:
    """Keyed hashes (HMAC-SHA256) of NIK, KK and phone numbers: recipient ids and lookup keys.

    Only hashes of NIK and KK numbers are stored; without the key, a hash cannot be tested against
    the (small) space of possible numbers. Changing the key changes recipient ids, hence
    notification ids: rotate it only with an empty backlog.
    """

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("the hash secret must be at least 32 bytes")
        self._secret = secret

    def _hash(self, kind: str, value: str) -> str:
        digest = hmac.new(self._secret, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
        return f"{kind}:{digest[:40]}"

    def nik(self, nik: str) -> str:
        return self._hash("nik", nik)

    def kk(self, kk_number: str) -> str:
        return self._hash("kk", kk_number)

    def phone(self, e164: str) -> str:
        return self._hash("phone", e164)


def notification_id(source_event_id: uuid.UUID, recipient_id: str, template_id: str) -> uuid.UUID:
    return stable_id("notification", source_event_id, recipient_id, template_id)


@dataclass(frozen=True, slots=True)
class Reach:
    """How to reach a recipient: a phone, or why not (``unknown``: the contact may still arrive)."""

    phone: str | None = None
    unknown: bool = False
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Planned:
    """One message an event calls for, before it has a delivery record."""

    kind: RecipientKind
    recipient_id: str
    template_id: str
    values: dict[str, str]
    reach: Reach
    #: Context the text needs that has not arrived yet (the aid round, the case); worth waiting for.
    missing: str = ""

    @property
    def waiting_for(self) -> str:
        """Why this message should wait for a retry ("" when it can go now)."""
        return self.reach.detail if self.reach.unknown else self.missing


class DeliveryState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Notification:
    """A rendered message for one recipient, ready for its delivery record."""

    notification_id: uuid.UUID
    source_event_id: uuid.UUID
    source_event_type: str
    correlation_id: str
    village_code: str | None
    recipient: Recipient
    template_id: str
    template_version: int
    text: str
    phone: str | None
    no_contact_detail: str = ""


def build_notification(source: Event, planned: Planned, rendered: Rendered) -> Notification:
    phone = planned.reach.phone
    recipient = Recipient(kind=planned.kind, id=planned.recipient_id,
                          address_masked=mask_phone(phone) if phone else "")
    return Notification(
        notification_id=notification_id(source.event_id, planned.recipient_id, planned.template_id),
        source_event_id=source.event_id, source_event_type=source.event_type,
        correlation_id=source.correlation_id, village_code=source.village_code, recipient=recipient,
        template_id=rendered.template_id, template_version=rendered.version, text=rendered.text,
        phone=phone, no_contact_detail=planned.reach.detail,
    )


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """The stored state of one notification (one document per notification id)."""

    notification: Notification
    channel: NotificationChannel
    state: DeliveryState
    attempts: int = 0
    provider_message_id: str | None = None
    reason: FailureReason | None = None
    detail: str = ""
    outbox: list[dict[str, Any]] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.state is not DeliveryState.PENDING


def _base(n: Notification, channel: NotificationChannel) -> dict[str, Any]:
    return {
        "notification_id": n.notification_id, "source_event_id": n.source_event_id,
        "source_event_type": n.source_event_type, "recipient": n.recipient, "channel": channel,
        "template_id": n.template_id, "template_version": n.template_version,
    }


def _meta(n: Notification, purpose: str, at: dt.datetime) -> dict[str, Any]:
    return {
        "event_id": derived_event_id(n.notification_id, purpose), "occurred_at": at, "producer": "notification",
        "correlation_id": n.correlation_id, "causation_id": str(n.source_event_id), "actor": ACTOR,
        "village_code": n.village_code,
    }


def sent_event(n: Notification, channel: NotificationChannel, *, provider_message_id: str, attempts: int,
               at: dt.datetime) -> NotificationSent:
    data = NotificationSentData(**_base(n, channel), provider_message_id=provider_message_id[:200],
                                attempts=max(1, attempts), sent_at=at)
    return NotificationSent(**_meta(n, "notification-sent", at), data=data)


def failed_event(n: Notification, channel: NotificationChannel, *, reason: FailureReason, detail: str,
                 attempts: int, at: dt.datetime) -> NotificationFailed:
    data = NotificationFailedData(**_base(n, channel), reason=reason, detail=detail[:500], attempts=attempts)
    return NotificationFailed(**_meta(n, "notification-failed", at), data=data)
