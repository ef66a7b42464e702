"""Filing a complaint (keluhan): one case number per complaint, no gaps, no repeats, no lost event.

Case numbers (``{village 10 digits}/{year}/{sequence}``, per village per year)
-----------------------------------------------------------------------------
A counter incremented with ``$inc`` and a complaint inserted afterwards are two writes, and without
multi-document transactions a crash between them burns a number (a gap). So the number is not
reserved apart from the complaint: **the complaint document is inserted with its number**, and
the unique index on ``case_number`` decides. The insert also holds the
ComplaintFiled event in ``_outbox``. Hence:

* a number exists if and only if its complaint exists (one write); nothing to repair after a crash;
* no repeats: the unique index refuses a second complaint with a taken number;
* no gaps: a filer tries ``n+1`` where every number up to ``n`` is known to be taken (the highest
  number this process took, or the ``case_counters`` hint, which only ever records taken
  numbers), and on a refusal tries the next one. By induction the taken numbers are always
  exactly ``1..N``: nothing ever skips a free number;
* under concurrency the filings of one process for one village-year queue on an in-process lock
  (no wasted attempts); replicas collide on the unique index and move on, reading the hint to skip
  ahead. The 200-filings test asserts the numbers come out exactly 1..200.

Idempotency and duplicates
--------------------------
* ``Idempotency-Key`` (HTTP) / ``idempotency_key`` (NATS): the complaint id is derived from
  (caller, key), so a retry finds the stored complaint and gets it back (200, ``created: false``);
  the same key with another request body is refused (409).
* A resident (NIK) with an open complaint of the same category gets that complaint back. The open
  complaint per (HMAC of NIK, category) is a versioned record (``versioned``) claimed before the
  insert; it is released when the case is closed. A claim whose complaint never got written
  (crash) is taken over after the grace period.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from contextlib import suppress
from typing import Any

from puskesos_shared.commands import CommandError
from puskesos_shared.contracts.envelope import Actor
from puskesos_shared.contracts.intake import Complainant
from puskesos_shared.mongo import Document
from puskesos_shared.outbox import OUTBOX_FIELD
from puskesos_shared.regions import village_exists
from pydantic import BaseModel
from pymongo.errors import DuplicateKeyError

from .context import Caller, Context, log
from .domain.complaints import (
    ComplaintRequest,
    StoredComplaint,
    build_complaint,
    complaint_filed,
    complaint_id_for,
    scope_fields,
    village_year,
)
from .domain.progress import ComplaintStatus, Progress
from .registry import unknown_village
from .status import ComplaintDetail, ComplaintViews, complaint_of, detail_of

WAIT_FOR_CONCURRENT_FILING_SECONDS = 3.0
#: How often (in numbers) the shared hint is moved forward when nothing collided; it only saves
#: other replicas and restarts a few refused attempts, never decides a number.
HINT_EVERY = 8


class FilingResult(BaseModel):
    created: bool
    complaint: ComplaintDetail


def complaint_doc(complaint: StoredComplaint, entries: list[dict[str, Any]]) -> Document:
    doc: Document = complaint.model_dump(mode="json")
    doc.update(_id=str(complaint.complaint_id), filed_at=complaint.filed_at, **scope_fields(complaint.village_code))
    doc[OUTBOX_FIELD] = entries
    return doc


class ComplaintDesk:
    def __init__(self, ctx: Context, views: ComplaintViews) -> None:
        self.ctx, self.views, self.store = ctx, views, ctx.store
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._last_taken: dict[str, int] = {}

    async def file(self, request: ComplaintRequest, caller: Caller, idempotency_key: str | None) -> FilingResult:
        if not village_exists(request.village_code):
            raise unknown_village(("body", "village_code"))
        caller.require(request.village_code)
        cid = str(complaint_id_for(caller.actor.id, idempotency_key))
        # a retry with the same key is recognised by the insert below (the complaint id is taken)
        if request.complainant.nik is not None:
            open_one = await self._claim_open(cid, request, caller)
            if open_one is not None:
                return await self._existing(open_one)
        complainant = await self._complainant(request)
        doc, created = await self._insert_numbered(cid, request, complainant, caller.actor)
        if not created:
            if doc.get("request_digest") != request.digest():
                raise CommandError("idempotency_key_reused", "this Idempotency-Key was used for another complaint",
                                   status=409)
            return await self._existing(doc)
        complaint = self.views.remember(complaint_of(doc))
        await self.views.first_row(complaint)
        await self.ctx.flush(self.store.complaints, str(complaint.complaint_id), doc[OUTBOX_FIELD])
        log.info("complaint_filed", complaint_id=cid, case_number=complaint.case_number)
        return FilingResult(created=True, complaint=detail_of(complaint, Progress()))

    async def _existing(self, doc: Document) -> FilingResult:
        complaint = complaint_of(doc)
        await self._complete(complaint, doc.get(OUTBOX_FIELD) or [])  # finish what a crashed filing left
        progress, _ = await self.views.progress(str(complaint.complaint_id))
        return FilingResult(created=False, complaint=detail_of(complaint, progress))

    async def _complete(self, complaint: StoredComplaint, entries: list[dict[str, Any]]) -> None:
        await self.views.settle_row(complaint)
        if entries:
            await self.ctx.flush(self.store.complaints, str(complaint.complaint_id), entries)

    async def _complainant(self, request: ComplaintRequest) -> Complainant:
        complainant = request.complainant.contract()
        if complainant.nik is not None and complainant.kk_number is None:
            current = await self.ctx.niks.household_of(complainant.nik)
            if current is not None:  # link the resident's registered household for the assessment
                complainant = complainant.model_copy(update={"kk_number": current.data["kk_number"]})
        return complainant

    async def _insert_numbered(self, cid: str, request: ComplaintRequest, complainant: Complainant,
                               actor: Actor) -> tuple[Document, bool]:
        """Inserts the complaint with the next free case number; (stored document, whether we inserted it)."""
        filed_at = self.ctx.clock()
        vy = village_year(request.village_code, filed_at)
        async with self._locks[vy]:
            cached = self._last_taken.get(vy)
            taken = cached if cached is not None else await self._hint(vy)
            collided = False
            while True:
                complaint = build_complaint(complaint_id=uuid.UUID(cid), request=request,
                                            complainant=complainant, actor=actor, filed_at=filed_at,
                                            sequence=taken + 1)
                doc = complaint_doc(complaint, self.ctx.entries([complaint_filed(complaint)]))
                try:
                    await self.store.complaints.insert_one(doc)
                except DuplicateKeyError:
                    same = await self.store.complaints.find_one({"_id": cid})
                    if same is not None:  # the same complaint was filed concurrently (a retried request)
                        return same, False
                    taken = max(taken + 1, await self._hint(vy))  # another replica took it: skip ahead
                    collided = True
                    continue
                self._last_taken[vy] = taken + 1
                break
        self.ctx.faults.point("crash_after_write")
        if collided or (taken + 1) % HINT_EVERY == 0:
            with suppress(DuplicateKeyError):
                await self.store.case_counters.update_one({"_id": vy}, {"$max": {"last": taken + 1}}, upsert=True)
        return doc, True

    async def _hint(self, vy: str) -> int:
        hint = await self.store.case_counters.find_one({"_id": vy})
        return int(hint["last"]) if hint else 0

    async def _claim_open(self, cid: str, request: ComplaintRequest, caller: Caller) -> Document | None:
        """Claims (resident, category) for this complaint, or returns the open complaint that holds it."""
        assert request.complainant.nik is not None
        key = f"{self.ctx.niks.key(request.complainant.nik)}:{request.category.value}"
        for _ in range(10):
            current = await self.store.open_complaints.latest(key)
            holder = current.data.get("complaint_id") if current else None
            if holder == cid:
                return None
            if holder is not None and current is not None:
                doc = await self.store.complaints.find_one({"_id": holder})
                if doc is not None:
                    progress, _ = await self.views.progress(holder)
                    if progress.status is not ComplaintStatus.CLOSED:
                        if not caller.covers(doc["village_code"]):
                            raise CommandError("open_complaint_elsewhere", "this resident has an open complaint of "
                                               "this category in a village outside your scope", status=409)
                        return doc
                elif self.ctx.clock() - current.data["at"] < self.ctx.grace:
                    if await self._appears(holder):
                        continue
                    raise CommandError("complaint_in_progress", "a complaint of this category for this resident "
                                       "is being filed right now; retry in a moment", status=409)
            if await self.store.open_complaints.append(key, current.number if current else 0,
                                                       {"complaint_id": cid, "at": self.ctx.clock()}):
                return None
        raise CommandError("concurrent_update", "complaints for this resident kept changing; retry", status=409)

    async def _appears(self, complaint_id: str) -> bool:
        """Waits a little for a complaint another request is filing right now."""
        deadline = time.monotonic() + WAIT_FOR_CONCURRENT_FILING_SECONDS
        while time.monotonic() < deadline:
            if await self.store.complaints.find_one({"_id": complaint_id}) is not None:
                return True
            await asyncio.sleep(0.05)
        return False

    async def release_open(self, complaint: StoredComplaint) -> None:
        """The case is closed: the resident may file this category again."""
        if complaint.complainant.nik is None:
            return
        key = f"{self.ctx.niks.key(complaint.complainant.nik)}:{complaint.category.value}"
        for _ in range(5):
            current = await self.store.open_complaints.latest(key)
            if current is None or current.data.get("complaint_id") != str(complaint.complaint_id):
                return
            if await self.store.open_complaints.append(key, current.number,
                                                       {"complaint_id": None, "at": self.ctx.clock()}):
                return
