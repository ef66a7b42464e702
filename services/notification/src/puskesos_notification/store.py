"""Delivery records, the officers' directory and opt-outs: ports and their Mongo adapters.

``deliveries`` holds one document per notification id (``_id``: unique by construction). The
first run inserts it ``pending`` with the rendered text and the phone number; the outcome is
a guarded update (``{_id, state: pending}``) that also stores the outcome event in the
document's ``_outbox``, so the state change and its event are one single-document write.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from puskesos_shared.contracts.notification import FailureReason, NotificationChannel, Recipient
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.mongo import Document
from puskesos_shared.outbox import OUTBOX_FIELD
from puskesos_shared.regions import district_of, regency_of
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from .domain import DeliveryRecord, DeliveryState, Notification


@dataclass(frozen=True, slots=True)
class OfficerContact:
    officer_id: str
    phone: str  # E.164 mobile
    role: OfficerRole
    scope: tuple[str, ...]  # village, kecamatan or regency codes
    active: bool = True


class DeliveryStore(Protocol):
    async def begin(self, n: Notification, channel: NotificationChannel) -> DeliveryRecord: ...
    async def finish(self, notification_id: uuid.UUID, state: DeliveryState, outcome: dict[str, Any],
                     outbox: list[dict[str, Any]]) -> DeliveryRecord | None: ...
    async def get(self, notification_id: uuid.UUID) -> DeliveryRecord | None: ...


class Directory(Protocol):
    async def officers_covering(self, village_code: str, roles: tuple[OfficerRole, ...]) -> list[OfficerContact]: ...
    async def is_opted_out(self, phone_hash: str) -> bool: ...


def _to_doc(n: Notification, channel: NotificationChannel, now: dt.datetime) -> Document:
    return {
        "_id": str(n.notification_id), "state": DeliveryState.PENDING.value, "channel": channel.value,
        "source_event_id": str(n.source_event_id), "source_event_type": n.source_event_type,
        "correlation_id": n.correlation_id, "village_code": n.village_code,
        "recipient": n.recipient.model_dump(mode="json"), "template_id": n.template_id,
        "template_version": n.template_version, "text": n.text, "phone": n.phone,
        "no_contact_detail": n.no_contact_detail, "created_at": now, "updated_at": now,
    }


def _from_doc(doc: Document) -> DeliveryRecord:
    n = Notification(
        notification_id=uuid.UUID(doc["_id"]), source_event_id=uuid.UUID(doc["source_event_id"]),
        source_event_type=doc["source_event_type"], correlation_id=doc["correlation_id"],
        village_code=doc.get("village_code"), recipient=Recipient.model_validate(doc["recipient"]),
        template_id=doc["template_id"], template_version=int(doc["template_version"]), text=doc["text"],
        phone=doc.get("phone"), no_contact_detail=doc.get("no_contact_detail", ""),
    )
    reason = doc.get("reason")
    return DeliveryRecord(
        notification=n, channel=NotificationChannel(doc["channel"]), state=DeliveryState(doc["state"]),
        attempts=int(doc.get("attempts", 0)), provider_message_id=doc.get("provider_message_id"),
        reason=FailureReason(reason) if reason else None, detail=doc.get("detail", ""),
        outbox=list(doc.get(OUTBOX_FIELD) or []),
    )


class MongoNotificationStore:
    """Deliveries, officers and opt-outs in the service's own database."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.deliveries = db["deliveries"]
        self.officers = db["officers"]
        self.opt_outs = db["opt_outs"]

    async def create_indexes(self) -> None:
        await self.deliveries.create_index([("source_event_id", 1)], name="by_source_event")
        await self.deliveries.create_index([("state", 1)], name="by_state")
        await self.deliveries.create_index([("recipient.id", 1)], name="by_recipient")  # a resident's data export
        await self.officers.create_index([("scope", 1)], name="by_scope")

    # deliveries --------------------------------------------------------------------------
    async def begin(self, n: Notification, channel: NotificationChannel) -> DeliveryRecord:
        """The record of ``n``: inserted ``pending`` the first time, as stored every later time."""
        try:
            doc = _to_doc(n, channel, dt.datetime.now(dt.UTC))
            await self.deliveries.insert_one(doc)
            return _from_doc(doc)
        except DuplicateKeyError:
            found = await self.deliveries.find_one({"_id": str(n.notification_id)})
            assert found is not None, "a delivery record is never deleted"
            return _from_doc(found)

    async def finish(self, notification_id: uuid.UUID, state: DeliveryState, outcome: dict[str, Any],
                     outbox: list[dict[str, Any]]) -> DeliveryRecord | None:
        """``pending → state`` with ``outcome`` fields and the outcome event; None if it was already done."""
        doc = await self.deliveries.find_one_and_update(
            {"_id": str(notification_id), "state": DeliveryState.PENDING.value},
            {"$set": {**outcome, "state": state.value, "updated_at": dt.datetime.now(dt.UTC), OUTBOX_FIELD: outbox}},
            return_document=ReturnDocument.AFTER,
        )
        return _from_doc(doc) if doc else None

    async def get(self, notification_id: uuid.UUID) -> DeliveryRecord | None:
        doc = await self.deliveries.find_one({"_id": str(notification_id)})
        return _from_doc(doc) if doc else None

    async def for_source(self, source_event_id: uuid.UUID) -> list[DeliveryRecord]:
        cursor = self.deliveries.find({"source_event_id": str(source_event_id)}).sort("_id", 1)
        return [_from_doc(doc) async for doc in cursor]

    # officers ----------------------------------------------------------------------------
    async def upsert_officer(self, officer: OfficerContact) -> None:
        await self.officers.update_one({"_id": officer.officer_id}, {"$set": {
            "phone": officer.phone, "role": officer.role.value, "scope": list(officer.scope),
            "active": officer.active, "updated_at": dt.datetime.now(dt.UTC)}}, upsert=True)

    async def remove_officer(self, officer_id: str) -> bool:
        result = await self.officers.delete_one({"_id": officer_id})
        return result.deleted_count == 1

    async def officer(self, officer_id: str) -> OfficerContact | None:
        doc = await self.officers.find_one({"_id": officer_id})
        return _officer(doc) if doc else None

    async def officers_covering(self, village_code: str, roles: tuple[OfficerRole, ...]) -> list[OfficerContact]:
        """Active officers with one of ``roles`` whose scope holds the village, its kecamatan or its regency."""
        codes = [village_code, district_of(village_code), regency_of(village_code)]
        cursor = self.officers.find({"scope": {"$in": codes}}).sort("_id", 1)
        found = [_officer(doc) async for doc in cursor]
        return [o for o in found if o.active and o.role in roles]

    # opt-outs ----------------------------------------------------------------------------
    async def set_opt_out(self, phone_hash: str, opted_out: bool) -> None:
        await self.opt_outs.update_one({"_id": phone_hash}, {"$set": {
            "opted_out": opted_out, "updated_at": dt.datetime.now(dt.UTC)}}, upsert=True)

    async def is_opted_out(self, phone_hash: str) -> bool:
        doc = await self.opt_outs.find_one({"_id": phone_hash})
        return bool(doc and doc.get("opted_out"))


def _officer(doc: Document) -> OfficerContact:
    return OfficerContact(officer_id=doc["_id"], phone=doc["phone"], role=OfficerRole(doc["role"]),
                          scope=tuple(doc.get("scope") or ()), active=bool(doc.get("active", True)))
