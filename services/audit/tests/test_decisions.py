"""Decision replay (pure): recorded decisions re-derived; every kind of inconsistency is a mismatch."""

from __future__ import annotations

import copy
import json
from typing import Any

from audit_flow import RULE_SET, VILLAGE, build_flow
from puskesos_audit.decisions import replay_decisions
from puskesos_audit.history import live_comparable
from puskesos_audit.projections import compare, round_totals, village_cases
from puskesos_shared.ids import stable_id

RULES = {"assessment@1": RULE_SET}


def events(seed: int = 0) -> list[tuple[int, dict[str, Any]]]:
    return [(i, json.loads(e.model_dump_json())) for i, e in enumerate(build_flow(seed).events, start=1)]


def by_type(evs: list[tuple[int, dict[str, Any]]], event_type: str) -> dict[str, Any]:
    return next(e for _, e in evs if e["event_type"] == event_type)


def report(evs: list[tuple[int, dict[str, Any]]], rules: dict[str, Any] = RULES) -> Any:
    return replay_decisions(evs, rules).finish()


def reasons(r: Any) -> list[str]:
    return [reason for v in r.mismatches for reason in v.reasons]


def test_a_consistent_flow_matches() -> None:
    r = report(events())
    assert r.ok and r.matches == 4 and not r.unverifiable


def test_an_assessment_is_re_derived_from_its_inputs() -> None:
    evs = events()
    assessed = by_type(evs, "CaseAssessed")
    assessed["data"]["result"]["eligibility"][3]["eligible"] = False  # BLT said no: not what the rules give
    assert any("BLT: recorded eligible=False" in x for x in reasons(report(evs)))


def test_inputs_that_do_not_match_their_digest_are_a_mismatch() -> None:
    evs = events()
    by_type(evs, "CaseAssessed")["data"]["inputs"]["household"]["monthly_income"] = 9_000_000
    assert any("inputs_digest" in x for x in reasons(report(evs)))


def test_an_unknown_rule_set_is_unverifiable_until_it_is_learnt() -> None:
    replay = replay_decisions(events(), {})
    assert "assessment@1" in replay.missing_rules
    replay.resolve_rule_set("assessment@1", RULE_SET)
    assert replay.finish().matches == 4
    unknown = report(events(), {})
    assert unknown.ok and [v.event_type for v in unknown.unverifiable] == ["CaseAssessed"]


def test_allocation_mismatches() -> None:
    evs = events()
    allocated = by_type(evs, "AidAllocated")["data"]
    allocated["amount"] = 600_000
    allocated["basis"]["rule_set_version"] = "blt-eligibility@2"
    found = reasons(report(evs))
    assert any("amount 600000" in x for x in found) and any("rule version" in x for x in found)
    assert any("over the budget" in x for x in found)


def test_a_second_allocation_or_payment_of_one_family_is_a_mismatch() -> None:
    evs = events()
    allocated = copy.deepcopy(by_type(evs, "AidAllocated"))
    disbursed = copy.deepcopy(by_type(evs, "AidDisbursed"))
    disbursed["data"]["disbursement_id"] = str(stable_id("other"))
    evs += [(100, allocated), (101, disbursed)]
    found = reasons(report(evs))
    assert any("second allocation" in x for x in found) and any("second payment" in x for x in found)


def test_an_allocation_resting_on_an_ineligible_assessment_is_a_mismatch() -> None:
    evs = events()
    blt = by_type(evs, "CaseAssessed")["data"]["result"]["eligibility"][3]
    blt["eligible"] = False
    found = reasons(report(evs))
    assert any("did not find the family eligible for BLT" in x for x in found)


def test_rejections_are_checked_against_the_rounds_totals() -> None:
    evs = events()
    opened = by_type(evs, "AidRoundOpened")["data"]
    opened["budget_cap"] = 900_000  # room for two more families: "budget exhausted" does not hold
    assert any("budget_exhausted" in x for x in reasons(report(evs)))
    evs = events()
    rejected = by_type(evs, "AidAllocationRejected")["data"]
    rejected["reason"] = "duplicate_kk"  # that family was never allocated
    assert any("duplicate_kk" in x for x in reasons(report(evs)))


