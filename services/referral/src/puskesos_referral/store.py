"""Persistence port of the referral service and its MongoDB adapter.

There are no multi-document transactions, so every decision is claimed by one insert under a
unique key, and what a write produces travels with it:

* ``case_changes`` (the source of truth, insert-only apart from its ``published`` flag): one
  document per case version, ``_id`` = ``{case_id}:{version:06d}``, holding the full case state at
  that version and the events of the change (``events``: the outbox, stored in the same insert).
  Whoever inserts version v+1 first made the change; a concurrent writer gets a duplicate key,
  re-reads and decides again. ``published`` is set once the broker confirmed every event.
* ``cases`` (read model for lists and the escalation sweep): the latest state of each case,
  rolled forward after every change (``sync_case``: a replace by ``_id``, then a probe for a newer
  version, so a slower writer's older state never stays). Writers decide on it (``current``) and
  probe the change log (``latest``: versions are contiguous, so ``{case_id}:{v+1}``, ... by ``_id``)
  only after losing a claim. Its indexes serve the officers' lists (scope, open statuses as ``$in``,
  then a range of SLA deadlines), the sweep (open statuses, levels that can still go up, then
  the range of level deadlines) and the escalation lists (the latest escalation's level and
  status, then the kecamatan: ``escalation_level``, ``escalation_status`` and ``escalated_at`` are
  derived fields of the read model only, ``ESCALATION_FIELDS``); sorts are done after the index
  narrowed the cases.
* ``pending`` (markers, one per command or escalation writer, written before the claim and
  removed once the change is published): what a crash or a broker outage left half done; the
  sweep reads this small collection instead of every change. (Changes caused by an event need
  none: the event is acknowledged only after publishing, so it is redelivered.)
* ``household_revisions`` (insert-only): every revision of HouseholdRegistered/Updated, once.
  ``households``: the highest revision per KK, rolled forward like ``cases``.
* ``rule_sets`` (insert-only): published assessment rule sets, ``_id`` = version tag.
* ``referral_numbers`` (insert-only): ``_id`` = the number ``RJK/{village digits}/{year}/{seq}``,
  unique per referral id too; the next number is claimed by inserting it.

The documents are built by ``change_document``, ``case_document`` and ``referral_number_document``
(a bulk loader writing what the service writes uses them too).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import Sequence
from typing import Any, Protocol

from puskesos_shared.contracts.envelope import Event
from puskesos_shared.contracts.intake import Household
from puskesos_shared.contracts.referral import EscalationLevel
from puskesos_shared.contracts.registry import InvalidMessage, decode_event
from puskesos_shared.mongo import Document, insert_once, is_duplicate_key
from puskesos_shared.outbox import outbox_entries
from puskesos_shared.regions import village_digits
from puskesos_shared.topology import Topology
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from .domain import sla
from .domain.case import OPEN_STATUSES, Case
from .domain.rules import RuleSet

Entries = list[dict[str, Any]]
LIST_PROJECTION = {"assessments": 0, "commands": 0}
#: Read-model fields derived from the case's latest escalation (for the escalation lists); not case state.
ESCALATION_FIELDS = ("escalation_level", "escalation_status", "escalated_at")
MAX_NUMBER_ATTEMPTS = 50
#: A marker whose change was never claimed is dropped after this long (the claim follows it at once).
ABANDONED_MARKER_SECONDS = 120.0
#: Levels a late case can still leave (the sweep's ``$in``; the top level has no deadline to miss).
ESCALATING_LEVELS = tuple(level.value for level in EscalationLevel if sla.next_level(level) is not None)


def change_id(case_id: uuid.UUID, version: int) -> str:
    return f"{case_id}:{version:06d}"


def open_statuses() -> list[str]:
    """The statuses of a case not closed, as an ``$in`` list (an index serves ``$in``, not ``$ne``)."""
    return [status.value for status in OPEN_STATUSES]


def change_document(case: Case, entries: Entries, *, published: bool = False) -> Document:
    """The claim of ``case.version``: the case's state at that version and its events (the outbox)."""
    return {"_id": change_id(case.case_id, case.version), "case_id": str(case.case_id), "version": case.version,
            "state": case.model_dump(mode="json"), "events": entries, "published": published}


