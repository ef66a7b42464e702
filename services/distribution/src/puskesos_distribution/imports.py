"""Turning recipient lists and eligible assessments into candidates on the work queue.

A recipient list arrives in chunks of rows (the CLI streams the file). Each row is validated
here, the authority, whoever sent it; a KK seen twice in one list is reported with the row it
first appeared on (a unique ``{batch}:{KK}`` document); every accepted row becomes one allocation
work item whose id is derived from (round, batch, row), so a resent chunk changes nothing.
Every row is accounted for: accepted, resent, or rejected with its column and reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from typing import Any

from puskesos_shared.auth import Officer
from puskesos_shared.commands import CommandError
from puskesos_shared.contracts.distribution import AllocationBasis, CandidateSource, PayoutMethod, PayoutTarget
from puskesos_shared.ids import stable_id
from puskesos_shared.regions import village_digits

from .context import Context
from .domain import RoundStatus, RoundView
from .projection import latest_assessment, latest_household
from .requests import FinishImport, ImportChunk, RoundRef
from .rows import RowError, validate_row
from .store import ASSESSMENTS, HOUSEHOLDS, IMPORT_ROWS, IMPORTS
from .workitems import Candidate, WorkItem, allocate_item


class Imports:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def _open_round(self, req: RoundRef) -> RoundView:
        round_ = await self.ctx.round_view(req.round_id)
        if round_ is None:
            raise CommandError("unknown_round", "no round has this key or id", status=404)
        if round_.status is not RoundStatus.OPEN:
            raise CommandError("round_not_open", f"the round is {round_.status.value}", status=409)
        return round_

    async def import_chunk(self, req: ImportChunk, officer: Officer) -> dict[str, Any]:
        round_ = await self._open_round(req)
        errors: list[RowError] = []
        candidates: list[Candidate] = []
        for row in req.rows:
            result = validate_row(row.row, row.fields, round_id=round_.round_id, batch_id=req.batch_id,
                                  rule_version=round_.rule_version, covers=officer.covers)
            (errors if isinstance(result, RowError) else candidates).append(result)  # type: ignore[arg-type]
        marks: list[dict[str, Any]] = [
            {"_id": f"{req.batch_id}:{c.kk_number}", "batch_id": str(req.batch_id), "round_id": str(round_.round_id),
             "row": c.basis.import_row} for c in candidates]
        inserted = await asyncio.gather(*(self.ctx.store.insert(IMPORT_ROWS, m) for m in marks))
        clashes = [m["_id"] for m, ok in zip(marks, inserted, strict=True) if not ok]
        first_row = {d["_id"]: int(d["row"]) for d in await self.ctx.store.find_all(
            IMPORT_ROWS, {"_id": {"$in": clashes}})} if clashes else {}
        accepted: list[Candidate] = []
        resent = 0
        for candidate, mark, ok in zip(candidates, marks, inserted, strict=True):
            first = first_row.get(mark["_id"])
            if ok or first == mark["row"]:
                resent += 0 if ok else 1
                accepted.append(candidate)
            else:
                errors.append(RowError(mark["row"], "kk_number", "duplicate_kk",
                                       f"duplicate KK in this list (first on row {first})"))
        now = self.ctx.clock()
        items: list[WorkItem] = [allocate_item(c, actor=officer.actor(), causation_id=str(req.batch_id), now=now)
                                 for c in accepted]
        await self.ctx.work.publish_all(items)
        return {"accepted": len(accepted) - resent, "resent": resent,
                "without_quota": sum(round_.excludes(c.village_code) for c in accepted),
                "rejected": [{"row": e.row, "column": e.column, "code": e.code, "reason": e.reason}
                             for e in sorted(errors, key=lambda e: e.row)]}

    async def finish_import(self, req: FinishImport, officer: Officer) -> dict[str, Any]:
        accepted = await self.ctx.store.count(IMPORT_ROWS, {"batch_id": str(req.batch_id)})
        summary = {"round_id": str(req.round_id), "kind": "import", "file_name": req.file_name,
                   "total_rows": req.total_rows, "rejected_rows": req.rejected_rows, "accepted": accepted,
                   "imported_by": officer.officer_id, "finished_at": self.ctx.clock()}
        await self.ctx.store.db[IMPORTS].update_one({"_id": str(req.batch_id)}, {"$set": summary}, upsert=True)
        return {"batch_id": str(req.batch_id), **summary}

    async def enqueue_assessed(self, req: RoundRef, officer: Officer) -> dict[str, Any]:
        """Every family whose latest assessment finds it eligible for the round's program becomes a candidate."""
        round_ = await self._open_round(req)
        households: dict[str, list[dict[str, Any]]] = {}
        for doc in await self.ctx.store.find_all(HOUSEHOLDS, {}):
            households.setdefault(doc["kk"], []).append(doc)
        assessments: dict[str, list[dict[str, Any]]] = {}
        for doc in await self.ctx.store.find_all(ASSESSMENTS, {}):
            assessments.setdefault(doc["kk"], []).append(doc)
        candidates, no_household, not_eligible = [], 0, 0
        for kk, docs in sorted(assessments.items()):
            assessment = latest_assessment(docs)
            household = latest_household(households.get(kk, []))
            if assessment is None or assessment.eligible_for(round_.program) is not True:
                not_eligible += 1
                continue
            if household is None:
                no_household += 1
                continue
            candidates.append(Candidate(
                candidate_id=f"assess:{assessment.event_id}", round_id=round_.round_id, kk_number=kk,
                head_nik=household.head_nik, recipient_name=household.head_name,
                village_code=household.village_code,
                payout=PayoutTarget(method=PayoutMethod.COLLECTION_POINT,
                                    reference=f"KANTOR-{village_digits(household.village_code)}"),
                basis=AllocationBasis(source=CandidateSource.ASSESSMENT, assessment_event_id=assessment.event_id,
                                      rule_set_version=round_.rule_version),
            ))
        digest = hashlib.sha256("\n".join(c.candidate_id for c in candidates).encode()).hexdigest()
        batch_id = stable_id("assessed-candidates", round_.round_id, digest)
        now = self.ctx.clock()
        await self.ctx.work.publish_all([allocate_item(c, actor=officer.actor(), causation_id=str(batch_id), now=now)
                                         for c in candidates])
        summary = {"round_id": str(round_.round_id), "kind": "assessments", "accepted": len(candidates),
                   "imported_by": officer.officer_id, "finished_at": now}
        await self.ctx.store.db[IMPORTS].update_one({"_id": str(batch_id)}, {"$set": summary}, upsert=True)
        return {"batch_id": str(batch_id), "enqueued": len(candidates), "without_household": no_household,
                "not_eligible": not_eligible}


def new_batch_id(round_id: uuid.UUID, content_sha256: str) -> uuid.UUID:
    """A recipient list's batch id: the same file for the same round is the same batch."""
    return stable_id("import-batch", round_id, content_sha256)
