"""What officers see of a case: full detail with its timeline, list rows with SLA state, escalation rows,
and monthly counts. Timeline summaries and escalation rows carry no personal data (no NIK, KK, name,
note, reason or instructions written by people)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from typing import Any

from lokal import PiiType, partial_mask
from puskesos_shared.contracts.envelope import Event
from puskesos_shared.contracts.referral import (
    CaseAssessed,
    CaseClosed,
    CaseEscalated,
    CaseOpened,
    EscalationAcknowledged,
    EscalationResolved,
    ReferralIssued,
    ReferralOutcome,
    ReferralResolved,
)

from .domain import sla
from .domain.case import Case, CaseStatus, EscalationRecord


def case_sla_state(case: Case, now: dt.datetime) -> str:
    """on_track / at_risk / breached against the resident's SLA; closed cases: closed_on_time / closed_late."""
    if case.closure is not None:
        return "closed_on_time" if case.closure.within_sla else "closed_late"
    return sla.sla_state(case.sla_due_on, sla.local_date(case.village_code, now)).value


def sla_days(case: Case, now: dt.datetime) -> tuple[int | None, int | None]:
    """(working days left, working days overdue) against the resident's SLA; (None, None) once closed."""
    if case.closure is not None:
        return None, None
    today = sla.local_date(case.village_code, now)
    if today > case.sla_due_on:
        return 0, sla.overdue_working_days(case.sla_due_on, today)
    return sla.working_days_between(today, case.sla_due_on), 0


def _masked(kind: PiiType, value: str | None) -> str | None:
    return partial_mask(kind, value) if value else None


def case_row(case: Case, now: dt.datetime) -> dict[str, Any]:
    """A list row: no assessment detail, personal numbers masked."""
    left, overdue = sla_days(case, now)
    latest = case.latest_escalation
    return {
        "case_id": str(case.case_id), "case_number": case.case_number, "category": case.category.value,
        "urgency": case.urgency.value, "village_code": case.village_code, "kecamatan_code": case.kecamatan_code,
        "status": case.status.value, "level": case.level.value, "filed_on": case.filed_on.isoformat(),
        "sla_due_on": case.sla_due_on.isoformat(), "level_due_on": case.level_due_on.isoformat(),
        "sla_state": case_sla_state(case, now), "working_days_left": left, "overdue_working_days": overdue,
        "escalation_status": latest.status.value if latest else None, "subject_nik": _masked("NIK", case.subject_nik),
        "kk_number": _masked("KK", case.kk_number), "escalations": len(case.escalations),
        "open_referral": (case.pending_referral.referral_number if case.pending_referral else None),
        "resolution": case.closure.resolution.value if case.closure else None,
    }


def case_detail(case: Case, now: dt.datetime, events: Iterable[Event] | None = None) -> dict[str, Any]:
    """Everything about one case, for the officers in its scope; with ``events`` (the case's change log),
    its ``timeline``."""
    body = case.model_dump(mode="json", exclude={"commands"})
    for record, dumped in zip(case.escalations, body["escalations"], strict=True):
        dumped["status"] = record.status.value
    body["assessments"] = [
        {"assessment_id": str(a.assessment_id), "assessed_by": a.event.data.assessed_by,
         "assessed_at": a.event.occurred_at.isoformat(), "rule_set_version": a.event.data.rule_set_version,
         "inputs_digest": a.event.data.inputs_digest, "inputs": a.event.data.inputs,
         "result": a.event.data.result.model_dump(mode="json"), "note": a.note}
        for a in case.assessments
    ]
    body["sla_state"] = case_sla_state(case, now)
    body["working_days_left"], body["overdue_working_days"] = sla_days(case, now)
    if events is not None:
        body["timeline"] = timeline(case, events)
    return body


def escalation_row(case: Case, record: EscalationRecord, now: dt.datetime) -> dict[str, Any]:
    """A row of the escalation list: the case, the escalation's level, since when, how late, its status."""
    today = sla.local_date(case.village_code, now)
    ack, done = record.acknowledgement, record.resolution
    return {
        "case_id": str(case.case_id), "case_number": case.case_number, "village_code": case.village_code,
        "kecamatan_code": case.kecamatan_code, "category": case.category.value, "urgency": case.urgency.value,
        "case_status": case.status.value, "level": record.to_level.value, "from_level": record.from_level.value,
        "escalated_at": record.escalated_at.isoformat(), "escalation_event_id": str(record.event_id),
        "reason": record.reason, "missed_due_on": record.missed_due_on.isoformat(),
        "sla_due_on": case.sla_due_on.isoformat(), "level_due_on": case.level_due_on.isoformat(),
        "current_level": case.level.value, "sla_state": case_sla_state(case, now),
        "overdue_working_days": sla.overdue_working_days(case.sla_due_on, today) if case.closure is None else None,
        "status": record.status.value,
        "acknowledged_by": ack.by if ack else None, "acknowledged_at": ack.at.isoformat() if ack else None,
        "resolved_by": done.by if done else None, "resolved_at": done.at.isoformat() if done else None,
        "resolution": done.action if done else None,
    }


