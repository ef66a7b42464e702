"""Persistence port of the referral service and its MongoDB adapter (runs on FerretDB 1.24 too).

Collections:

* ``cases``: one document per case (``_id`` = case id), the ``Case`` model in JSON form plus the
  outbox (``_outbox``). Every change is one ``find_one_and_update`` guarded by ``version``, with
  the events it produces pushed into ``_outbox`` in the same write.
* ``households``: the projection of HouseholdRegistered/HouseholdUpdated (``_id`` = KK number);
  a revision only replaces an older one.
* ``rule_sets``: published assessment rule sets (``_id`` = version tag), immutable.
* ``referrals`` and ``counters``: referral numbers, unique per village and year
  (``RJK/{village digits}/{year}/{sequence}``), reserved per referral id so a retry reuses its number.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any, Protocol

from puskesos_shared.contracts.envelope import Event
from puskesos_shared.contracts.intake import Household
from puskesos_shared.mongo import Document, insert_once, is_duplicate_key
from puskesos_shared.outbox import OUTBOX_FIELD, outbox_entries
from puskesos_shared.regions import village_digits
from puskesos_shared.topology import Topology
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from .domain.case import Case, CaseStatus
from .domain.rules import RuleSet

Entries = list[dict[str, Any]]
LIST_PROJECTION = {"assessments": 0, "commands": 0, OUTBOX_FIELD: 0}


class CaseStore(Protocol):
    async def insert_case(self, case: Case, events: Sequence[Event]) -> Entries | None: ...
    async def get_case(self, case_id: uuid.UUID) -> Case | None: ...
    async def pending_entries(self, case_id: uuid.UUID) -> Entries: ...
    async def save(self, case: Case, expected_version: int, events: Sequence[Event]) -> Entries | None: ...
    async def escalation_candidates(self, before: dt.date, limit: int) -> list[Case]: ...
    async def find_cases(self, query: Document, *, skip: int, limit: int) -> tuple[list[Case], int]: ...
    async def apply_household(self, *, kk_number: str, household_id: uuid.UUID, household: Household,
                              revision: int, event_id: uuid.UUID) -> bool: ...
    async def household(self, kk_number: str) -> tuple[Household, int] | None: ...
    async def kk_of_member(self, nik: str) -> str | None: ...
    async def add_rule_set(self, rule_set: RuleSet, *, published_by: str, now: dt.datetime) -> bool: ...
    async def rule_set(self, tag: str) -> RuleSet | None: ...
    async def latest_rule_set(self, name: str) -> RuleSet | None: ...
    async def rule_set_index(self, name: str) -> list[Document]: ...
    async def reserve_referral_number(self, referral_id: uuid.UUID, case_id: uuid.UUID, village_code: str,
                                      year: int) -> str: ...
    async def referral_owner(self, *, referral_id: uuid.UUID | None, number: str | None) -> tuple[uuid.UUID, uuid.UUID] | None: ...


def case_document(case: Case) -> Document:
    return {"_id": str(case.case_id), **case.model_dump(mode="json")}


def case_from(doc: Document) -> Case:
    body = {k: v for k, v in doc.items() if k not in ("_id", OUTBOX_FIELD)}
    return Case.model_validate(body)


class MongoCaseStore:
    def __init__(self, db: AsyncDatabase[Document], topology: Topology) -> None:
        self.topology = topology
        self.cases: AsyncCollection[Document] = db["cases"]
        self.households: AsyncCollection[Document] = db["households"]
        self.rule_sets: AsyncCollection[Document] = db["rule_sets"]
        self.referrals: AsyncCollection[Document] = db["referrals"]
        self.counters: AsyncCollection[Document] = db["counters"]

    async def create_indexes(self) -> None:
        await self.cases.create_index([("village_code", ASCENDING), ("status", ASCENDING)], name="village_status")
        await self.cases.create_index([("kecamatan_code", ASCENDING), ("status", ASCENDING)], name="kecamatan_status")
        await self.cases.create_index([("status", ASCENDING), ("level_due_on", ASCENDING)], name="escalation")
        await self.cases.create_index([("complaint_id", ASCENDING)], name="complaint", unique=True)
        await self.households.create_index([("niks", ASCENDING)], name="member_niks")
        await self.rule_sets.create_index([("name", ASCENDING), ("version", DESCENDING)], name="name_version",
                                          unique=True)
        await self.referrals.create_index([("referral_number", ASCENDING)], name="referral_number", unique=True)

    # cases ----------------------------------------------------------------------------------------
    async def insert_case(self, case: Case, events: Sequence[Event]) -> Entries | None:
        """Inserts a new case with its events in the outbox; None when the case already exists."""
        entries = outbox_entries(events, self.topology)
        inserted = await insert_once(self.cases, {**case_document(case), OUTBOX_FIELD: entries})
        return entries if inserted else None

    async def get_case(self, case_id: uuid.UUID) -> Case | None:
        doc = await self.cases.find_one({"_id": str(case_id)}, {OUTBOX_FIELD: 0})
        return case_from(doc) if doc else None

    async def pending_entries(self, case_id: uuid.UUID) -> Entries:
        doc = await self.cases.find_one({"_id": str(case_id)}, {OUTBOX_FIELD: 1})
        return list((doc or {}).get(OUTBOX_FIELD) or [])

    async def save(self, case: Case, expected_version: int, events: Sequence[Event]) -> Entries | None:
        """Writes ``case`` if the stored one still has ``expected_version``; None when it changed meanwhile."""
        if case.version != expected_version + 1:
            raise ValueError("a saved case must be exactly one version ahead")
        entries = outbox_entries(events, self.topology)
        update: Document = {"$set": case.model_dump(mode="json")}
        if entries:
            update["$push"] = {OUTBOX_FIELD: {"$each": entries}}
        found = await self.cases.find_one_and_update(
            {"_id": str(case.case_id), "version": expected_version}, update,
            projection={"_id": 1}, return_document=ReturnDocument.AFTER,
        )
        return entries if found is not None else None

    async def escalation_candidates(self, before: dt.date, limit: int) -> list[Case]:
        query = {"status": {"$ne": CaseStatus.CLOSED.value}, "level": {"$ne": "dinas_sosial"},
                 "level_due_on": {"$lt": before.isoformat()}}
        cursor = self.cases.find(query, {OUTBOX_FIELD: 0}).sort("level_due_on", ASCENDING).limit(limit)
        return [case_from(doc) async for doc in cursor]

    async def find_cases(self, query: Document, *, skip: int, limit: int) -> tuple[list[Case], int]:
        total = await self.cases.count_documents(query)
        cursor = (self.cases.find(query, LIST_PROJECTION)
                  .sort([("sla_due_on", ASCENDING), ("_id", ASCENDING)]).skip(skip).limit(limit))
        return [case_from(doc) async for doc in cursor], total

    # households -----------------------------------------------------------------------------------
    async def apply_household(self, *, kk_number: str, household_id: uuid.UUID, household: Household,
                              revision: int, event_id: uuid.UUID) -> bool:
        """Stores the household at ``revision`` unless that or a newer revision is already there."""
        doc = {"household_id": str(household_id), "revision": revision,
               "household": household.model_dump(mode="json"), "niks": [m.nik for m in household.members],
               "event_id": str(event_id)}
        try:
            result = await self.households.update_one({"_id": kk_number, "revision": {"$lt": revision}},
                                                      {"$set": doc}, upsert=True)
        except DuplicateKeyError:
            return False  # the stored revision is the same or newer
        return bool(result.modified_count or result.upserted_id is not None)

    async def household(self, kk_number: str) -> tuple[Household, int] | None:
        doc = await self.households.find_one({"_id": kk_number})
        if doc is None:
            return None
        return Household.model_validate(doc["household"]), int(doc["revision"])

    async def kk_of_member(self, nik: str) -> str | None:
        doc = await self.households.find_one({"niks": nik}, {"_id": 1})
        return str(doc["_id"]) if doc else None

    # rule sets ------------------------------------------------------------------------------------
    async def add_rule_set(self, rule_set: RuleSet, *, published_by: str, now: dt.datetime) -> bool:
        """Stores a new version; False when that version exists already (the caller compares digests)."""
        return await insert_once(self.rule_sets, {
            "_id": rule_set.tag, "name": rule_set.name, "version": rule_set.version, "digest": rule_set.digest(),
            "document": rule_set.document(), "published_by": published_by, "published_at": now,
        })

    async def rule_set(self, tag: str) -> RuleSet | None:
        doc = await self.rule_sets.find_one({"_id": tag})
        return RuleSet.model_validate(doc["document"]) if doc else None

    async def latest_rule_set(self, name: str) -> RuleSet | None:
        doc = await self.rule_sets.find_one({"name": name}, sort=[("version", DESCENDING)])
        return RuleSet.model_validate(doc["document"]) if doc else None

    async def rule_set_index(self, name: str) -> list[Document]:
        cursor = self.rule_sets.find({"name": name}, {"document": 0}).sort("version", DESCENDING)
        return [{**doc, "tag": doc.pop("_id")} async for doc in cursor]

    # referral numbers -----------------------------------------------------------------------------
    async def reserve_referral_number(self, referral_id: uuid.UUID, case_id: uuid.UUID, village_code: str,
                                      year: int) -> str:
        """The number of ``referral_id``: the one reserved before, or the next in the village's year."""
        existing = await self.referrals.find_one({"_id": str(referral_id)})
        if existing is not None:
            return str(existing["referral_number"])
        digits = village_digits(village_code)
        counter = await self.counters.find_one_and_update(
            {"_id": f"referral:{digits}:{year}"}, {"$inc": {"seq": 1}}, upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        number = f"RJK/{digits}/{year}/{int(counter['seq']):05d}"
        try:
            await self.referrals.insert_one({"_id": str(referral_id), "referral_number": number,
                                             "case_id": str(case_id), "village_code": village_code, "year": year})
        except Exception as exc:
            if not is_duplicate_key(exc):
                raise
            again = await self.referrals.find_one({"_id": str(referral_id)})
            if again is None:  # pragma: no cover - the number itself collided: a corrupted counter
                raise
            return str(again["referral_number"])  # a concurrent retry of the same command won
        return number

    async def referral_owner(self, *, referral_id: uuid.UUID | None,
                             number: str | None) -> tuple[uuid.UUID, uuid.UUID] | None:
        """(referral id, case id) of a referral given by id or by number."""
        query = {"_id": str(referral_id)} if referral_id is not None else {"referral_number": number}
        doc = await self.referrals.find_one(query)
        return (uuid.UUID(doc["_id"]), uuid.UUID(doc["case_id"])) if doc else None
