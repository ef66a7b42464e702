"""The notification service's part of a resident's data export (``export_resident``).

The service stores NIKs and KK numbers only as keyed hashes (``ContactKeys``), so the person is
found by hashing what the request names:

* messages (``deliveries``) addressed to the person (their NIK hash), to their household (a KK
  hash: the family cards intake names and the one ``members`` links the NIK to) or to the
  complainant of one of their cases (``case:<id>``, for the cases ``cases`` links to the NIK hash),
  with the text sent, the number it went to and the outcome;
* the phone numbers kept to reach them: their household's (``households``) and the contact phone
  of their complaints (``complaints``);
* the opt-out state of each of those numbers (``opt_outs``, by phone hash).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from puskesos_shared.resident_export import ExportHandler, ExportResident, ExportSection, section

from .contacts import MongoContactBook
from .domain import ContactKeys
from .store import MongoNotificationStore

MESSAGE_FIELDS = ("state", "channel", "template_id", "template_version", "source_event_type", "source_event_id",
                  "village_code", "text", "phone", "no_contact_detail", "attempts", "provider_message_id", "reason",
                  "detail", "created_at", "updated_at")
NOTES = (
    "Found by keyed hashes (HMAC-SHA256) of the NIK and of the family cards: this service keeps no NIK or KK "
    "number in the clear.",
    "Messages to the household are those addressed to a family card the person belongs or belonged to.",
)


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.datetime) else value


class ResidentMessages:
    def __init__(self, store: MongoNotificationStore, book: MongoContactBook, keys: ContactKeys) -> None:
        self.store, self.book, self.keys = store, book, keys

    async def export(self, req: ExportResident) -> ExportSection:
        nik_hash = self.keys.nik(req.nik)
        kk_hashes = {self.keys.kk(kk) for kk in req.kk_numbers}
        member = await self.book.household_of_member(nik_hash)
        if member is not None:
            kk_hashes.add(member)
        complaints = [doc async for doc in self.book.complaints.find({"nik_hash": nik_hash}).sort("_id", 1)]
        cases = [str(doc["_id"]) async for doc in self.book.cases.find({"nik_hash": nik_hash}, {"_id": 1})]
        addressed = {nik_hash: "you", **dict.fromkeys(sorted(kk_hashes), "your household"),
                     **{f"case:{case_id}": "you, as the complainant of a case" for case_id in cases}}
        cursor = self.store.deliveries.find({"recipient.id": {"$in": list(addressed)}}).sort("created_at", 1)
        messages = [{"notification_id": doc["_id"], "addressed_to": addressed[doc["recipient"]["id"]],
                     **{k: _iso(doc[k]) for k in MESSAGE_FIELDS if doc.get(k) is not None}} async for doc in cursor]
        contacts = [{"source": "household registration", "phone": doc["phone"]}
                    async for doc in self.book.households.find({"_id": {"$in": sorted(kk_hashes)}}) if doc.get("phone")]
        contacts += [{"source": f"complaint {doc['case_number']}", "phone": doc["phone"]}
                     for doc in complaints if doc.get("phone")]
        phones = sorted({c["phone"] for c in contacts} | {m["phone"] for m in messages if m.get("phone")})
        opt_outs = []
        for phone in phones:
            doc = await self.store.opt_outs.find_one({"_id": self.keys.phone(phone)})
            if doc is not None:
                opt_outs.append({"phone": phone, "opted_out": bool(doc.get("opted_out")),
                                 "updated_at": _iso(doc.get("updated_at"))})
        records = {"messages": messages, "contact_phones": contacts, "opt_outs": opt_outs}
        return section("notification", records, NOTES)


def export_handler(store: MongoNotificationStore, book: MongoContactBook, keys: ContactKeys) -> ExportHandler:
    return ResidentMessages(store, book, keys).export