def test_a_rejection_reason_added_by_a_newer_release_is_unverifiable() -> None:
    evs = events()
    by_type(evs, "AidAllocationRejected")["data"]["reason"] = "income_above_threshold"  # RejectionReason is open
    r = report(evs)
    assert r.ok and [v.event_type for v in r.unverifiable] == ["AidAllocationRejected"]
    assert "income_above_threshold" in r.unverifiable[0].reasons[0]


def test_projections_fold_the_round_and_the_village() -> None:
    evs = [e for _, e in events()]
    rid = by_type(events(), "AidRoundOpened")["data"]["round_id"]
    projection = round_totals(rid, evs + evs)  # every event twice: counted once
    assert projection.totals()["allocated_count"] == 1 and projection.totals()["budget_remaining"] == 0
    assert compare(projection.totals(), projection.reported_totals or {}) == []
    counts = village_cases(VILLAGE, evs + evs).counts()
    assert counts["cases_opened"] == 1 and counts["cases_open"] == 0 and counts["referrals_issued"] == 1
    assert compare({"a": 1, "b": {"x": 1}}, {"a": 2, "b": {"x": 1}}) == ["a: log 1, other 2"]


def test_the_live_round_status_maps_onto_the_projection() -> None:
    status = {"exact": {"allocations": 1, "rejections": 1, "disbursements": 1},
              "closed": {"totals": {"allocated_count": 1, "budget_remaining": 0}}}
    live = live_comparable(status)
    assert live == {"allocated_count": 1, "rejected_count": 1, "disbursed_count": 1, "budget_remaining": 0}
    rid = by_type(events(), "AidRoundOpened")["data"]["round_id"]
    totals = round_totals(rid, [e for _, e in events()]).totals()
    assert compare(totals, live, only=sorted(live)) == []
    assert compare(totals, {**live, "disbursed_count": 2}, only=sorted(live)) == ["disbursed_count: log 1, other 2"]


def _quota_elsewhere(evs: list[tuple[int, dict[str, Any]]], choice: str | None) -> tuple[dict[str, Any], ...]:
    """The round gets a quota for another village only (and, with rule @2, a choice for the others)."""
    opened = by_type(evs, "AidRoundOpened")["data"]
    opened["village_quotas"] = [{"village_code": "35.73.01.1002", "max_families": 5}]
    if choice is not None:
        opened["villages_without_quota"] = choice
        opened["eligibility_rule_version"] = "blt-eligibility@2"
        for kind in ("AidAllocated", "AidAllocationRejected"):
            by_type(evs, kind)["data"]["basis"]["rule_set_version"] = "blt-eligibility@2"
    return by_type(evs, "AidAllocated")["data"], by_type(evs, "AidAllocationRejected")["data"]


def verdicts(r: Any, event_type: str) -> list[str]:
    found = [("mismatch", v) for v in r.mismatches] + [("unverifiable", v) for v in r.unverifiable]
    return [kind for kind, v in found if v.event_type == event_type]


def test_villages_without_a_quota_under_rule_1_are_not_eligible() -> None:
    evs = events()
    _, rejected = _quota_elsewhere(evs, None)
    rejected["reason"] = "not_eligible"  # what rule @1 said of a village without a quota
    r = report(evs)
    assert verdicts(r, "AidAllocationRejected") == []  # a match: replays of earlier rounds still hold
    assert any(f"village {VILLAGE} has no quota in a round that excludes" in x for x in reasons(r))  # the allocation


def test_villages_without_a_quota_follow_the_rounds_choice_under_rule_2() -> None:
    evs = events()
    _, rejected = _quota_elsewhere(evs, "excluded")
    rejected["reason"] = "no_village_quota"
    r = report(evs)
    assert verdicts(r, "AidAllocationRejected") == [] and verdicts(r, "AidAllocated") == ["mismatch"]

    evs = events()
    _, rejected = _quota_elsewhere(evs, "unlimited")
    rejected["reason"] = "no_village_quota"  # not a reason in a round leaving such villages unlimited
    r = report(evs)
    assert verdicts(r, "AidAllocated") == [] and verdicts(r, "AidAllocationRejected") == ["mismatch"]
    assert any("leaves villages without one unlimited" in x for x in reasons(r))
