"""An independent evaluator of assessment rule sets, for decision replay (pure).

The audit service may not import the referral service, and an auditor should not trust the
code that made a decision to check it. This module reads the published formats on its own:

* rule sets ``puskesos.assessment-rules/1`` (JSON data: ordered PMKS categories, vulnerability
  points, program requirements; see the referral service's ``domain/rules.py``);
* recorded inputs ``puskesos.assessment-inputs/1`` (the ``inputs`` of ``CaseAssessed``), from
  which the facts the conditions read are derived.

Rule sets come from JSON files named ``{name}@{version}.json`` in configured directories (the
referral service's published rule sets, exported). A decision whose format or rule version is
unknown is reported *unverifiable*, never as matching.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

RULES_FORMAT = "puskesos.assessment-rules/1"
INPUTS_FORMAT = "puskesos.assessment-inputs/1"
RESULT_FACTS = frozenset({"result.pmks_category", "result.vulnerability_score"})


class RuleFormatError(ValueError):
    """A rule set or recorded inputs this evaluator does not understand."""


def load_rule_sets(directories: Iterable[Path]) -> dict[str, dict[str, Any]]:
    """Rule sets by tag (``assessment@1``) from ``*.json`` files; files of other formats are skipped."""
    out: dict[str, dict[str, Any]] = {}
    for directory in directories:
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.json")):
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(doc, dict) and doc.get("format") == RULES_FORMAT:
                out[f"{doc['name']}@{doc['version']}"] = doc
    return out


def holds(condition: Mapping[str, Any], facts: Mapping[str, Any]) -> bool:
    if "always" in condition:
        return bool(condition["always"])
    if "all" in condition:
        return all(holds(c, facts) for c in condition["all"])
    if "any" in condition:
        return any(holds(c, facts) for c in condition["any"])
    if "not" in condition:
        return not holds(condition["not"], facts)
    if "fact" not in condition:
        raise RuleFormatError(f"unknown condition keys {sorted(condition)}")
    return _compare(str(condition["op"]), facts.get(str(condition["fact"])), condition.get("value"))


def _compare(op: str, actual: Any, value: Any) -> bool:
    if op == "is_null":
        return actual is None
    if actual is None:
        return False
    ops: dict[str, Any] = {
        "not_null": lambda: True, "eq": lambda: actual == value, "ne": lambda: actual != value,
        "lt": lambda: actual < value, "le": lambda: actual <= value, "gt": lambda: actual > value,
        "ge": lambda: actual >= value, "in": lambda: actual in value, "not_in": lambda: actual not in value,
        "contains": lambda: value in actual,
    }
    if op not in ops:
        raise RuleFormatError(f"unknown operator {op!r}")
    return bool(ops[op]())


def facts(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The facts of recorded inputs (``puskesos.assessment-inputs/1``)."""
    if inputs.get("format") != INPUTS_FORMAT:
        raise RuleFormatError(f"inputs format {inputs.get('format')!r} is not {INPUTS_FORMAT}")
    case, obs = inputs["case"], inputs["observations"]
    out: dict[str, Any] = {"case.category": case["category"], "case.urgency": case["urgency"],
                           **{f"obs.{k}": v for k, v in obs.items()}}
    hh = inputs.get("household")
    out["household.known"] = hh is not None
    if hh is None:
        return out
    members = hh["members"]
    verified = obs.get("verified_monthly_income")
    income = verified if verified is not None else hh["monthly_income"]
    head = next((m for m in members if m["relationship"] == "kepala_keluarga"), members[0])
    ages = [int(m["age"]) for m in members]
    out.update({
        "household.members": len(members),
        "household.monthly_income": income,
        "household.per_capita_income": income // len(members),
        "household.dependants": hh["dependants"],
        "household.children_under_6": sum(1 for a in ages if a < 6),
        "household.school_age_children": sum(1 for a in ages if 6 <= a <= 18),
        "household.elderly": sum(1 for a in ages if a >= 60),
        "household.disabled_members": sum(1 for m in members if m["disability"] != "none"),
        "household.female_head": head["sex"] == "P",
        "household.floor": hh["floor"], "household.wall": hh["wall"], "household.roof": hh["roof"],
        "household.water": hh["water"], "household.electricity": hh["electricity"],
        "household.assets": list(hh["assets"]),
    })
    return out


def evaluate(rule_set: Mapping[str, Any], inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The result the rule set gives on the inputs, in the JSON form of ``AssessmentResult``."""
    if rule_set.get("format") != RULES_FORMAT:
        raise RuleFormatError(f"rule set format {rule_set.get('format')!r} is not {RULES_FORMAT}")
    try:
        base = {k: v for k, v in facts(inputs).items() if k not in RESULT_FACTS}
        category = next((c["category"] for c in rule_set.get("categories", []) if holds(c["when"], base)),
                        rule_set["default_category"])
        vulnerability = rule_set.get("vulnerability", {})
        raw = int(vulnerability.get("base", 0)) + sum(int(p["points"]) for p in vulnerability.get("points", [])
                                                      if holds(p["when"], base))
        score = float(min(100, max(0, raw)))
        with_result = {**base, "result.pmks_category": category, "result.vulnerability_score": score}
        eligibility = []
        for program in rule_set["programs"]:
            outcomes = [holds(r["when"], with_result) for r in program["require"]]
            reasons = [r["met"] if ok else r["unmet"] for r, ok in zip(program["require"], outcomes, strict=True)]
            eligibility.append({"program": program["program"], "eligible": all(outcomes), "reasons": reasons})
    except (KeyError, TypeError) as exc:
        raise RuleFormatError(f"cannot evaluate: missing or mistyped {exc}") from None
    return {"pmks_category": category, "vulnerability_score": score, "eligibility": eligibility}


def normalise_result(result: Mapping[str, Any]) -> dict[str, Any]:
    """A recorded or derived result in one comparable form (tuples as lists, scores as floats)."""
    return {
        "pmks_category": result.get("pmks_category"),
        "vulnerability_score": float(result.get("vulnerability_score", -1)),
        "eligibility": [{"program": e.get("program"), "eligible": bool(e.get("eligible")),
                         "reasons": list(e.get("reasons") or [])} for e in result.get("eligibility") or []],
    }


def differences(recorded: Mapping[str, Any], derived: Mapping[str, Any]) -> list[str]:
    a, b = normalise_result(recorded), normalise_result(derived)
    out = []
    if a["pmks_category"] != b["pmks_category"]:
        out.append(f"pmks_category recorded {a['pmks_category']}, re-derived {b['pmks_category']}")
    if a["vulnerability_score"] != b["vulnerability_score"]:
        out.append(f"vulnerability_score recorded {a['vulnerability_score']}, re-derived {b['vulnerability_score']}")
    rec = {e["program"]: e for e in a["eligibility"]}
    der = {e["program"]: e for e in b["eligibility"]}
    for program in sorted(set(rec) | set(der)):
        x, y = rec.get(program), der.get(program)
        if x is None or y is None:
            out.append(f"{program}: {'missing from the record' if x is None else 'not in the rule set'}")
        elif x["eligible"] != y["eligible"]:
            out.append(f"{program}: recorded eligible={x['eligible']}, re-derived eligible={y['eligible']}")
        elif x["reasons"] != y["reasons"]:
            out.append(f"{program}: reasons differ")
    return out
