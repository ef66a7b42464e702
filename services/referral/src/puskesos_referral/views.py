"""What officers see of a case: full detail, list rows with SLA state, and monthly counts."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from typing import Any

from lokal import PiiType, partial_mask

from .domain import sla
from .domain.case import Case, CaseStatus


def case_sla_state(case: Case, now: dt.datetime) -> str:
    """on_track / at_risk / breached against the resident's SLA; closed cases: closed_on_time / closed_late."""
    if case.closure is not None:
        return "closed_on_time" if case.closure.within_sla else "closed_late"
    return sla.sla_state(case.sla_due_on, sla.local_date(case.village_code, now)).value


def _masked(kind: PiiType, value: str | None) -> str | None:
    return partial_mask(kind, value) if value else None


def case_row(case: Case, now: dt.datetime) -> dict[str, Any]:
    """A list row: no assessment detail, personal numbers masked."""
    return {
        "case_id": str(case.case_id), "case_number": case.case_number, "category": case.category.value,
        "urgency": case.urgency.value, "village_code": case.village_code, "kecamatan_code": case.kecamatan_code,
        "status": case.status.value, "level": case.level.value, "filed_on": case.filed_on.isoformat(),
        "sla_due_on": case.sla_due_on.isoformat(), "level_due_on": case.level_due_on.isoformat(),
        "sla_state": case_sla_state(case, now), "subject_nik": _masked("NIK", case.subject_nik),
        "kk_number": _masked("KK", case.kk_number), "escalations": len(case.escalations),
        "open_referral": (case.pending_referral.referral_number if case.pending_referral else None),
        "resolution": case.closure.resolution.value if case.closure else None,
    }


def case_detail(case: Case, now: dt.datetime) -> dict[str, Any]:
    """Everything about one case, for the officers in its scope."""
    body = case.model_dump(mode="json", exclude={"commands"})
    body["assessments"] = [
        {"assessment_id": str(a.assessment_id), "assessed_by": a.event.data.assessed_by,
         "assessed_at": a.event.occurred_at.isoformat(), "rule_set_version": a.event.data.rule_set_version,
         "inputs_digest": a.event.data.inputs_digest, "inputs": a.event.data.inputs,
         "result": a.event.data.result.model_dump(mode="json"), "note": a.note}
        for a in case.assessments
    ]
    body["sla_state"] = case_sla_state(case, now)
    return body


def summary(cases: Iterable[Case], start: dt.date, end: dt.date, now: dt.datetime) -> dict[str, Any]:
    """Counts per village for the monthly evaluation: cases filed and closed in [start, end), and open now."""
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
        if case.status is not CaseStatus.CLOSED:
            counts["open"] += 1
            counts[f"open_{case_sla_state(case, now)}"] += 1
            if case.level.value != "village":
                counts[f"open_at_{case.level.value}"] += 1
    keys = ("filed", "closed", "closed_within_sla", "closed_late", "open", "open_on_track", "open_at_risk",
            "open_breached", "open_at_kecamatan", "open_at_dinas_sosial")
    villages = {code: {k: counts.get(k, 0) for k in keys} for code, counts in sorted(per_village.items())}
    totals = {k: sum(v[k] for v in villages.values()) for k in keys}
    return {"from": start.isoformat(), "until": end.isoformat(), "villages": villages, "totals": totals,
            "filed_by_category": dict(sorted(categories.items()))}
