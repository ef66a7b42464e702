"""History replay: projections rebuilt from logged events (pure folds), and their comparison.

``RoundTotalsProjection`` rebuilds what the distribution service reports for a round
(``RoundTotals``: allocations, rejections by reason, disbursements, final failures, budget);
``VillageCasesProjection`` counts a village's complaints and cases by state. Both count each
entity once (an event delivered twice, or repeated under a new id, does not count twice).
``compare`` lists the fields where two projections (the log's and the live service's, or the
log's and one rebuilt straight from the stream) disagree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RoundTotalsProjection:
    round_id: str
    budget_cap: int = 0
    opened: bool = False
    closed: bool = False
    reported_totals: dict[str, Any] | None = None  # what AidRoundClosed said
    allocations: dict[str, int] = field(default_factory=dict)  # allocation id -> amount
    rejections: dict[str, str] = field(default_factory=dict)  # event id -> reason
    disbursed: dict[str, int] = field(default_factory=dict)  # allocation id -> amount
    failed: set[str] = field(default_factory=set)  # allocation ids with a final failure
    events: int = 0

    def feed(self, event: Mapping[str, Any]) -> None:
        data = event.get("data") or {}
        if str(data.get("round_id")) != self.round_id:
            return
        self.events += 1
        kind = event.get("event_type")
        if kind == "AidRoundOpened":
            self.opened, self.budget_cap = True, int(data.get("budget_cap", 0))
        elif kind == "AidAllocated":
            self.allocations.setdefault(str(data["allocation_id"]), int(data.get("amount", 0)))
        elif kind == "AidAllocationRejected":
            self.rejections.setdefault(str(event.get("event_id")), str(data.get("reason")))
        elif kind == "AidDisbursed":
            self.disbursed.setdefault(str(data["allocation_id"]), int(data.get("amount", 0)))
        elif kind == "DisbursementFailed" and data.get("final"):
            self.failed.add(str(data["allocation_id"]))
        elif kind == "AidRoundClosed":
            self.closed = True
            self.reported_totals = dict(data.get("totals") or {})

    def totals(self) -> dict[str, Any]:
        allocated = sum(self.allocations.values())
        return {
            "allocated_count": len(self.allocations), "allocated_amount": allocated,
            "rejected_count": len(self.rejections), "rejected_by_reason": dict(sorted(Counter(
                self.rejections.values()).items())),
            "disbursed_count": len(self.disbursed), "disbursed_amount": sum(self.disbursed.values()),
            "failed_count": len(self.failed - set(self.disbursed)),
            "budget_cap": self.budget_cap, "budget_remaining": self.budget_cap - allocated,
        }


_CASE_EVENTS = {"CaseOpened": "cases_opened", "CaseAssessed": "cases_assessed", "CaseEscalated": "cases_escalated",
                "CaseClosed": "cases_closed", "ReferralIssued": "referrals_issued",
                "ReferralResolved": "referrals_resolved"}


@dataclass
class VillageCasesProjection:
    village_code: str
    complaints: set[str] = field(default_factory=set)
    case_village: dict[str, str] = field(default_factory=dict)  # case id -> village (every case seen)
    seen: dict[str, set[str]] = field(default_factory=lambda: {v: set() for v in _CASE_EVENTS.values()})
    closed_by: dict[str, str] = field(default_factory=dict)  # case id -> resolution

    def feed(self, event: Mapping[str, Any]) -> None:
        kind = str(event.get("event_type"))
        data = event.get("data") or {}
        if kind == "ComplaintFiled":
            if data.get("village_code") == self.village_code:
                self.complaints.add(str(data.get("complaint_id")))
            return
        if kind not in _CASE_EVENTS:
            return
        case_id = str(data.get("case_id"))
        if kind == "CaseOpened":
            self.case_village.setdefault(case_id, str(data.get("village_code")))
        village = self.case_village.get(case_id) or event.get("village_code")
        if village != self.village_code:
            return
        key = str(data.get("referral_id")) if kind.startswith("Referral") else case_id
        self.seen[_CASE_EVENTS[kind]].add(key)
        if kind == "CaseClosed":
            self.closed_by.setdefault(case_id, str(data.get("resolution")))

    def counts(self) -> dict[str, Any]:
        out: dict[str, Any] = {"complaints_filed": len(self.complaints)}
        out.update({name: len(ids) for name, ids in self.seen.items()})
        out["cases_open"] = len(self.seen["cases_opened"] - self.seen["cases_closed"])
        out["closed_by_resolution"] = dict(sorted(Counter(self.closed_by.values()).items()))
        return out


def round_totals(round_id: str, events: Iterable[Mapping[str, Any]]) -> RoundTotalsProjection:
    projection = RoundTotalsProjection(round_id=round_id)
    for event in events:
        projection.feed(event)
    return projection


def village_cases(village_code: str, events: Iterable[Mapping[str, Any]]) -> VillageCasesProjection:
    projection = VillageCasesProjection(village_code=village_code)
    for event in events:
        projection.feed(event)
    return projection


def compare(expected: Mapping[str, Any], actual: Mapping[str, Any], *, only: Iterable[str] | None = None
            ) -> list[str]:
    """Fields that differ (``only``: compare these fields, e.g. those a live source reports)."""
    names = list(only) if only is not None else sorted(set(expected) | set(actual))
    out = []
    for name in names:
        a, b = expected.get(name), actual.get(name)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            a, b = {str(k): v for k, v in a.items()}, {str(k): v for k, v in b.items()}
        if a != b:
            out.append(f"{name}: log {a!r}, other {b!r}")
    return out
