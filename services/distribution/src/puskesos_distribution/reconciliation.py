"""Round totals and the reconciliation of the service's records with the gateway's payments (pure).

They must match exactly: every recorded disbursement is one executed payment of the same amount
under its allocation's key; every executed payment of the round is a recorded disbursement; no
failed or undecided allocation was paid; no family (KK) was paid twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from puskesos_shared.contracts.distribution import Reconciliation, RejectionReason, RoundTotals

from .gateway import LedgerEntry

MAX_MISMATCHES = 200  # listed in the event; the count says how many there were in all


def round_totals(budget_cap: int, allocations: Iterable[Mapping[str, Any]], rejections: Iterable[Mapping[str, Any]],
                 disbursements: Iterable[Mapping[str, Any]]) -> RoundTotals:
    allocated = list(allocations)
    reasons = Counter(RejectionReason(r["reason"]) for r in rejections)
    outcomes = list(disbursements)
    paid = [d for d in outcomes if d["outcome"] == "disbursed"]
    allocated_amount = sum(int(a["amount"]) for a in allocated)
    return RoundTotals(
        allocated_count=len(allocated), allocated_amount=allocated_amount, rejected_count=sum(reasons.values()),
        rejected_by_reason=dict(reasons), disbursed_count=len(paid),
        disbursed_amount=sum(int(d["amount"]) for d in paid),
        failed_count=sum(1 for d in outcomes if d["outcome"] == "failed"),
        budget_cap=budget_cap, budget_remaining=budget_cap - allocated_amount,
    )


def reconcile(allocations: Iterable[Mapping[str, Any]], disbursements: Iterable[Mapping[str, Any]],
              ledger: Iterable[LedgerEntry]) -> Reconciliation:
    allocs = {str(a["_id"]): a for a in allocations}
    outcomes = {str(d["_id"]): d for d in disbursements}
    payments: dict[str, LedgerEntry] = {}
    problems: list[str] = []
    for entry in ledger:
        if entry.idempotency_key in payments:
            problems.append(f"{entry.idempotency_key}: the gateway lists the key twice")
        payments[entry.idempotency_key] = entry
        if entry.executions != 1:
            problems.append(f"{entry.idempotency_key}: executed {entry.executions} times at the gateway")
    for key, outcome in outcomes.items():
        payment = payments.get(key)
        if key not in allocs:
            problems.append(f"{key}: a disbursement record without an allocation")
        if outcome["outcome"] == "disbursed":
            if payment is None:
                problems.append(f"{key}: recorded as disbursed, no payment at the gateway")
            elif payment.amount != int(outcome["amount"]) or payment.payment_id != outcome.get("payment_id"):
                problems.append(f"{key}: the gateway paid {payment.amount} as {payment.payment_id}, the record "
                                f"says {outcome['amount']} as {outcome.get('payment_id')}")
        elif payment is not None:
            problems.append(f"{key}: recorded as {outcome['outcome']}, yet paid at the gateway")
    for key, payment in payments.items():
        if key not in outcomes:
            problems.append(f"{key}: paid at the gateway ({payment.amount}), no disbursement record")
    for key in allocs.keys() - outcomes.keys():
        problems.append(f"{key}: allocated, no disbursement outcome")
    kk_paid = Counter(p.kk_number for p in payments.values())
    problems += [f"KK ending {kk[-4:]}: paid {n} times in the round" for kk, n in kk_paid.items() if n > 1]
    shown = problems[:MAX_MISMATCHES]
    if len(problems) > MAX_MISMATCHES:
        shown.append(f"... and {len(problems) - MAX_MISMATCHES} more")
    return Reconciliation(
        gateway_executed_count=len(payments), gateway_executed_amount=sum(p.amount for p in payments.values()),
        matched=not problems, mismatches=tuple(shown),
    )
