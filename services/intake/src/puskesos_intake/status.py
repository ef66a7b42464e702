"""Reading complaints: the officer's detail, the resident's status, the village listing, a resident's complaints.

A complaint's status and history live in its progress record (``complaint_progress``, written
by the case-event consumer). The listing row (``complaint_views``, keyed by case number, so it is
also the case-number lookup) is derived from the complaint and its latest progress version;
every writer recomputes it from those sources and checks again after writing, so the row
settles on the latest state even when writers race.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import OrderedDict
from typing import Any

from puskesos_shared.commands import CommandError
from puskesos_shared.contracts.intake import Complainant, ComplaintCategory, ComplaintChannel, Urgency
from puskesos_shared.mongo import Document
from puskesos_shared.regions import village_name
from pydantic import BaseModel, ConfigDict
from pymongo.errors import DuplicateKeyError

from .context import Caller, Context, log
from .domain.complaints import StoredComplaint, complaint_filed_event_id, scope_fields
from .domain.progress import ComplaintStatus, HistoryEntry, Progress

SETTLE_ATTEMPTS = 8


class PublicStep(BaseModel):
    status: ComplaintStatus
    at: dt.datetime
    summary: str


class PublicStatus(BaseModel):
    """What anyone holding the case number may learn (the WhatsApp bot): no names, NIKs or descriptions."""

    case_number: str
    status: ComplaintStatus
    category: ComplaintCategory
    village_code: str
    village_name: str | None
    filed_at: dt.datetime
    updated_at: dt.datetime
    history: tuple[PublicStep, ...]


class ComplaintDetail(BaseModel):
    model_config = ConfigDict(frozen=True)

    complaint_id: uuid.UUID
    case_number: str
    status: ComplaintStatus
    category: ComplaintCategory
    channel: ComplaintChannel
    urgency: Urgency
    description: str
    complainant: Complainant
    village_code: str
    village_name: str | None
    filed_by: str
    filed_at: dt.datetime
    updated_at: dt.datetime
    case_id: str | None
    history: tuple[HistoryEntry, ...]


class ComplaintRow(BaseModel):
    complaint_id: uuid.UUID
    case_number: str
    status: ComplaintStatus
    category: ComplaintCategory
    channel: ComplaintChannel
    urgency: Urgency
    anonymous: bool
    village_code: str
    filed_at: dt.datetime
    updated_at: dt.datetime


class ComplaintPage(BaseModel):
    items: tuple[ComplaintRow, ...]
    page: int
    page_size: int
    total: int


def complaint_of(doc: Document) -> StoredComplaint:
    return StoredComplaint.model_validate(doc)


def history_of(complaint: StoredComplaint, progress: Progress) -> tuple[HistoryEntry, ...]:
    filed = HistoryEntry(status=ComplaintStatus.FILED, at=complaint.filed_at, summary="Complaint filed",
                         event_id=str(complaint_filed_event_id(complaint.complaint_id)), event_type="ComplaintFiled")
    return (filed, *progress.history)


def detail_of(complaint: StoredComplaint, progress: Progress) -> ComplaintDetail:
    history = history_of(complaint, progress)
    return ComplaintDetail(
        complaint_id=complaint.complaint_id, case_number=complaint.case_number, status=progress.status,
        category=complaint.category, channel=complaint.channel, urgency=complaint.urgency,
        description=complaint.description, complainant=complaint.complainant, village_code=complaint.village_code,
        village_name=village_name(complaint.village_code), filed_by=complaint.filed_by, filed_at=complaint.filed_at,
        updated_at=history[-1].at, case_id=progress.case_id, history=history,
    )


def public_of(detail: ComplaintDetail) -> PublicStatus:
    return PublicStatus(
        case_number=detail.case_number, status=detail.status, category=detail.category,
        village_code=detail.village_code, village_name=detail.village_name, filed_at=detail.filed_at,
        updated_at=detail.updated_at,
        history=tuple(PublicStep(status=h.status, at=h.at, summary=h.summary) for h in detail.history),
    )


def row_doc(complaint: StoredComplaint, progress: Progress, progress_n: int) -> Document:
    history = history_of(complaint, progress)
    return {
        "_id": complaint.case_number, "complaint_id": str(complaint.complaint_id),
        "case_number": complaint.case_number, "status": progress.status.value,
        "category": complaint.category.value, "channel": complaint.channel.value,
        "urgency": complaint.urgency.value, "anonymous": complaint.complainant.nik is None,
        **scope_fields(complaint.village_code), "filed_at": complaint.filed_at, "updated_at": history[-1].at,
        "progress_n": progress_n,
    }


class ComplaintViews:
    def __init__(self, ctx: Context, cache_size: int = 20_000) -> None:
        self.ctx = ctx
        self.store = ctx.store
        # a filed complaint never changes (its case number neither): safe to keep in memory
        self._by_case: OrderedDict[str, StoredComplaint] = OrderedDict()
        self._cache_size = cache_size

    def remember(self, complaint: StoredComplaint) -> StoredComplaint:
        self._by_case[complaint.case_number] = complaint
        self._by_case.move_to_end(complaint.case_number)
        while len(self._by_case) > self._cache_size:
            self._by_case.popitem(last=False)
        return complaint

    async def progress(self, complaint_id: str) -> tuple[Progress, int]:
        latest = await self.store.progress.latest(complaint_id)
        return (Progress.model_validate(latest.data), latest.number) if latest else (Progress(), 0)

    async def complaint(self, complaint_id: str) -> StoredComplaint | None:
        doc = await self.store.complaints.find_one({"_id": complaint_id})
        return complaint_of(doc) if doc else None

    async def first_row(self, complaint: StoredComplaint) -> None:
        """The row of a complaint just filed. An insert cannot overwrite a newer row, so no check is needed;
        if a case-event writer got there first, the row is settled as usual."""
        try:
            await self.store.views.insert_one(row_doc(complaint, Progress(), 0))
        except DuplicateKeyError:
            await self.settle_row(complaint)

    async def settle_row(self, complaint: StoredComplaint) -> None:
        """Brings the row up to the latest progress, and checks again after each write."""
        key = complaint.case_number
        for _ in range(SETTLE_ATTEMPTS):
            progress, n = await self.progress(str(complaint.complaint_id))
            current = await self.store.views.find_one({"_id": key})
            if current is not None and current.get("progress_n") == n and current.get("status") == progress.status:
                return
            try:
                await self.store.views.replace_one({"_id": key}, row_doc(complaint, progress, n), upsert=True)
            except DuplicateKeyError:
                continue  # another writer created the row first: compare again
        log.warning("complaint_view_not_settled", complaint_id=str(complaint.complaint_id))

    async def find(self, case_number: str) -> StoredComplaint | None:
        if (known := self._by_case.get(case_number)) is not None:
            return known
        row = await self.store.views.find_one({"_id": case_number})
        if row is not None:
            found = await self.complaint(row["complaint_id"])
            return self.remember(found) if found is not None else None
        # the row is written just after the complaint; after a crash in between, search and repair it
        doc = await self.store.complaints.find_one({"case_number": case_number})
        if doc is None:
            return None
        complaint = complaint_of(doc)
        await self.settle_row(complaint)
        return self.remember(complaint)

    async def detail(self, case_number: str, caller: Caller) -> ComplaintDetail:
        complaint = await self.find(case_number)
        if complaint is None:
            raise CommandError("complaint_not_found", "no complaint has this case number", status=404)
        caller.require(complaint.village_code)
        progress, _ = await self.progress(str(complaint.complaint_id))
        return detail_of(complaint, progress)

    async def public_status(self, case_number: str, caller: Caller) -> PublicStatus:
        return public_of(await self.detail(case_number, caller))

    async def listing(self, caller: Caller, *, village_code: str | None, status: ComplaintStatus | None,
                      category: ComplaintCategory | None, page: int, page_size: int) -> ComplaintPage:
        query: dict[str, Any] = {}
        if village_code is not None:
            caller.require(village_code)
            query["village_code"] = village_code
        else:
            query.update(scope_query(caller))
        if status is not None:
            query["status"] = status.value
        if category is not None:
            query["category"] = category.value
        return await self._page(query, page, page_size)

    async def of_resident(self, nik: str, caller: Caller, *, page: int, page_size: int) -> ComplaintPage:
        """Every complaint filed under the resident's NIK (the complainant), in the officer's scope, newest first.

        Found through the NIK's keyed hash: the versions of the per-category open-complaint record name
        every complaint ever filed under it (as the resident's data export finds them).
        """
        key = self.ctx.niks.key(nik)
        keys = [f"{key}:{category.value}" for category in ComplaintCategory]
        claims = self.store.open_complaints.collection.find({"key": {"$in": keys}}, {"data.complaint_id": 1})
        ids = {str(c["data"]["complaint_id"]) async for c in claims if c.get("data", {}).get("complaint_id")}
        cases: list[str] = []
        async for doc in self.store.complaints.find({"_id": {"$in": list(ids)}}):
            complaint = complaint_of(doc)
            if complaint.complainant.nik != nik:  # a claim whose idempotency key was reused for another person
                continue
            cases.append(complaint.case_number)
            if await self.store.views.find_one({"_id": complaint.case_number}, {"_id": 1}) is None:
                await self.settle_row(complaint)  # the row a crashed filing did not write
        if not cases:
            return ComplaintPage(items=(), page=page, page_size=page_size, total=0)
        return await self._page({"_id": {"$in": cases}, **scope_query(caller)}, page, page_size)

    async def _page(self, query: dict[str, Any], page: int, page_size: int) -> ComplaintPage:
        total = await self.store.views.count_documents(query)
        cursor = self.store.views.find(query).sort([("filed_at", -1), ("_id", 1)])
        docs = await cursor.skip((page - 1) * page_size).limit(page_size).to_list()
        return ComplaintPage(items=tuple(ComplaintRow.model_validate(d) for d in docs), page=page,
                             page_size=page_size, total=total)


def scope_query(caller: Caller) -> dict[str, Any]:
    """The listing rows in the caller's scope (village, kecamatan or regency codes); everything for None."""
    if caller.scope is None:
        return {}
    scope = list(caller.scope)
    return {"$or": [{"village_code": {"$in": scope}}, {"district_code": {"$in": scope}},
                    {"regency_code": {"$in": scope}}]}
