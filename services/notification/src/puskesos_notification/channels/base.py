"""The channel port: what the delivery logic needs from anything that carries a message."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol

from puskesos_shared.contracts.notification import FailureReason, NotificationChannel
from puskesos_shared.messaging import TransientError


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    notification_id: uuid.UUID  # the provider's idempotency key
    to: str  # E.164 (+62...)
    text: str
    template_id: str
    template_version: int


@dataclass(frozen=True, slots=True)
class SendReceipt:
    provider_message_id: str
    attempts: int
    #: The provider had already accepted this idempotency key (a resend after a crash).
    replayed: bool = False


class DeliveryFailure(Exception):
    """The message could not be delivered and retrying now will not help; recorded as NotificationFailed."""

    def __init__(self, reason: FailureReason, detail: str, attempts: int) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason, self.detail, self.attempts = reason, detail, attempts


class ChannelUnavailable(TransientError):
    """The channel is shutting down; the event is retried later (by this or another replica)."""


class Channel(Protocol):
    @property
    def kind(self) -> NotificationChannel: ...

    async def send(self, message: OutgoingMessage) -> SendReceipt:
        """Delivers ``message`` (idempotent per notification id) or raises ``DeliveryFailure``."""
        ...

    async def close(self) -> None: ...
