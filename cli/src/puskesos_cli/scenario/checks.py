"""The end state, checked where effects land: the events stream, the bank's ledger, the notification channel.

Pure functions over what the scenario collected (events as JSON objects, ledger and channel
lines, the audit verification report); the demo prints them, the system test asserts them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from lokal import format_rupiah

RESIDENT_NOTIFIED = ("ComplaintFiled", "ReferralIssued", "CaseClosed", "AidAllocated", "AidDisbursed")
OFFICER_NOTIFIED = ("CaseEscalated",)
NOTIFICATIONS = ("NotificationSent", "NotificationFailed")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class EndState:
    """What the scenario saw at the end, restricted to this run."""

    events: list[dict[str, Any]]
    complaint_ids: set[str]
    case_ids: set[str]
    round_id: str
    budget_cap: int
    quotas: dict[str, int]
    ledger: list[dict[str, Any]]
    channel_lines: list[dict[str, Any]]
    verify: dict[str, Any]
    stream_last_seq: int
    dead_letters: int

    def of_type(self, *types: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event_type") in types]

    def of_round(self, *types: str) -> list[dict[str, Any]]:
        return [e for e in self.of_type(*types) if str(e["data"].get("round_id")) == self.round_id]

    def of_cases(self, *types: str) -> list[dict[str, Any]]:
        return [e for e in self.of_type(*types) if str(e["data"].get("case_id")) in self.case_ids]


def _first(items: Iterable[str], n: int = 3) -> str:
    shown = list(items)[:n]
    return ", ".join(shown) + (" ..." if len(shown) == n else "")


def every_complaint_has_a_case(st: EndState) -> Check:
    opened = Counter(str(e["data"]["complaint_id"]) for e in st.of_type("CaseOpened"))
    missing = [c for c in st.complaint_ids if opened[c] == 0]
    twice = [c for c in st.complaint_ids if opened[c] > 1]
    return Check("every complaint has exactly one case", not missing and not twice,
                 f"{len(st.complaint_ids)} complaints, {len(missing)} without a case, {len(twice)} with two"
                 + (f" ({_first(missing + twice)})" if missing or twice else ""))


def every_allocation_paid_once_or_failed(st: EndState) -> Check:
    allocated = Counter(str(e["data"]["allocation_id"]) for e in st.of_round("AidAllocated"))
    paid = Counter(str(e["data"]["allocation_id"]) for e in st.of_round("AidDisbursed"))
    failed = {str(e["data"]["allocation_id"]): str(e["data"].get("reason") or "")
              for e in st.of_round("DisbursementFailed") if e["data"].get("final")}
    problems = [f"{a}: allocated {n} times" for a, n in allocated.items() if n > 1]
    for allocation in allocated:
        outcomes = paid[allocation] + (allocation in failed)
        if outcomes != 1:
            problems.append(f"{allocation}: {paid[allocation]} payments, {int(allocation in failed)} final failures")
        elif allocation in failed and not failed[allocation]:
            problems.append(f"{allocation}: failed without a reason")
    problems += [f"{a}: paid without an allocation" for a in paid if a not in allocated]
    return Check("every allocation is paid once or failed with a reason", not problems,
                 f"{len(allocated)} allocations: {sum(paid.values())} paid, {len(failed)} failed"
                 + (f"; {len(problems)} problems: {_first(problems)}" if problems else ""))


def the_bank_paid_each_key_once(st: EndState) -> Check:
    entries = [e for e in st.ledger if str(e.get("round_id")) == st.round_id]
    per_key = Counter(str(e["idempotency_key"]) for e in entries)
    per_kk = Counter(str(e["kk_number"]) for e in entries)
    disbursed = {str(e["data"]["allocation_id"]): int(e["data"]["amount"]) for e in st.of_round("AidDisbursed")}
    amounts = {str(e["idempotency_key"]): int(e["amount"]) for e in entries}
    problems = [f"key {k} executed {n} times" for k, n in per_key.items() if n > 1]
    problems += [f"a KK ending {kk[-4:]} paid {n} times" for kk, n in per_kk.items() if n > 1]
    problems += [f"{k}: recorded as paid, not in the bank's ledger" for k in disbursed.keys() - amounts.keys()]
    problems += [f"{k}: paid by the bank, no AidDisbursed" for k in amounts.keys() - disbursed.keys()]
    problems += [f"{k}: amounts differ" for k in disbursed.keys() & amounts.keys() if disbursed[k] != amounts[k]]
    return Check("the bank executed each payment once (per idempotency key and per family)", not problems,
                 f"{len(entries)} payments in the bank's ledger, {format_rupiah(sum(amounts.values()))}"
                 + (f"; problems: {_first(problems)}" if problems else ""))


def the_round_reconciles(st: EndState) -> Check:
    closed = st.of_round("AidRoundClosed")
    if len(closed) != 1:
        return Check("the round closes and reconciles", False, f"{len(closed)} AidRoundClosed events")
    data = closed[0]["data"]
    totals, rec = data["totals"], data["reconciliation"]
    allocations = st.of_round("AidAllocated")
    per_village = Counter(str(e["data"]["village_code"]) for e in allocations)
    problems = [] if rec["matched"] else [f"{len(rec['mismatches'])} mismatches: {_first(rec['mismatches'])}"]
    if totals["allocated_count"] != len(allocations):
        problems.append(f"totals say {totals['allocated_count']} allocated, the stream has {len(allocations)}")
    if totals["disbursed_count"] != len(st.of_round("AidDisbursed")):
        problems.append("disbursed count differs from the stream")
    if totals["allocated_amount"] > st.budget_cap:
        problems.append(f"budget overspent: {totals['allocated_amount']} > {st.budget_cap}")
    problems += [f"{v}: {n} allocations over a quota of {st.quotas.get(v, 0)}"
                 for v, n in per_village.items() if n > st.quotas.get(v, 0)]
    kks = Counter(str(e["data"]["kk_number"]) for e in allocations)
    problems += [f"a KK allocated {n} times" for n in kks.values() if n > 1]
    detail = (f"{totals['allocated_count']} allocated ({format_rupiah(totals['allocated_amount'])} of a "
              f"{format_rupiah(st.budget_cap)} budget),"
              f" the bank executed {rec['gateway_executed_count']}")
    return Check("the round closes and reconciles (budget, quotas, one allocation per family)", not problems,
                 detail + (f"; {'; '.join(problems)}" if problems else ""))


def the_audit_chain_verifies(st: EndState) -> Check:
    v = st.verify
    ok = bool(v.get("ok")) and int(v.get("last_seq") or 0) >= st.stream_last_seq
    return Check("the audit chain verifies and covers the whole stream", ok,
                 f"{v.get('records')} records up to seq {v.get('last_seq')} (stream {st.stream_last_seq}), "
                 f"{len(v.get('findings') or ())} findings" + (f": {v.get('error')}" if v.get("error") else ""))


def notifications_match_events(st: EndState) -> Check:
    notes = st.of_type(*NOTIFICATIONS)
    by_source: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
    for n in notes:
        by_source[str(n["data"]["source_event_id"])].append(n)
    sources = [e for e in st.of_cases(*RESIDENT_NOTIFIED, *OFFICER_NOTIFIED)
               + st.of_round("AidAllocated", "AidDisbursed")
               + [e for e in st.of_round("DisbursementFailed") if e["data"].get("final")]
               + [e for e in st.of_type("ComplaintFiled") if str(e["data"]["complaint_id"]) in st.complaint_ids]]
    missing = [f"{e['event_type']} {e['event_id']}" for e in sources if not by_source.get(str(e["event_id"]))]
    ids = Counter(str(n["data"]["notification_id"]) for n in notes)
    twice = [i for i, n in ids.items() if n > 1]
    sent_local = {str(n["data"]["notification_id"]) for n in notes
                  if n["event_type"] == "NotificationSent" and n["data"].get("channel") == "local_file"}
    lines = Counter(str(line.get("notification_id")) for line in st.channel_lines)
    unsent = [i for i in sent_local if lines[i] != 1]
    stray = [i for i in lines if i not in sent_local]
    ok = not (missing or twice or unsent or stray)
    mine = {str(e["event_id"]) for e in sources}
    outcome = Counter(n["event_type"] for n in notes if str(n["data"]["source_event_id"]) in mine)
    return Check("notifications match events (one outcome per message, each sent message in the channel once)", ok,
                 f"{len(sources)} events to notify; {outcome['NotificationSent']} sent, "
                 f"{outcome['NotificationFailed']} failed; {len(missing)} events without a notification, "
                 f"{len(twice)} notifications twice, {len(unsent)} sent but not exactly once in the channel, "
                 f"{len(stray)} in the channel without an event" + (f" ({_first(missing)})" if missing else ""))


def nothing_dead_lettered(st: EndState) -> Check:
    return Check("no message was dead-lettered", st.dead_letters == 0, f"{st.dead_letters} in the dead-letter stream")


def end_state_checks(st: EndState) -> list[Check]:
    return [every_complaint_has_a_case(st), every_allocation_paid_once_or_failed(st), the_bank_paid_each_key_once(st),
            the_round_reconciles(st), the_audit_chain_verifies(st), notifications_match_events(st),
            nothing_dead_lettered(st)]
