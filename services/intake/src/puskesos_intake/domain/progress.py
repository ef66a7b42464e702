"""A complaint's status and history, folded from the referral service's case events.

Events may arrive out of order (retries, redeliveries): the history is kept sorted by the time
the event happened, each event counts once (by event id), and a closed case stays closed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from enum import StrEnum

from puskesos_shared.contracts.envelope import Event
from puskesos_shared.contracts.referral import (
    CaseAssessed,
    CaseClosed,
    CaseEscalated,
    CaseOpened,
    ReferralIssued,
    ReferralResolved,
)
from pydantic import BaseModel, ConfigDict

CASE_EVENTS: tuple[type[Event], ...] = (
    CaseOpened, CaseAssessed, ReferralIssued, ReferralResolved, CaseEscalated, CaseClosed,
)


class ComplaintStatus(StrEnum):
    FILED = "filed"
    CASE_OPENED = "case_opened"
    ASSESSED = "assessed"
    REFERRED = "referred"
    REFERRAL_RESOLVED = "referral_resolved"
    ESCALATED = "escalated"
    CLOSED = "closed"


class HistoryEntry(BaseModel):
    """One step of a complaint's life. ``summary`` is safe to tell anyone holding the case number;
    ``details`` is for officers (it may name programs, reasons and officers)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    status: ComplaintStatus
    at: dt.datetime
    summary: str
    event_id: str | None = None
    event_type: str | None = None
    details: dict[str, str] = {}


class Progress(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    case_id: str | None = None
    status: ComplaintStatus = ComplaintStatus.FILED
    history: tuple[HistoryEntry, ...] = ()

    def has(self, event_id: str) -> bool:
        return any(e.event_id == event_id for e in self.history)


def _entry(event: Event, status: ComplaintStatus, summary: str, details: dict[str, str]) -> HistoryEntry:
    return HistoryEntry(status=status, at=event.occurred_at, summary=summary, event_id=str(event.event_id),
                        event_type=event.event_type, details=details)


def entry_for(event: Event) -> HistoryEntry:
    if isinstance(event, CaseOpened):
        opened = event.data
        due = opened.sla_due_on.isoformat()
        return _entry(event, ComplaintStatus.CASE_OPENED, f"Case opened; to be handled by {due}",
                      {"case_id": str(opened.case_id), "sla_due_on": due})
    if isinstance(event, CaseAssessed):
        result = event.data.result
        eligible = ", ".join(e.program.value for e in result.eligibility if e.eligible) or "none"
        return _entry(event, ComplaintStatus.ASSESSED, "Case assessed",
                      {"pmks_category": result.pmks_category.value, "eligible_programs": eligible,
                       "assessed_by": event.data.assessed_by, "rule_set_version": event.data.rule_set_version})
    if isinstance(event, ReferralIssued):
        issued = event.data
        summary = f"Referred to {issued.target.name}, due {issued.due_on.isoformat()}"
        if issued.instructions:
            summary += f". {issued.instructions}"
        return _entry(event, ComplaintStatus.REFERRED, summary,
                      {"referral_number": issued.referral_number, "target": issued.target.code,
                       "issued_by": issued.issued_by})
    if isinstance(event, ReferralResolved):
        resolved = event.data
        return _entry(event, ComplaintStatus.REFERRAL_RESOLVED, f"Referral {resolved.outcome.value}",
                      {"outcome": resolved.outcome.value, "note": resolved.note,
                       "responded_by": resolved.responded_by})
    if isinstance(event, CaseEscalated):
        escalated = event.data
        return _entry(event, ComplaintStatus.ESCALATED, f"Escalated to {escalated.to_level.value.replace('_', ' ')}",
                      {"from_level": escalated.from_level.value, "to_level": escalated.to_level.value,
                       "reason": escalated.reason})
    if isinstance(event, CaseClosed):
        closed = event.data
        return _entry(event, ComplaintStatus.CLOSED, f"Closed: {closed.resolution.value.replace('_', ' ')}",
                      {"resolution": closed.resolution.value, "reason": closed.reason, "closed_by": closed.closed_by})
    raise ValueError(f"{event.event_type} does not change a complaint's status")


def fold(entries: Iterable[HistoryEntry], case_id: str | None = None) -> Progress:
    """The progress from a set of entries, whatever order they came in."""
    unique = {e.event_id: e for e in entries}
    history = tuple(sorted(unique.values(), key=lambda e: (e.at, e.event_id or "")))
    status = ComplaintStatus.FILED
    if any(e.status is ComplaintStatus.CLOSED for e in history):
        status = ComplaintStatus.CLOSED
    elif history:
        status = history[-1].status
    return Progress(case_id=case_id, status=status, history=history)


def apply(progress: Progress, event: Event) -> Progress:
    """``progress`` with ``event`` in it (unchanged when the event is already there)."""
    if progress.has(str(event.event_id)):
        return progress
    case_id = progress.case_id
    if isinstance(event, CaseOpened):
        case_id = str(event.data.case_id)
    return fold((*progress.history, entry_for(event)), case_id)
