"""The case-progress consumer: the referral service's case events become the complaint's status history.

CaseOpened names the complaint (``complaint_id``) and the case; later events name only the case,
so CaseOpened records ``case_id -> complaint_id`` (``case_links``). An event for a complaint or a
case not known yet (CaseAssessed overtaking CaseOpened, or CaseOpened overtaking our own
ComplaintFiled write) raises TransientError: the kit retries it with backoff and, past its bound,
dead-letters it with the reason. Each event enters the history once (by event id).
"""

from __future__ import annotations

from puskesos_shared.contracts.envelope import Event
from puskesos_shared.contracts.referral import (
    CaseAssessed,
    CaseClosed,
    CaseEscalated,
    CaseOpened,
    ReferralIssued,
    ReferralResolved,
)
from puskesos_shared.contracts.registry import InvalidMessage
from puskesos_shared.messaging import Delivery, TransientError
from puskesos_shared.mongo import insert_once

from .context import log
from .domain.progress import apply
from .filing import ComplaintDesk
from .status import ComplaintViews

CONSUMER = "intake-case-progress"


def case_id_of(event: Event) -> str:
    if isinstance(event, (CaseAssessed, ReferralIssued, ReferralResolved, CaseEscalated, CaseClosed)):
        return str(event.data.case_id)
    raise InvalidMessage(f"{event.event_type} is not a case event")


class CaseProgress:
    def __init__(self, views: ComplaintViews, desk: ComplaintDesk) -> None:
        self.views, self.desk = views, desk
        self.store = views.store

    async def handle(self, event: Event, delivery: Delivery) -> None:
        if isinstance(event, CaseOpened):
            complaint_id = str(event.data.complaint_id)
            complaint = await self.views.complaint(complaint_id)
            if complaint is None:
                raise TransientError("CaseOpened for a complaint not stored here (yet)")
            if complaint.case_number != event.data.case_number:
                raise InvalidMessage(f"CaseOpened names case number {event.data.case_number} but the complaint has "
                                     f"{complaint.case_number}")
            await insert_once(self.store.case_links, {"_id": str(event.data.case_id), "complaint_id": complaint_id})
        else:
            case_id = case_id_of(event)
            link = await self.store.case_links.find_one({"_id": case_id})
            if link is None:
                raise TransientError(f"{event.event_type} for a case whose CaseOpened has not been seen yet")
            complaint_id = link["complaint_id"]
            complaint = await self.views.complaint(complaint_id)
            if complaint is None:  # pragma: no cover - a link is written only for a stored complaint
                raise TransientError("the linked complaint is not readable")
        for _ in range(10):
            progress, number = await self.views.progress(complaint_id)
            updated = apply(progress, event)
            if updated == progress:
                break  # seen before (a redelivery)
            if await self.store.progress.append(complaint_id, number, updated.model_dump(mode="json")):
                log.info("complaint_progressed", complaint_id=complaint_id, status=updated.status.value,
                         event_type=event.event_type)
                break
        else:
            raise TransientError("the complaint's progress kept changing; will retry")
        await self.views.settle_row(complaint)
        if isinstance(event, CaseClosed):
            await self.desk.release_open(complaint)