# --- the timeline ---------------------------------------------------------------------------------
def _summary(case: Case, event: Event) -> str:
    """One line about an event, without personal data (notes, reasons and instructions are left out)."""
    match event:
        case CaseOpened(data=d):
            return (f"case opened: {d.category.value}, urgency {d.urgency.value}, SLA {d.sla_working_days} "
                    f"working days (due {d.sla_due_on.isoformat()})")
        case CaseAssessed(data=d):
            eligible = [e.program.value for e in d.result.eligibility if e.eligible]
            return (f"assessed with {d.rule_set_version}: {d.result.pmks_category.value}, score "
                    f"{d.result.vulnerability_score:g}, eligible for {', '.join(eligible) or 'no program'}")
        case ReferralIssued(data=d):
            return (f"referral {d.referral_number} issued to {d.target.name} ({d.target.kind.value}), "
                    f"due {d.due_on.isoformat()}")
        case ReferralResolved(data=d):
            referral = case.referral(d.referral_id)
            number = referral.referral_number if referral else str(d.referral_id)
            return f"referral {number} answered: {d.outcome.value}"
        case CaseEscalated(data=d):
            return (f"escalated from {d.from_level.value} to {d.to_level.value}: {d.reason} "
                    f"({d.overdue_working_days} working days overdue)")
        case EscalationAcknowledged(data=d):
            return f"escalation at {d.level.value} acknowledged"
        case EscalationResolved(data=d):
            if d.level_after is not d.level:
                return (f"escalation at {d.level.value} resolved ({d.action.value}): back to {d.level_after.value}, "
                        f"due {d.due_on.isoformat()}")
            return f"escalation at {d.level.value} resolved ({d.action.value}), due {d.due_on.isoformat()}"
        case CaseClosed(data=d):
            return f"closed: {d.resolution.value}"
    return event.event_type


def timeline(case: Case, events: Iterable[Event]) -> list[dict[str, Any]]:
    """Every event of the case in order: type, when, who (kind, id, role) and a one-line summary."""
    return [{"event_id": str(e.event_id), "event_type": e.event_type, "occurred_at": e.occurred_at.isoformat(),
             "actor": {"kind": e.actor.kind.value, "id": e.actor.id,
                       "role": e.actor.role.value if e.actor.role else None},
             "summary": _summary(case, e)} for e in events]


def summary(cases: Iterable[Case], start: dt.date, end: dt.date, now: dt.datetime) -> dict[str, Any]:
    """Counts per village for the monthly evaluation: cases filed and closed in [start, end), open now, and
    referrals issued and completed (answered ``completed``) in [start, end), by the village's local date."""
    per_village: dict[str, Counter[str]] = {}
    categories: Counter[str] = Counter()
    for case in cases:
        counts = per_village.setdefault(case.village_code, Counter())
        if start <= case.filed_on < end:
            counts["filed"] += 1
            categories[case.category.value] += 1
        if case.closure is not None and start <= case.closure.closed_on < end:
            counts["closed"] += 1
            counts["closed_within_sla" if case.closure.within_sla else "closed_late"] += 1
        for referral in case.referrals:
            if start <= sla.local_date(case.village_code, referral.issued_at) < end:
                counts["referrals_issued"] += 1
            completed = [r for r in referral.responses if r.outcome is ReferralOutcome.COMPLETED]
            if completed and start <= sla.local_date(case.village_code, completed[-1].responded_at) < end:
                counts["referrals_completed"] += 1
        if case.status is not CaseStatus.CLOSED:
            counts["open"] += 1
            counts[f"open_{case_sla_state(case, now)}"] += 1
            if case.level.value != "village":
                counts[f"open_at_{case.level.value}"] += 1
    keys = ("filed", "closed", "closed_within_sla", "closed_late", "open", "open_on_track", "open_at_risk",
            "open_breached", "open_at_kecamatan", "open_at_dinas_sosial", "referrals_issued", "referrals_completed")
    villages = {code: {k: counts.get(k, 0) for k in keys} for code, counts in sorted(per_village.items())}
    totals = {k: sum(v[k] for v in villages.values()) for k in keys}
    return {"from": start.isoformat(), "until": end.isoformat(), "villages": villages, "totals": totals,
            "filed_by_category": dict(sorted(categories.items()))}
