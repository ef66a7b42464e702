"""The end-state checks the system test and the demo rely on: each must fail on the harm it names.

A check that cannot fail proves nothing, so every check is shown passing on a consistent end
state and failing on one broken the way production could break it (a payment twice, a lost
outcome, a complaint without a case, an overspent budget, a silent notification...).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from puskesos_cli.scenario.checks import EndState, end_state_checks

ROUND = "11111111-1111-1111-1111-111111111111"
VILLAGE = "35.73.01.1001"


def _event(event_type: str, event_id: str, **data: Any) -> dict[str, Any]:
    return {"event_type": event_type, "event_id": event_id, "village_code": VILLAGE, "data": data, "_seq": 0}


def _notified(source: str, n: int, sent: bool = True) -> dict[str, Any]:
    return _event("NotificationSent" if sent else "NotificationFailed", f"note-{n}", source_event_id=source,
                  notification_id=f"nid-{n}", channel="local_file")


def consistent() -> EndState:
    events = [
        _event("ComplaintFiled", "e-c1", complaint_id="c1", village_code=VILLAGE),
        _event("CaseOpened", "e-o1", complaint_id="c1", case_id="k1"),
        _event("CaseClosed", "e-x1", case_id="k1"),
        _event("AidRoundOpened", "e-r", round_id=ROUND),
        _event("AidAllocated", "e-a1", round_id=ROUND, allocation_id="a1", kk_number="3573010101200001",
               village_code=VILLAGE, amount=300_000),
        _event("AidAllocated", "e-a2", round_id=ROUND, allocation_id="a2", kk_number="3573010101200002",
               village_code=VILLAGE, amount=300_000),
        _event("AidDisbursed", "e-d1", round_id=ROUND, allocation_id="a1", kk_number="3573010101200001",
               amount=300_000),
        _event("DisbursementFailed", "e-f2a", round_id=ROUND, allocation_id="a2", reason="bank busy", final=False),
        _event("DisbursementFailed", "e-f2", round_id=ROUND, allocation_id="a2", reason="declined", final=True),
        _event("AidRoundClosed", "e-close", round_id=ROUND, totals={
            "allocated_count": 2, "allocated_amount": 600_000, "disbursed_count": 1, "disbursed_amount": 300_000,
            "failed_count": 1, "rejected_count": 0, "rejected_by_reason": {}, "budget_cap": 600_000,
            "budget_remaining": 0}, reconciliation={"matched": True, "mismatches": [], "gateway_executed_count": 1,
                                                    "gateway_executed_amount": 300_000}),
    ]
    sources = ("e-c1", "e-x1", "e-a1", "e-a2", "e-d1")
    events += [_notified(s, i) for i, s in enumerate(sources)]
    events += [_notified("e-f2", 9, sent=False)]  # the officers' message about the failed payout
    return EndState(
        events=events, complaint_ids={"c1"}, case_ids={"k1"}, round_id=ROUND, budget_cap=600_000,
        quotas={VILLAGE: 2},
        ledger=[{"idempotency_key": "a1", "round_id": ROUND, "kk_number": "3573010101200001", "amount": 300_000}],
        channel_lines=[{"notification_id": f"nid-{i}"} for i in range(len(sources))],
        verify={"ok": True, "records": 20, "last_seq": 20, "findings": []}, stream_last_seq=20, dead_letters=0)


def failing(state: EndState) -> set[str]:
    return {c.name.split(" (")[0] for c in end_state_checks(state) if not c.ok}


def test_a_consistent_end_state_passes_every_check() -> None:
    checks = end_state_checks(consistent())
    assert [c for c in checks if not c.ok] == []
    assert len(checks) == 7


def _drop(state: EndState, event_id: str) -> EndState:
    state.events = [e for e in state.events if e["event_id"] != event_id]
    return state


def _add(state: EndState, event: dict[str, Any]) -> EndState:
    state.events.append(event)
    return state


def _mismatch(state: EndState) -> EndState:
    state.of_round("AidRoundClosed")[0]["data"]["reconciliation"].update(matched=False, mismatches=["a1: differs"])
    return state


Mutation = Callable[[EndState], EndState]
BREAKAGES: dict[str, tuple[Mutation, str]] = {
    "complaint without a case": (lambda s: _drop(s, "e-o1"), "every complaint has exactly one case"),
    "a case opened twice": (lambda s: _add(s, _event("CaseOpened", "e-o1b", complaint_id="c1", case_id="k1")),
                            "every complaint has exactly one case"),
    "an allocation paid twice": (
        lambda s: _add(s, _event("AidDisbursed", "e-d1b", round_id=ROUND, allocation_id="a1",
                                 kk_number="3573010101200001", amount=300_000)),
        "every allocation is paid once or failed with a reason"),
    "an allocation left without an outcome": (lambda s: _drop(s, "e-f2"),
                                              "every allocation is paid once or failed with a reason"),
    "the bank executed a key twice": (lambda s: replace(s, ledger=s.ledger * 2),
                                      "the bank executed each payment once"),
    "the bank paid what nobody recorded": (
        lambda s: replace(s, ledger=[*s.ledger, {"idempotency_key": "a2", "round_id": ROUND,
                                                 "kk_number": "3573010101200002", "amount": 300_000}]),
        "the bank executed each payment once"),
    "the reconciliation found mismatches": (_mismatch, "the round closes and reconciles"),
    "the budget overspent": (lambda s: replace(s, budget_cap=300_000), "the round closes and reconciles"),
    "a quota exceeded": (lambda s: replace(s, quotas={VILLAGE: 1}), "the round closes and reconciles"),
    "the audit chain altered": (lambda s: replace(s, verify={**s.verify, "ok": False}),
                                "the audit chain verifies and covers the whole stream"),
    "the audit log behind the stream": (lambda s: replace(s, stream_last_seq=25),
                                        "the audit chain verifies and covers the whole stream"),
    "a payout nobody was told about": (lambda s: _drop(s, "note-4"), "notifications match events"),
    "a message in the channel twice": (lambda s: replace(s, channel_lines=s.channel_lines * 2),
                                       "notifications match events"),
    "a sent message missing from the channel": (lambda s: replace(s, channel_lines=s.channel_lines[1:]),
                                                "notifications match events"),
    "a dead letter": (lambda s: replace(s, dead_letters=1), "no message was dead-lettered"),
}


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_each_check_fails_on_the_harm_it_names(breakage: str) -> None:
    mutate, check = BREAKAGES[breakage]
    state = mutate(copy.deepcopy(consistent()))
    assert check in failing(state)
