"""The contact projection: how to reach residents, built from other services' events.

Events do not all carry a phone number, so the service keeps what it needs, keyed by hashes
(never a NIK or KK in the clear):

* ``households``: KK hash → the household's mobile number (HouseholdRegistered/Updated), guarded by
  the household revision so an older event never overwrites a newer one;
* ``members``: NIK hash → KK hash of the household the person belongs to (transfers move it);
* ``complaints``: complaint id → the complainant (contact phone, NIK/KK hashes);
* ``cases``: case id → complaint id, case number, village (CaseOpened);
* ``rounds``: aid round id → name, program, collection period (AidRoundOpened);
* ``allocations``: allocation id → village (AidAllocated), to route DisbursementFailed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Protocol

from puskesos_shared.contracts.primitives import Program
from puskesos_shared.mongo import Document
from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from .messages import CaseInfo, RoundInfo

DUPLICATE_KEY = 11000


@dataclass(frozen=True, slots=True)
class HouseholdContact:
    kk_hash: str
    phone: str | None  # E.164 mobile number, None when the household gave none (or only a landline)
    revision: int


@dataclass(frozen=True, slots=True)
class ComplaintContact:
    complaint_id: str
    phone: str | None  # the contact phone given with the complaint (E.164 mobile)
    nik_hash: str | None
    kk_hash: str | None
    case_number: str
    village_code: str


class ContactBook(Protocol):
    async def household(self, kk_hash: str) -> HouseholdContact | None: ...
    async def household_of_member(self, nik_hash: str) -> str | None: ...
    async def complaint(self, complaint_id: str) -> ComplaintContact | None: ...
    async def case(self, case_id: str) -> CaseInfo | None: ...
    async def round(self, round_id: str) -> RoundInfo | None: ...
    async def allocation_village(self, allocation_id: str) -> str | None: ...


class MongoContactBook:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.households = db["households"]
        self.members = db["members"]
        self.complaints = db["complaints"]
        self.cases = db["cases"]
        self.rounds = db["rounds"]
        self.allocations = db["allocations"]

    async def create_indexes(self) -> None:
        await self.members.create_index([("kk", 1)], name="by_household")
        # a resident's data export finds their complaints and cases by the NIK hash
        await self.complaints.create_index([("nik_hash", 1)], name="by_nik_hash")
        await self.cases.create_index([("nik_hash", 1)], name="by_nik_hash")

    # writes ------------------------------------------------------------------------------
    async def apply_household(self, kk_hash: str, phone: str | None, revision: int, member_hashes: list[str],
                              *, moved_in: str | None = None, moved_out: str | None = None) -> bool:
        """Stores a household revision; returns False when a newer revision is already stored.

        The same revision again (a redelivery after a crash between the writes below) is applied
        again, so that members a crash left unwritten are written now.
        """
        now = dt.datetime.now(dt.UTC)
        try:
            await self.households.update_one(
                {"_id": kk_hash, "revision": {"$lte": revision}},
                {"$set": {"phone": phone, "revision": revision, "updated_at": now}}, upsert=True)
        except DuplicateKeyError:
            return False  # a newer revision is stored: this event is stale
        await self._members(kk_hash, revision, [h for h in member_hashes if h != moved_in])
        if moved_in is not None:  # the person now belongs here, whatever household held them before
            await self.members.update_one({"_id": moved_in}, {"$set": {"kk": kk_hash, "revision": revision}},
                                          upsert=True)
        if moved_out is not None:
            await self.members.delete_one({"_id": moved_out, "kk": kk_hash})
        return True

    async def _members(self, kk_hash: str, revision: int, nik_hashes: list[str]) -> None:
        """Links each person to the household, unless a newer revision or another household holds them.

        One unordered bulk write of guarded upserts: a person whose document does not match the
        guard (they moved to another household, or a newer revision is stored) makes that upsert
        collide with its ``_id``, a duplicate-key error for that person only.
        """
        if not nik_hashes:
            return
        ops = [UpdateOne({"_id": h, "kk": kk_hash, "revision": {"$lte": revision}}, {"$set": {"revision": revision}},
                         upsert=True) for h in dict.fromkeys(nik_hashes)]
        try:
            await self.members.bulk_write(ops, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if exc.details.get("writeConcernErrors") or any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise

    async def save_complaint(self, c: ComplaintContact) -> None:
        await self.complaints.update_one({"_id": c.complaint_id}, {"$set": {
            "phone": c.phone, "nik_hash": c.nik_hash, "kk_hash": c.kk_hash,
            "case_number": c.case_number, "village_code": c.village_code}}, upsert=True)

    async def save_case(self, case: CaseInfo) -> None:
        await self.cases.update_one({"_id": case.case_id}, {"$set": {
            "complaint_id": case.complaint_id, "case_number": case.case_number, "village_code": case.village_code,
            "nik_hash": case.nik_hash, "kk_hash": case.kk_hash}}, upsert=True)

    async def save_round(self, r: RoundInfo) -> None:
        await self.rounds.update_one({"_id": r.round_id}, {"$set": {
            "name": r.name, "program": r.program.value, "period_start": r.period_start.isoformat(),
            "period_end": r.period_end.isoformat()}}, upsert=True)

    async def save_allocation(self, allocation_id: str, village_code: str, kk_hash: str) -> None:
        await self.allocations.update_one({"_id": allocation_id},
                                          {"$set": {"village_code": village_code, "kk_hash": kk_hash}}, upsert=True)

    # reads -------------------------------------------------------------------------------
    async def household(self, kk_hash: str) -> HouseholdContact | None:
        doc = await self.households.find_one({"_id": kk_hash})
        return HouseholdContact(kk_hash, doc.get("phone"), int(doc["revision"])) if doc else None

    async def household_of_member(self, nik_hash: str) -> str | None:
        doc = await self.members.find_one({"_id": nik_hash})
        return str(doc["kk"]) if doc and doc.get("kk") else None

    async def complaint(self, complaint_id: str) -> ComplaintContact | None:
        doc = await self.complaints.find_one({"_id": complaint_id})
        if doc is None:
            return None
        return ComplaintContact(complaint_id=complaint_id, phone=doc.get("phone"),
                                nik_hash=doc.get("nik_hash"), kk_hash=doc.get("kk_hash"),
                                case_number=doc["case_number"], village_code=doc["village_code"])

    async def case(self, case_id: str) -> CaseInfo | None:
        doc = await self.cases.find_one({"_id": case_id})
        if doc is None:
            return None
        return CaseInfo(case_id=case_id, case_number=doc.get("case_number"), complaint_id=doc.get("complaint_id"),
                        village_code=doc.get("village_code"), nik_hash=doc.get("nik_hash"),
                        kk_hash=doc.get("kk_hash"))

    async def round(self, round_id: str) -> RoundInfo | None:
        doc: dict[str, Any] | None = await self.rounds.find_one({"_id": round_id})
        if doc is None:
            return None
        return RoundInfo(round_id=round_id, name=doc["name"], program=Program(doc["program"]),
                         period_start=dt.date.fromisoformat(doc["period_start"]),
                         period_end=dt.date.fromisoformat(doc["period_end"]))

    async def allocation_village(self, allocation_id: str) -> str | None:
        doc = await self.allocations.find_one({"_id": allocation_id})
        return str(doc["village_code"]) if doc else None
