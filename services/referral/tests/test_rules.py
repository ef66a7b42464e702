"""The rule-set format: validation at publish time with clear errors, and evaluation semantics (pure)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from puskesos_referral.catalog import packaged_rule_sets
from puskesos_referral.domain import rules
from puskesos_referral.domain.rules import FACTS, RuleSet, evaluate, holds
from puskesos_shared.contracts.primitives import PmksCategory, Program
from pydantic import TypeAdapter, ValidationError


def v1() -> RuleSet:
    return packaged_rule_sets()[0]


def v1_doc() -> dict[str, Any]:
    return copy.deepcopy(v1().document())


def test_packaged_rule_set_is_assessment_1_and_round_trips_through_json() -> None:
    rule_set = v1()
    assert rule_set.tag == "assessment@1"
    again = RuleSet.model_validate(json.loads(json.dumps(rule_set.document())))
    assert again == rule_set
    assert again.digest() == rule_set.digest()
    assert {p.program for p in rule_set.programs} == set(Program)


def _error(doc: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        RuleSet.model_validate(doc)
    return str(caught.value)


def test_unknown_facts_wrong_value_types_and_bad_operators_are_refused() -> None:
    doc = v1_doc()
    doc["categories"][0]["when"] = {"fact": "household.income_of_neighbours", "op": "lt", "value": 1}
    assert "unknown fact 'household.income_of_neighbours'" in _error(doc)

    doc = v1_doc()
    doc["categories"][0]["when"] = {"fact": "household.per_capita_income", "op": "lt", "value": "low"}
    assert "does not fit fact household.per_capita_income" in _error(doc)

    doc = v1_doc()
    doc["categories"][0]["when"] = {"fact": "household.floor", "op": "lt", "value": "tanah"}
    assert "needs a numeric fact" in _error(doc)

    doc = v1_doc()
    doc["categories"][0]["when"] = {"fact": "household.floor", "op": "eq", "value": "marmer"}
    assert "does not fit fact household.floor" in _error(doc)

    doc = v1_doc()
    doc["categories"][0]["when"] = {"fact": "household.assets", "op": "eq", "value": "car"}
    assert "use contains" in _error(doc)

    doc = v1_doc()
    doc["categories"][0]["when"] = {"fact": "obs.homeless", "op": "like", "value": True}
    assert "op" in _error(doc)

    doc = v1_doc()
    doc["categories"][0]["when"] = {"some": []}
    assert "a condition has one of the keys fact, all, any, not, always" in _error(doc)


def test_structural_rules() -> None:
    doc = v1_doc()
    doc["programs"].append(doc["programs"][0])
    assert "a program appears twice" in _error(doc)

    doc = v1_doc()
    doc["vulnerability"]["points"][0]["when"] = {"fact": "result.vulnerability_score", "op": "ge", "value": 1}
    assert "result.* facts may only be used in program requirements" in _error(doc)

    doc = v1_doc()
    doc["format"] = "puskesos.assessment-rules/2"
    assert "format" in _error(doc)

    doc = v1_doc()
    doc["surprise"] = True
    assert "Extra inputs are not permitted" in _error(doc)


Condition: TypeAdapter[Any] = TypeAdapter(rules.Condition)


def cond(raw: dict[str, Any]) -> Any:
    return Condition.validate_python(raw)


def test_null_facts_make_comparisons_false_except_is_null() -> None:
    facts = {"household.per_capita_income": None}
    assert not holds(cond({"fact": "household.per_capita_income", "op": "lt", "value": 10}), facts)
    assert not holds(cond({"fact": "household.per_capita_income", "op": "ne", "value": 10}), facts)
    assert holds(cond({"fact": "household.per_capita_income", "op": "is_null"}), facts)
    assert holds(cond({"not": {"fact": "household.per_capita_income", "op": "ge", "value": 10}}), facts)
    assert not holds(cond({"fact": "household.per_capita_income", "op": "not_null"}), {})  # missing = null


def test_combinators() -> None:
    facts = {"obs.homeless": True, "household.assets": ["car", "land"], "case.urgency": "high"}
    assert holds(cond({"all": []}), facts)
    assert not holds(cond({"any": []}), facts)
    assert holds(cond({"always": True}), facts)
    assert holds(cond({"all": [{"fact": "obs.homeless", "op": "eq", "value": True},
                               {"fact": "household.assets", "op": "contains", "value": "car"}]}), facts)
    assert holds(cond({"fact": "case.urgency", "op": "in", "value": ["high", "emergency"]}), facts)
    assert not holds(cond({"fact": "case.urgency", "op": "not_in", "value": ["high"]}), facts)


def test_first_matching_category_wins_and_score_is_clamped() -> None:
    doc = v1_doc()
    doc["categories"] = [
        {"category": "gelandangan", "when": {"fact": "obs.homeless", "op": "eq", "value": True}},
        {"category": "pengemis", "when": {"fact": "obs.begging", "op": "eq", "value": True}},
    ]
    doc["vulnerability"] = {"base": 90, "points": [
        {"when": {"fact": "obs.homeless", "op": "eq", "value": True}, "points": 50, "reason": "homeless"}]}
    rule_set = RuleSet.model_validate(doc)
    both = {"obs.homeless": True, "obs.begging": True}
    result = evaluate(rule_set, both)
    assert result.pmks_category is PmksCategory.GELANDANGAN
    assert result.vulnerability_score == 100.0
    neither = evaluate(rule_set, {})
    assert neither.pmks_category is PmksCategory.BUKAN_PMKS
    assert neither.vulnerability_score == 90.0


def test_every_requirement_gives_a_reason_in_order() -> None:
    result = evaluate(v1(), {"household.known": False, "obs.enrolled_programs": []})
    pkh = next(e for e in result.eligibility if e.program is Program.PKH)
    assert not pkh.eligible
    assert pkh.reasons[0] == "no registered household (KK)"
    assert len(pkh.reasons) == 4


def test_fact_vocabulary_is_documented_in_the_module() -> None:
    from puskesos_referral.domain import assessment

    documented = (assessment.__doc__ or "") + (rules.__doc__ or "")
    for name in FACTS:
        stem = name.split(".", 1)[1] if not name.startswith(("obs.", "result.")) else name.split(".", 1)[0]
        assert stem in documented, name
