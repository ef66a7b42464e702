"""Events of the notification service."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import AwareDatetime, Field

from .envelope import Contract, Event, OpenEnum
from .primitives import identifier, personal


class NotificationChannel(StrEnum):
    WHATSAPP = "whatsapp"
    SMS = "sms"
    WEBHOOK = "webhook"
    LOCAL_FILE = "local_file"  # development: written to a file instead of sent


class RecipientKind(StrEnum):
    RESIDENT = "resident"
    OFFICER = "officer"
    COORDINATOR = "coordinator"


class Recipient(Contract):
    kind: RecipientKind
    # a platform-wide keyed hash would let subscribers join their data on it: pseudonymised per subscriber
    id: str = Field(min_length=1, max_length=100, description="Officer id, or the keyed hash of a resident's NIK",
                    json_schema_extra=identifier("recipient"))
    address_masked: str = Field(default="", max_length=100, description="e.g. 0812****7890; never in the clear",
                                json_schema_extra=personal())  # part of a phone number


class NotificationBase(Contract):
    notification_id: uuid.UUID = Field(description="uuid5 of (source event, recipient, template)")
    source_event_id: uuid.UUID
    source_event_type: str = Field(min_length=1, max_length=60)
    recipient: Recipient
    channel: NotificationChannel
    template_id: str = Field(pattern=r"^[a-z0-9_]+$", examples=["complaint_receipt"])
    template_version: int = Field(ge=1)


class NotificationSentData(NotificationBase):
    # a WhatsApp message id (wamid.*) carries the recipient's phone number, base64-encoded
    provider_message_id: str = Field(min_length=1, max_length=200, json_schema_extra=identifier("provider_message"))
    attempts: int = Field(ge=1)
    sent_at: AwareDatetime


class FailureReason(OpenEnum):
    """Why a notification was not delivered. Open: a release may add a reason."""

    NO_CONTACT = "no_contact"  # resident has no phone: skipped
    OPTED_OUT = "opted_out"
    PROVIDER_ERROR = "provider_error"  # retries exhausted
    REJECTED_BY_PROVIDER = "rejected_by_provider"


class NotificationFailedData(NotificationBase):
    reason: FailureReason
    detail: str = Field(default="", max_length=500, json_schema_extra=personal())  # the provider's text
    attempts: int = Field(ge=0)


class NotificationSent(Event):
    PRODUCER: ClassVar[str] = "notification"
    SUBJECT_NAME: ClassVar[str] = "notification_sent"
    event_type: Literal["NotificationSent"] = "NotificationSent"
    schema_version: Literal[1] = 1
    data: NotificationSentData


class NotificationFailed(Event):
    PRODUCER: ClassVar[str] = "notification"
    SUBJECT_NAME: ClassVar[str] = "notification_failed"
    event_type: Literal["NotificationFailed"] = "NotificationFailed"
    schema_version: Literal[1] = 1
    data: NotificationFailedData