def escalation_fields(case: Case) -> Document:
    """The derived fields the escalation lists query: the latest escalation's level, status and time."""
    latest = case.latest_escalation
    if latest is None:
        return dict.fromkeys(ESCALATION_FIELDS)
    return {"escalation_level": latest.to_level.value, "escalation_status": latest.status.value,
            "escalated_at": latest.escalated_at.astimezone(dt.UTC).isoformat()}


def case_document(case: Case) -> Document:
    """The read model's document of a case (its state and the derived ``ESCALATION_FIELDS``)."""
    return {"_id": str(case.case_id), **case.model_dump(mode="json"), **escalation_fields(case)}


def referral_number(village_code: str, year: int, seq: int) -> str:
    return f"RJK/{village_digits(village_code)}/{year}/{seq:05d}"


def referral_number_document(referral_id: uuid.UUID, case_id: uuid.UUID, village_code: str, year: int,
                             seq: int) -> Document:
    return {"_id": referral_number(village_code, year, seq), "referral_id": str(referral_id),
            "case_id": str(case_id), "village_code": village_code, "year": year, "seq": seq}


class CaseStore(Protocol):
    async def append(self, case: Case, events: Sequence[Event]) -> Entries | None: ...
    async def latest(self, case_id: uuid.UUID, *, at_least: int = 0) -> Case | None: ...
    async def current(self, case_id: uuid.UUID) -> Case | None: ...
    async def sync_case(self, case: Case) -> None: ...
    async def mark_pending(self, case: Case) -> str: ...
    async def clear_pending(self, marker: str) -> None: ...
    async def pending(self, limit: int) -> list[Document]: ...
    async def change(self, case_id: uuid.UUID, version: int) -> tuple[Case, Entries] | None: ...
    async def mark_published(self, case_id: uuid.UUID, version: int) -> None: ...
    async def unpublished(self, case_id: uuid.UUID, version: int) -> Entries: ...
    async def escalation_candidates(self, before: dt.date, limit: int) -> list[Case]: ...
    async def find_cases(self, query: Document, *, skip: int, limit: int) -> tuple[list[Case], int]: ...
    async def find_escalated(self, query: Document, *, skip: int, limit: int) -> tuple[list[Case], int]: ...
    async def case_events(self, case_id: uuid.UUID, *, up_to: int) -> list[Event]: ...
    async def all_cases(self, query: Document) -> list[Case]: ...
    async def add_household_revision(self, *, kk_number: str, household_id: uuid.UUID, household: Household,
                                     revision: int, event_id: uuid.UUID) -> bool: ...
    async def household(self, kk_number: str) -> tuple[Household, int] | None: ...
    async def kk_of_member(self, nik: str) -> str | None: ...
    async def cases_concerning(self, nik: str, kk_numbers: Sequence[str]) -> list[Case]: ...
    async def households_listing(self, nik: str) -> list[Document]: ...
    async def add_rule_set(self, rule_set: RuleSet, *, published_by: str, now: dt.datetime) -> bool: ...
    async def rule_set(self, tag: str) -> RuleSet | None: ...
    async def latest_rule_set(self, name: str) -> RuleSet | None: ...
    async def rule_set_index(self, name: str) -> list[Document]: ...
    async def reserve_referral_number(self, referral_id: uuid.UUID, case_id: uuid.UUID, village_code: str,
                                      year: int) -> str: ...
    async def referral_owner(self, *, referral_id: uuid.UUID | None,
                             number: str | None) -> tuple[uuid.UUID, uuid.UUID] | None: ...


_NOT_STATE = frozenset({"_id", *ESCALATION_FIELDS})


def _case(doc: Document, key: str | None = None) -> Case:
    body = doc[key] if key else {k: v for k, v in doc.items() if k not in _NOT_STATE}
    return Case.model_validate(body)


