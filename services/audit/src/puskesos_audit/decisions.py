"""Decision replay: re-derive every recorded decision from what the log recorded (pure fold).

Events are fed in stream order. What is re-derived:

* ``CaseAssessed``: the recorded ``inputs`` must hash to ``inputs_digest`` (canonical JSON,
  SHA-256); the rule set named by ``rule_set_version`` is applied to the inputs by this service's
  own evaluator (``rules``) and the result must equal the recorded one (category, score, every
  program's eligibility and reasons). Unknown rule set or input format: *unverifiable*.
* ``AidAllocated``: its round was opened and not yet closed; the amount is the round's
  ``amount_per_family``; the basis names the round's rule version; the allocation id is
  uuid5(round, KK) as the contract says; no earlier allocation of the family in the round; an
  assessment-based one rests on a logged ``CaseAssessed`` for the same KK that found the family
  eligible for the round's program; running totals never exceed the budget or a village quota.
* ``AidAllocationRejected``: the reason holds: ``duplicate_kk`` (the family is allocated in the
  round), ``budget_exhausted`` / ``quota_exhausted`` (the round's budget / the village's quota
  does not fit one more family, at the rejection or by the round's end: replicas publish in
  parallel, so stream order is not reservation order), ``not_eligible`` (the named assessment
  found the family not eligible; an imported row's eligibility is the social office's list:
  unverifiable; in a round of rule blt-eligibility@1, a village without a quota in a round with
  quotas), ``no_village_quota`` (the village has no quota and the round excludes such villages),
  ``round_closed`` (the round is closed by the end of the log). The reason is an
  open enum: a reason this release does not know (added by a newer producer) is *unverifiable*.
* ``AidDisbursed``: pays a logged allocation, its amount and family; never a second payment
  of one allocation.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from puskesos_shared.canonical import digest
from puskesos_shared.ids import stable_id
from pydantic import BaseModel

from .rules import RuleFormatError, differences, evaluate

#: Rejection reasons this replay can re-derive; any other (a newer release's) is unverifiable.
VERIFIABLE_REJECTIONS = frozenset({"duplicate_kk", "budget_exhausted", "quota_exhausted", "not_eligible",
                                   "round_closed", "no_village_quota"})
DECISION_TYPES = frozenset({"CaseAssessed", "AidRoundOpened", "AidRoundClosed", "AidAllocated",
                            "AidAllocationRejected", "AidDisbursed"})


class Verdict(BaseModel):
    seq: int
    event_id: str | None
    event_type: str
    outcome: str  # match | mismatch | unverifiable
    reasons: list[str] = []


class DecisionReport(BaseModel):
    ok: bool
    checked: dict[str, int]
    matches: int
    mismatches: list[Verdict]
    unverifiable: list[Verdict]
    rule_sets_used: list[str]


@dataclass
class _Round:
    data: dict[str, Any]
    closed_at_seq: int | None = None
    allocated: dict[str, int] = field(default_factory=dict)  # kk -> seq
    amount: int = 0
    per_village: dict[str, int] = field(default_factory=lambda: defaultdict(int))


@dataclass
class _Deferred:
    verdict: Verdict
    round_id: str
    kind: str
    village: str
    kk: str


class DecisionReplay:
    def __init__(self, rule_sets: Mapping[str, Mapping[str, Any]]) -> None:
        self.rule_sets = rule_sets
        self.rounds: dict[str, _Round] = {}
        self.assessments: dict[str, dict[str, Any]] = {}  # event id -> data
        self.allocations: dict[str, dict[str, Any]] = {}  # allocation id -> data
        self.paid: dict[str, str] = {}  # allocation id -> disbursement id
        self.verdicts: list[Verdict] = []
        self.deferred: list[_Deferred] = []
        self.used: set[str] = set()
        self.missing_rules: dict[str, list[tuple[Verdict, dict[str, Any]]]] = {}

    def feed(self, seq: int, event: Mapping[str, Any]) -> None:
        kind = str(event.get("event_type"))
        data = event.get("data") or {}
        handler = {
            "CaseAssessed": self._on_assessed, "AidRoundOpened": self._on_round_opened,
            "AidRoundClosed": self._on_round_closed, "AidAllocated": self._on_allocated,
            "AidAllocationRejected": self._on_rejected, "AidDisbursed": self._on_disbursed,
        }.get(kind)
        if handler is not None:
            handler(seq, str(event.get("event_id")), data)

    def _verdict(self, seq: int, event_id: str, kind: str, problems: list[str], unverifiable: list[str]) -> Verdict:
        outcome = "mismatch" if problems else "unverifiable" if unverifiable else "match"
        v = Verdict(seq=seq, event_id=event_id, event_type=kind, outcome=outcome, reasons=problems or unverifiable)
        self.verdicts.append(v)
        return v

    # -- assessments -------------------------------------------------------------------------
    def _on_assessed(self, seq: int, event_id: str, data: Mapping[str, Any]) -> None:
        self.assessments[event_id] = dict(data)
        problems, unknown = [], []
        if digest(data.get("inputs")) != data.get("inputs_digest"):
            problems.append("the recorded inputs do not hash to the recorded inputs_digest")
        tag = str(data.get("rule_set_version"))
        rule_set = self.rule_sets.get(tag)
        if rule_set is None:
            unknown.append(f"rule set {tag} is not available to the audit service")
        else:
            self._rederive(tag, rule_set, data, problems, unknown)
        verdict = self._verdict(seq, event_id, "CaseAssessed", problems, unknown)
        if rule_set is None:
            self.missing_rules.setdefault(tag, []).append((verdict, dict(data)))

    def _rederive(self, tag: str, rule_set: Mapping[str, Any], data: Mapping[str, Any], problems: list[str],
                  unknown: list[str]) -> None:
        try:
            derived = evaluate(rule_set, data.get("inputs") or {})
        except RuleFormatError as exc:
            unknown.append(str(exc))
            return
        self.used.add(tag)
        problems += differences(data.get("result") or {}, derived)

    def resolve_rule_set(self, tag: str, rule_set: Mapping[str, Any]) -> None:
        """Re-checks the assessments that waited for ``tag`` (a rule set fetched after the scan)."""
        for verdict, data in self.missing_rules.pop(tag, []):
            problems: list[str] = []
            if digest(data.get("inputs")) != data.get("inputs_digest"):
                problems.append("the recorded inputs do not hash to the recorded inputs_digest")
            unknown: list[str] = []
            self._rederive(tag, rule_set, data, problems, unknown)
            verdict.outcome = "mismatch" if problems else "unverifiable" if unknown else "match"
            verdict.reasons = problems or unknown

    # -- rounds --------------------------------------------------------------------------------
    def _on_round_opened(self, seq: int, event_id: str, data: Mapping[str, Any]) -> None:
        self.rounds.setdefault(str(data.get("round_id")), _Round(dict(data)))

    def _on_round_closed(self, seq: int, event_id: str, data: Mapping[str, Any]) -> None:
        rnd = self.rounds.get(str(data.get("round_id")))
        if rnd is not None and rnd.closed_at_seq is None:
            rnd.closed_at_seq = seq

    def _quota(self, rnd: _Round, village: str) -> int | None:
        for q in rnd.data.get("village_quotas") or []:
            if q.get("village_code") == village:
                return int(q.get("max_families", 0))
        return None

    @staticmethod
    def _without_quota(cfg: Mapping[str, Any]) -> str:
        """``unlimited`` or ``excluded``: the round's choice, or before it (rule @1) excluded when quotas exist."""
        return str(cfg.get("villages_without_quota") or ("excluded" if cfg.get("village_quotas") else "unlimited"))

    def _on_allocated(self, seq: int, event_id: str, data: Mapping[str, Any]) -> None:
        problems: list[str] = []
        round_id, kk = str(data.get("round_id")), str(data.get("kk_number"))
        rnd = self.rounds.get(round_id)
        basis = data.get("basis") or {}
        if rnd is None:
            self._verdict(seq, event_id, "AidAllocated", [f"round {round_id} was never opened in the log"], [])
            return
        cfg = rnd.data
        if rnd.closed_at_seq is not None:
            problems.append(f"allocated after the round closed (at {rnd.closed_at_seq})")
        if data.get("amount") != cfg.get("amount_per_family"):
            problems.append(f"amount {data.get('amount')} is not the round's {cfg.get('amount_per_family')}")
        if basis.get("rule_set_version") != cfg.get("eligibility_rule_version"):
            problems.append(f"rule version {basis.get('rule_set_version')} is not the round's "
                            f"{cfg.get('eligibility_rule_version')}")
        if str(stable_id("allocation", round_id, kk)) != str(data.get("allocation_id")):
            problems.append("allocation_id is not uuid5(round, KK)")
        if kk in rnd.allocated:
            problems.append(f"the family was already allocated in this round (record {rnd.allocated[kk]}): "
                            "a second allocation")
        if basis.get("source") == "assessment":
            problems += self._assessment_supports(basis, kk, cfg)
        village = str(data.get("village_code"))
        rnd.allocated.setdefault(kk, seq)
        rnd.amount += int(data.get("amount") or 0)
        rnd.per_village[village] += 1
        if rnd.amount > int(cfg.get("budget_cap", 0)):
            problems.append(f"the round's allocations reach {rnd.amount}, over the budget {cfg.get('budget_cap')}")
        quota = self._quota(rnd, village)
        if quota is not None and rnd.per_village[village] > quota:
            problems.append(f"village {village} has {rnd.per_village[village]} allocations, over its quota {quota}")
        if quota is None and self._without_quota(cfg) == "excluded":
            problems.append(f"village {village} has no quota in a round that excludes villages without one")
        self.allocations[str(data.get("allocation_id"))] = dict(data)
        self._verdict(seq, event_id, "AidAllocated", problems, [])

    def _assessment_supports(self, basis: Mapping[str, Any], kk: str, cfg: Mapping[str, Any]) -> list[str]:
        ref = str(basis.get("assessment_event_id"))
        assessed = self.assessments.get(ref)
        if assessed is None:
            return [f"the assessment {ref} it rests on is not in the log before it"]
        out = []
        if assessed.get("kk_number") != kk:
            out.append("the assessment it rests on is about another family")
        program = cfg.get("program")
        eligible = {e.get("program"): e.get("eligible") for e in (assessed.get("result") or {}).get("eligibility", [])}
        if eligible.get(program) is not True:
            out.append(f"the assessment it rests on did not find the family eligible for {program}")
        return out

    def _on_rejected(self, seq: int, event_id: str, data: Mapping[str, Any]) -> None:
        round_id, kk, reason = str(data.get("round_id")), str(data.get("kk_number")), str(data.get("reason"))
        rnd = self.rounds.get(round_id)
        if rnd is None:
            self._verdict(seq, event_id, "AidAllocationRejected", [f"round {round_id} was never opened in the log"],
                          [])
            return
        if reason not in VERIFIABLE_REJECTIONS:
            self._verdict(seq, event_id, "AidAllocationRejected", [],
                          [f"reason {reason!r} is not known to this release of the audit service"])
            return
        basis = data.get("basis") or {}
        village = str(data.get("village_code"))
        quota = self._quota(rnd, village)
        excluded = quota is None and self._without_quota(rnd.data) == "excluded"
        if reason == "no_village_quota" or (reason == "not_eligible" and excluded
                                            and not rnd.data.get("villages_without_quota")):
            # the round's own choice (rule @2), or rule @1's "no quota: not eligible"
            self._verdict(seq, event_id, "AidAllocationRejected", [] if excluded else [
                f"village {village} has a quota, or the round leaves villages without one unlimited"], [])
            return
        if reason == "not_eligible":
            if basis.get("source") != "assessment":
                self._verdict(seq, event_id, "AidAllocationRejected", [],
                              ["an imported row's eligibility is decided by the social office's list"])
                return
            ref = self.assessments.get(str(basis.get("assessment_event_id")))
            ok = ref is not None and {e.get("program"): e.get("eligible") for e in
                                      (ref.get("result") or {}).get("eligibility", [])}.get(
                rnd.data.get("program")) is not True
            self._verdict(seq, event_id, "AidAllocationRejected",
                          [] if ok else ["the named assessment found the family eligible (or is missing)"], [])
            return
        verdict = self._verdict(seq, event_id, "AidAllocationRejected", [], [])
        if reason == "budget_exhausted" and rnd.amount + int(rnd.data.get("amount_per_family", 0)) > int(
                rnd.data.get("budget_cap", 0)):
            return
        if reason == "quota_exhausted" and quota is not None and rnd.per_village[village] >= quota:
            return
        if reason == "duplicate_kk" and kk in rnd.allocated:
            return
        self.deferred.append(_Deferred(verdict, round_id, reason, village, kk))  # decided at the end

    def _on_disbursed(self, seq: int, event_id: str, data: Mapping[str, Any]) -> None:
        problems = []
        allocation_id = str(data.get("allocation_id"))
        allocation = self.allocations.get(allocation_id)
        if allocation is None:
            problems.append("pays an allocation that is not in the log before it")
        else:
            if allocation.get("amount") != data.get("amount"):
                problems.append(f"pays {data.get('amount')}, the allocation is {allocation.get('amount')}")
            if allocation.get("kk_number") != data.get("kk_number"):
                problems.append("pays another family than the allocation's")
        paid = self.paid.get(allocation_id)
        if paid is not None and paid != str(data.get("disbursement_id")):
            problems.append(f"a second payment of the allocation (first: disbursement {paid})")
        self.paid.setdefault(allocation_id, str(data.get("disbursement_id")))
        self._verdict(seq, event_id, "AidDisbursed", problems, [])

    # -- end ---------------------------------------------------------------------------------------
    def finish(self) -> DecisionReport:
        for d in self.deferred:
            rnd = self.rounds[d.round_id]
            cfg = rnd.data
            holds = {
                "budget_exhausted": rnd.amount + int(cfg.get("amount_per_family", 0)) > int(cfg.get("budget_cap", 0)),
                "quota_exhausted": (q := self._quota(rnd, d.village)) is not None and rnd.per_village[d.village] >= q,
                "duplicate_kk": d.kk in rnd.allocated,
                "round_closed": rnd.closed_at_seq is not None,
            }.get(d.kind, False)
            if not holds:
                d.verdict.outcome = "mismatch"
                d.verdict.reasons = [f"rejected as {d.kind}, which the round's allocations never justify"]
        checked: dict[str, int] = defaultdict(int)
        for v in self.verdicts:
            checked[v.event_type] += 1
        mismatches = [v for v in self.verdicts if v.outcome == "mismatch"]
        return DecisionReport(
            ok=not mismatches, checked=dict(checked), matches=sum(v.outcome == "match" for v in self.verdicts),
            mismatches=mismatches, unverifiable=[v for v in self.verdicts if v.outcome == "unverifiable"],
            rule_sets_used=sorted(self.used),
        )


def replay_decisions(events: Iterable[tuple[int, Mapping[str, Any]]],
                     rule_sets: Mapping[str, Mapping[str, Any]]) -> DecisionReplay:
    """Feeds the events; call ``finish()`` (after resolving any missing rule sets) for the report."""
    replay = DecisionReplay(rule_sets)
    for seq, event in events:
        replay.feed(seq, event)
    return replay
