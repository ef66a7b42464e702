"""Start-up and periodic recovery: what a process killed mid-request leaves behind.

* Events waiting in an outbox are republished by the kit (start-up and its 5 s sweep).
* Pending household transfers are carried to their end (at start-up all of them, later those
  older than a minute, so a live request is not raced for nothing; racing would be safe anyway).
* Complaints filed shortly before the start may miss their listing row (the case-number lookup,
  written just after the complaint): they are completed (a scan of the last hour's complaints).
"""

from __future__ import annotations

import asyncio
import datetime as dt

from .api import Intake
from .context import log
from .status import complaint_of

RECENT = dt.timedelta(hours=1)
PENDING_TRANSFER_AGE = dt.timedelta(minutes=1)


async def complete_recent_complaints(svc: Intake) -> int:
    store = svc.views.store
    since = svc.views.ctx.clock() - RECENT
    repaired = 0
    async for doc in store.complaints.find({"filed_at": {"$gte": since}}):
        if await store.views.find_one({"_id": doc["case_number"]}) is None:
            await svc.views.settle_row(complaint_of(doc))
            repaired += 1
    return repaired


async def run_recovery(svc: Intake, interval_seconds: float) -> None:
    """Runs until cancelled: a full pass now, then pending transfers every ``interval_seconds``."""
    first = True
    while True:
        try:
            resumed = await svc.transfers.resume_pending(dt.timedelta(0) if first else PENDING_TRANSFER_AGE)
            repaired = await complete_recent_complaints(svc) if first else 0
            if resumed or repaired:
                log.info("intake_recovered", transfers_resumed=resumed, complaints_completed=repaired)
        except Exception as exc:  # the next pass tries again
            log.warning("intake_recovery_failed", error=f"{type(exc).__name__}: {exc}")
        first = False
        await asyncio.sleep(interval_seconds)