class MongoCaseStore:
    def __init__(self, db: AsyncDatabase[Document], topology: Topology) -> None:
        self.topology = topology
        self.changes: AsyncCollection[Document] = db["case_changes"]
        self.cases: AsyncCollection[Document] = db["cases"]
        self.markers: AsyncCollection[Document] = db["pending"]
        self.revisions: AsyncCollection[Document] = db["household_revisions"]
        self.households: AsyncCollection[Document] = db["households"]
        self.rule_sets: AsyncCollection[Document] = db["rule_sets"]
        self.numbers: AsyncCollection[Document] = db["referral_numbers"]

    async def create_indexes(self) -> None:
        await self.changes.create_index([("case_id", ASCENDING), ("version", DESCENDING)], name="case_version",
                                        unique=True)
        for scope in ("village_code", "kecamatan_code"):  # lists: scope, status ($in), SLA deadline range
            await self.cases.create_index([(scope, ASCENDING), ("status", ASCENDING), ("sla_due_on", ASCENDING)],
                                          name=f"{scope.removesuffix('_code')}_status_due")
        await self.cases.create_index([("status", ASCENDING), ("level", ASCENDING), ("level_due_on", ASCENDING)],
                                      name="status_level_due")  # the escalation sweep
        await self.cases.create_index([("escalation_level", ASCENDING), ("escalation_status", ASCENDING),
                                       ("kecamatan_code", ASCENDING)], name="escalation_level_status")
        await self.households.create_index([("niks", ASCENDING)], name="member_niks")
        await self.cases.create_index([("subject_nik", ASCENDING)], name="subject_nik")
        await self.cases.create_index([("kk_number", ASCENDING)], name="kk_number")
        await self.rule_sets.create_index([("name", ASCENDING), ("version", DESCENDING)], name="name_version",
                                          unique=True)
        await self.numbers.create_index([("referral_id", ASCENDING)], name="referral_id", unique=True)
        await self.numbers.create_index([("village_code", ASCENDING), ("year", ASCENDING), ("seq", DESCENDING)],
                                        name="village_year_seq")

    # cases ----------------------------------------------------------------------------------------
    async def append(self, case: Case, events: Sequence[Event]) -> Entries | None:
        """Claims ``case.version`` with its events in the outbox; None when that version was taken."""
        entries = outbox_entries(events, self.topology)
        return entries if await insert_once(self.changes, change_document(case, entries)) else None

    async def latest(self, case_id: uuid.UUID, *, at_least: int = 0) -> Case | None:
        """The latest version of a case: from the read model's version (or ``at_least``), probe upwards."""
        current = None if at_least else await self.cases.find_one({"_id": str(case_id)})
        return await self._latest_from(case_id, current, at_least)

    async def _latest_from(self, case_id: uuid.UUID, current: Document | None, at_least: int = 0) -> Case | None:
        """``latest`` given the read model's document already read (``current``, None: none or not read)."""
        version = int(current["version"]) if current else 0
        found: Document | None = None
        if at_least > version:  # a claimed version the caller knows: no need to read the read model
            version = at_least
            found = await self.changes.find_one({"_id": change_id(case_id, version)}, {"state": 1})
        found = await self._newest_change(case_id, version, found)
        if found is not None:
            return _case(found, "state")
        return _case(current) if current else None  # the read model holds the state of its version

    async def _newest_change(self, case_id: uuid.UUID, version: int, found: Document | None) -> Document | None:
        """Probes the changes after ``version`` (whose change, if read, is ``found``); the newest one read."""
        while True:
            probe = await self.changes.find_one({"_id": change_id(case_id, version + 1)}, {"state": 1})
            if probe is None:
                return found
            found, version = probe, version + 1

    async def current(self, case_id: uuid.UUID) -> Case | None:
        """The read model's state of a case (possibly behind ``latest``; a claim based on it then fails)."""
        doc = await self.cases.find_one({"_id": str(case_id)})
        return _case(doc) if doc else await self._latest_from(case_id, None)

    async def sync_case(self, case: Case) -> None:
        """Rolls the read model forward to ``case`` or newer (the loop undoes a slower writer's older state)."""
        if case.version == 1 and await insert_once(self.cases, case_document(case)):
            return  # a new case: anyone writing a later version replaces this after us
        current = case if case.version > 1 else (await self.latest(case.case_id, at_least=1) or case)
        while True:
            doc = case_document(current)
            try:
                await self.cases.replace_one({"_id": doc["_id"]}, doc, upsert=True)
            except Exception as exc:
                if not is_duplicate_key(exc):  # two first writes of one case: the loser replaces next turn
                    raise
                continue
            following = await self.changes.find_one({"_id": change_id(current.case_id, current.version + 1)},
                                                    {"state": 1})
            if following is None:
                return
            newest = await self._newest_change(current.case_id, current.version + 1, following)
            current = _case(newest or following, "state")

    async def mark_pending(self, case: Case) -> str:
        """A marker for the change about to be claimed (one per writer: contenders never share one)."""
        marker = f"{change_id(case.case_id, case.version)}:{uuid.uuid4().hex[:8]}"
        await self.markers.insert_one({"_id": marker, "case_id": str(case.case_id), "version": case.version,
                                       "marked_at": time.time()})
        return marker

    async def clear_pending(self, marker: str) -> None:
        await self.markers.delete_one({"_id": marker})

    async def pending(self, limit: int) -> list[Document]:
        """Markers of changes that may be unfinished, oldest first; ``abandoned`` when old and never claimed."""
        docs = await self.markers.find({}).sort("marked_at", ASCENDING).limit(limit).to_list()
        cutoff = time.time() - ABANDONED_MARKER_SECONDS
        return [{**doc, "abandoned": doc["marked_at"] < cutoff} for doc in docs]

    async def change(self, case_id: uuid.UUID, version: int) -> tuple[Case, Entries] | None:
        doc = await self.changes.find_one({"_id": change_id(case_id, version)})
        return (_case(doc, "state"), list(doc.get("events") or [])) if doc else None

    async def mark_published(self, case_id: uuid.UUID, version: int) -> None:
        await self.changes.update_one({"_id": change_id(case_id, version)}, {"$set": {"published": True}})

    async def unpublished(self, case_id: uuid.UUID, version: int) -> Entries:
        """The events of a change not yet confirmed as published (empty when published or absent)."""
        doc = await self.changes.find_one({"_id": change_id(case_id, version)}, {"events": 1, "published": 1})
        return [] if doc is None or doc.get("published") else list(doc.get("events") or [])

    async def escalation_candidates(self, before: dt.date, limit: int) -> list[Case]:
        """Open cases whose level's deadline is before ``before`` and that can still go up, earliest first."""
        query = {"status": {"$in": open_statuses()}, "level": {"$in": list(ESCALATING_LEVELS)},
                 "level_due_on": {"$lt": before.isoformat()}}
        cursor = self.cases.find(query).sort("level_due_on", ASCENDING).limit(limit)
        return [_case(doc) async for doc in cursor]

    async def find_cases(self, query: Document, *, skip: int, limit: int) -> tuple[list[Case], int]:
        """One page, earliest SLA deadline first, and the number of matches (both reads at once)."""
        page = (self.cases.find(query, LIST_PROJECTION)
                .sort([("sla_due_on", ASCENDING), ("_id", ASCENDING)]).skip(skip).limit(limit))
        total, docs = await asyncio.gather(self.cases.count_documents(query), page.to_list())
        return [_case(doc) for doc in docs], total

    async def find_escalated(self, query: Document, *, skip: int, limit: int) -> tuple[list[Case], int]:
        """One page of escalated cases, longest escalated first, and the number of matches."""
        page = (self.cases.find(query, LIST_PROJECTION)
                .sort([("escalated_at", ASCENDING), ("_id", ASCENDING)]).skip(skip).limit(limit))
        total, docs = await asyncio.gather(self.cases.count_documents(query), page.to_list())
        return [_case(doc) for doc in docs], total

    async def case_events(self, case_id: uuid.UUID, *, up_to: int) -> list[Event]:
        """Every event of the case's changes up to version ``up_to``, in order (from the change log)."""
        cursor = self.changes.find({"case_id": str(case_id), "version": {"$lte": up_to}}, {"events": 1, "version": 1})
        docs = sorted([doc async for doc in cursor], key=lambda d: int(d["version"]))
        events: list[Event] = []
        for entry in (entry for doc in docs for entry in doc.get("events") or []):
            try:
                events.append(decode_event(entry["body"].encode()))
            except InvalidMessage:  # a newer release's event type, read by an older replica in a rolling upgrade
                continue
        return events

    async def all_cases(self, query: Document) -> list[Case]:
        return [_case(doc) async for doc in self.cases.find(query, LIST_PROJECTION)]

    # households -----------------------------------------------------------------------------------
    async def add_household_revision(self, *, kk_number: str, household_id: uuid.UUID, household: Household,
                                     revision: int, event_id: uuid.UUID) -> bool:
        """Stores one revision and rolls the projection forward; False when it was stored before.

        A first revision of a new family card (bulk registrations) costs two inserts and no read.
        """
        doc = {"_id": f"{kk_number}:{revision:06d}", "kk_number": kk_number, "revision": revision,
               "household_id": str(household_id), "household": household.model_dump(mode="json"),
               "niks": [m.nik for m in household.members], "event_id": str(event_id)}
        stored = await insert_once(self.revisions, doc)
        if not (stored and revision == 1 and await insert_once(self.households, {**doc, "_id": kk_number})):
            await self.sync_household(kk_number, revision)  # also completes what a crash interrupted
        return stored

    async def sync_household(self, kk_number: str, revision: int) -> None:
        """Rolls ``households`` forward to ``revision`` or the newest stored revision after it.

        Revisions count up by one, so newer ones are found by ``_id``. The loop ends only once the
        head shows at least the newest revision seen, so a slower writer that put an older revision
        back is corrected by the writer of the newer one, whichever finishes last. (A revision that
        arrives before its predecessor waits for it, as the probing stops at the gap.)
        """
        target = revision
        while True:
            while await self.revisions.find_one({"_id": f"{kk_number}:{target + 1:06d}"}, {"_id": 1}) is not None:
                target += 1
            head = await self.households.find_one({"_id": kk_number}, {"revision": 1})
            if head is not None and int(head["revision"]) >= target:
                return
            doc = await self.revisions.find_one({"_id": f"{kk_number}:{target:06d}"})
            if doc is None:  # pragma: no cover - revisions are stored before they are synced
                return
            try:
                await self.households.replace_one({"_id": kk_number}, {**doc, "_id": kk_number}, upsert=True)
            except Exception as exc:
                if not is_duplicate_key(exc):  # two first writes of one KK: the loser replaces next turn
                    raise

    async def household(self, kk_number: str) -> tuple[Household, int] | None:
        """The highest revision of a family card."""
        doc = await self.households.find_one({"_id": kk_number})
        return (Household.model_validate(doc["household"]), int(doc["revision"])) if doc else None

    async def kk_of_member(self, nik: str) -> str | None:
        """The one KK whose latest revision lists ``nik`` (None if none or, after transfers, ambiguous)."""
        kks = sorted({str(doc["_id"]) async for doc in self.households.find({"niks": nik}, {"_id": 1})})
        return kks[0] if len(kks) == 1 else None

    # a resident's data export -------------------------------------------------------------------
    async def cases_concerning(self, nik: str, kk_numbers: Sequence[str]) -> list[Case]:
        """Cases whose subject is ``nik`` or whose family card is one of ``kk_numbers``, at their latest version."""
        docs = {doc["_id"]: doc async for doc in self.cases.find({"subject_nik": nik})}  # two indexed finds:
        docs.update({doc["_id"]: doc async for doc in self.cases.find({"kk_number": {"$in": list(kk_numbers)}})})
        cases = [await self._latest_from(uuid.UUID(doc["_id"]), doc) for doc in docs.values()]
        return sorted((c for c in cases if c is not None), key=lambda c: c.opened_at)

    async def households_listing(self, nik: str) -> list[Document]:
        """The latest stored revision of each family card whose members include ``nik``."""
        return [doc async for doc in self.households.find({"niks": nik}).sort("_id", ASCENDING)]

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
        """The number of ``referral_id``: the one reserved before, or the next free one of the village's year."""
        mine = await self.numbers.find_one({"referral_id": str(referral_id)})
        if mine is not None:
            return str(mine["_id"])
        last = await self.numbers.find_one({"village_code": village_code, "year": year}, {"seq": 1},
                                           sort=[("seq", DESCENDING)])
        seq = int(last["seq"]) + 1 if last else 1
        for _ in range(MAX_NUMBER_ATTEMPTS):
            doc = referral_number_document(referral_id, case_id, village_code, year, seq)
            try:
                await self.numbers.insert_one(doc)
                return str(doc["_id"])
            except Exception as exc:
                if not is_duplicate_key(exc):
                    raise
            mine = await self.numbers.find_one({"referral_id": str(referral_id)})
            if mine is not None:  # a concurrent retry of the same command took a number first
                return str(mine["_id"])
            seq += 1  # another referral took this number: try the next
        raise RuntimeError(f"no free referral number after {MAX_NUMBER_ATTEMPTS} attempts")

    async def referral_owner(self, *, referral_id: uuid.UUID | None,
                             number: str | None) -> tuple[uuid.UUID, uuid.UUID] | None:
        """(referral id, case id) of a referral given by id or by number."""
        query = {"referral_id": str(referral_id)} if referral_id is not None else {"_id": number}
        doc = await self.numbers.find_one(query)
        return (uuid.UUID(doc["referral_id"]), uuid.UUID(doc["case_id"])) if doc else None
