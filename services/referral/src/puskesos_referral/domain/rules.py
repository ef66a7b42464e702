"""Assessment rule sets: versioned data, and the evaluator that applies them to facts.

Format ``puskesos.assessment-rules/1`` (a JSON document; ``data/rules/assessment@1.json`` is the
first one)::

    {
      "format": "puskesos.assessment-rules/1",
      "name": "assessment",              # rule-set family; the version tag is "{name}@{version}"
      "version": 1,                      # integer; a newer publication has a higher number
      "title": "...", "notes": "...",    # for people; not evaluated
      "categories": [                    # PMKS category: the FIRST entry whose condition holds
        {"category": "rentan_kesehatan", "when": <condition>}, ...
      ],
      "default_category": "bukan_pmks",  # when no entry holds
      "vulnerability": {                 # score = clamp(base + sum of points whose condition holds, 0, 100)
        "base": 0,
        "points": [{"when": <condition>, "points": 20, "reason": "..."}, ...]   # points may be negative
      },
      "programs": [                      # one entry per program (Program enum: PKH, BPNT, PBI_JK, BLT,
        {"program": "PKH",               #   HOSPITAL_REFERRAL, REHABILITATION), each at most once
         "require": [                    # eligible = every requirement holds; ALL are evaluated and
           {"when": <condition>,         #   each contributes its "met" or "unmet" text to the
            "met": "...", "unmet": "..."}  #   program's reasons, in order
         ]}
      ]
    }

Conditions::

    {"fact": "<name>", "op": "<op>", "value": <json>}     a comparison
    {"all": [<condition>, ...]}                          every one holds (empty: true)
    {"any": [<condition>, ...]}                          at least one holds (empty: false)
    {"not": <condition>}
    {"always": true}

Operators: ``eq ne lt le gt ge`` (numbers, and eq/ne on any value), ``in not_in`` (value is a
list), ``contains`` (list fact holds value), ``is_null not_null`` (no value). A fact without a
value (null: e.g. household facts of a person with no registered household) makes every
operator false except ``is_null``; wrap in ``not`` for the complement.

Facts are named values derived from the recorded assessment inputs (see ``assessment``'s module
docstring for the inputs and the derivation). ``FACTS`` lists every name and its type; a rule
set naming an unknown fact, or comparing a fact with a value of the wrong type, is refused when
it is published, never at assessment time. Facts ``result.pmks_category`` and
``result.vulnerability_score`` are available to program requirements only (they are computed
first). Evaluation is deterministic: integer points, ordered lists, no clock, no randomness.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self

from puskesos_shared.canonical import digest
from puskesos_shared.contracts.intake import (
    Asset,
    ComplaintCategory,
    Electricity,
    FloorType,
    RoofType,
    Urgency,
    WallType,
    WaterSource,
)
from puskesos_shared.contracts.primitives import PmksCategory, Program
from puskesos_shared.contracts.referral import AssessmentResult, ProgramEligibility
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

FORMAT = "puskesos.assessment-rules/1"

def _values(enum: Any) -> tuple[str, ...]:
    return tuple(member.value for member in enum)


OBSERVATION_FACTS: dict[str, Any] = {
    "chronic_illness": "bool", "needs_hospital_care": "bool", "has_health_insurance": "bool",
    "pregnant_member": "bool", "child_neglected": "bool", "elderly_alone": "bool", "homeless": "bool",
    "begging": "bool", "disaster_affected": "bool", "needs_rehabilitation": "bool",
    "disability_support_needed": "bool", "income_verified": "bool", "verified_monthly_income": "int",
    "enrolled_programs": ("list", _values(Program)),
}
FACTS: dict[str, Any] = {
    "case.category": _values(ComplaintCategory),
    "case.urgency": _values(Urgency),
    **{f"obs.{name}": kind for name, kind in OBSERVATION_FACTS.items()},
    "household.known": "bool",
    "household.members": "int",
    "household.monthly_income": "int",
    "household.per_capita_income": "int",
    "household.dependants": "int",
    "household.children_under_6": "int",
    "household.school_age_children": "int",
    "household.elderly": "int",
    "household.disabled_members": "int",
    "household.female_head": "bool",
    "household.floor": _values(FloorType),
    "household.wall": _values(WallType),
    "household.roof": _values(RoofType),
    "household.water": _values(WaterSource),
    "household.electricity": _values(Electricity),
    "household.assets": ("list", _values(Asset)),
    "result.pmks_category": _values(PmksCategory),
    "result.vulnerability_score": "number",
}
RESULT_FACTS = frozenset({"result.pmks_category", "result.vulnerability_score"})

Op = Literal["eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "contains", "is_null", "not_null"]
_ORDERING = {"lt", "le", "gt", "ge"}
_STRICT = ConfigDict(frozen=True, extra="forbid")


class Comparison(BaseModel):
    model_config = _STRICT
    fact: str
    op: Op
    value: Any = None

    @model_validator(mode="after")
    def _typed(self) -> Self:
        kind = FACTS.get(self.fact)
        if kind is None:
            raise ValueError(f"unknown fact {self.fact!r}")
        if self.op in ("is_null", "not_null"):
            if self.value is not None:
                raise ValueError(f"{self.op} takes no value")
            return self
        is_list = isinstance(kind, tuple) and kind[:1] == ("list",)
        if self.op == "contains":
            if not is_list:
                raise ValueError(f"contains needs a list fact; {self.fact} is not a list")
            _check_scalar(self.fact, kind[1], self.value)
        elif is_list:
            raise ValueError(f"{self.fact} is a list: use contains")
        elif self.op in ("in", "not_in"):
            if not isinstance(self.value, list) or not self.value:
                raise ValueError(f"{self.op} needs a non-empty list value")
            for item in self.value:
                _check_scalar(self.fact, kind, item)
        else:
            if self.op in _ORDERING and kind not in ("int", "number"):
                raise ValueError(f"{self.op} needs a numeric fact; {self.fact} is not numeric")
            _check_scalar(self.fact, kind, self.value)
        return self


def _storable(value: int | float) -> bool:
    """Whether MongoDB can store the number (a rule set is stored; a larger int made the write fail)."""
    return not isinstance(value, int) or -(2**63) <= value < 2**63


def _check_scalar(fact: str, kind: Any, value: Any) -> None:
    if kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool) and _storable(value)
    elif kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool) and _storable(value)
    else:
        ok = isinstance(value, str) and value in kind
    if not ok:
        raise ValueError(f"value {value!r} does not fit fact {fact} ({kind if isinstance(kind, str) else 'enum'})")


class AllOf(BaseModel):
    model_config = _STRICT
    all: tuple[Condition, ...]


class AnyOf(BaseModel):
    model_config = _STRICT
    any: tuple[Condition, ...]


class Not(BaseModel):
    model_config = _STRICT
    not_: Condition = Field(alias="not")


class Always(BaseModel):
    model_config = _STRICT
    always: Literal[True]


def _condition_kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return type(value).__name__.lower()
    if isinstance(value, dict):
        for key, kind in (("fact", "comparison"), ("all", "allof"), ("any", "anyof"), ("not", "not"),
                          ("always", "always")):
            if key in value:
                return kind
    return None  # pydantic reports: none of fact/all/any/not/always


Condition = Annotated[
    Annotated[Comparison, Tag("comparison")] | Annotated[AllOf, Tag("allof")] | Annotated[AnyOf, Tag("anyof")]
    | Annotated[Not, Tag("not")] | Annotated[Always, Tag("always")],
    Discriminator(_condition_kind, custom_error_type="condition",
                  custom_error_message="a condition has one of the keys fact, all, any, not, always"),
]
for _model in (AllOf, AnyOf, Not):
    _model.model_rebuild()


class CategoryRule(BaseModel):
    model_config = _STRICT
    category: PmksCategory
    when: Condition


class ScoreRule(BaseModel):
    model_config = _STRICT
    when: Condition
    points: int = Field(ge=-100, le=100)
    reason: str = Field(min_length=1, max_length=200)


class Vulnerability(BaseModel):
    model_config = _STRICT
    base: int = Field(default=0, ge=0, le=100)
    points: tuple[ScoreRule, ...] = ()


class Requirement(BaseModel):
    model_config = _STRICT
    when: Condition
    met: str = Field(min_length=1, max_length=300)
    unmet: str = Field(min_length=1, max_length=300)


class ProgramRule(BaseModel):
    model_config = _STRICT
    program: Program
    require: tuple[Requirement, ...] = Field(min_length=1)


class RuleSet(BaseModel):
    """One published version of the assessment rules (format ``puskesos.assessment-rules/1``)."""

    model_config = _STRICT
    format: Literal["puskesos.assessment-rules/1"]
    name: str = Field(pattern=r"^[a-z0-9_.-]{1,40}$")
    version: int = Field(ge=1, le=1_000_000)
    title: str = Field(min_length=1, max_length=200)
    notes: str = Field(default="", max_length=4000)
    categories: tuple[CategoryRule, ...] = ()
    default_category: PmksCategory
    vulnerability: Vulnerability
    programs: tuple[ProgramRule, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        seen = [p.program for p in self.programs]
        if len(set(seen)) != len(seen):
            raise ValueError("a program appears twice in programs")
        conditions = [r.when for r in self.categories] + [r.when for r in self.vulnerability.points]
        for condition in conditions:
            if _facts_of(condition) & RESULT_FACTS:
                raise ValueError("result.* facts may only be used in program requirements")
        return self

    @property
    def tag(self) -> str:
        """The version tag recorded with every decision: ``assessment@3``."""
        return f"{self.name}@{self.version}"

    def document(self) -> dict[str, Any]:
        """The JSON document (what is published, stored and shared)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def digest(self) -> str:
        return digest(self.document())


def _facts_of(condition: BaseModel) -> set[str]:
    if isinstance(condition, Comparison):
        return {condition.fact}
    if isinstance(condition, AllOf):
        return set().union(*(_facts_of(c) for c in condition.all))
    if isinstance(condition, AnyOf):
        return set().union(*(_facts_of(c) for c in condition.any))
    if isinstance(condition, Not):
        return _facts_of(condition.not_)
    return set()


def holds(condition: BaseModel, facts: Mapping[str, Any]) -> bool:
    """Evaluates a condition against facts (a missing fact counts as null)."""
    if isinstance(condition, Always):
        return True
    if isinstance(condition, AllOf):
        return all(holds(c, facts) for c in condition.all)
    if isinstance(condition, AnyOf):
        return any(holds(c, facts) for c in condition.any)
    if isinstance(condition, Not):
        return not holds(condition.not_, facts)
    assert isinstance(condition, Comparison)
    return _compare(condition, facts.get(condition.fact))


def _compare(c: Comparison, actual: Any) -> bool:
    if c.op == "is_null":
        return actual is None
    if actual is None:
        return False
    result: bool
    match c.op:
        case "not_null":
            result = True
        case "eq":
            result = actual == c.value
        case "ne":
            result = actual != c.value
        case "lt":
            result = actual < c.value
        case "le":
            result = actual <= c.value
        case "gt":
            result = actual > c.value
        case "ge":
            result = actual >= c.value
        case "in":
            result = actual in c.value
        case "not_in":
            result = actual not in c.value
        case "contains":
            result = c.value in actual
        case _:  # pragma: no cover - Op is a closed Literal
            raise AssertionError(c.op)
    return result


def evaluate(rule_set: RuleSet, facts: Mapping[str, Any]) -> AssessmentResult:
    """Applies a rule set to facts: PMKS category, vulnerability score, eligibility with reasons."""
    base_facts = {k: v for k, v in facts.items() if k not in RESULT_FACTS}
    category = next((r.category for r in rule_set.categories if holds(r.when, base_facts)),
                    rule_set.default_category)
    raw = rule_set.vulnerability.base + sum(r.points for r in rule_set.vulnerability.points
                                            if holds(r.when, base_facts))
    score = float(min(100, max(0, raw)))
    with_result = {**base_facts, "result.pmks_category": category.value, "result.vulnerability_score": score}
    eligibility = []
    for program in rule_set.programs:
        outcomes = [holds(req.when, with_result) for req in program.require]
        reasons = tuple(req.met if ok else req.unmet for req, ok in zip(program.require, outcomes, strict=True))
        eligibility.append(ProgramEligibility(program=program.program, eligible=all(outcomes), reasons=reasons))
    return AssessmentResult(pmks_category=category, vulnerability_score=score, eligibility=tuple(eligibility))


def score_reasons(rule_set: RuleSet, facts: Mapping[str, Any]) -> tuple[str, ...]:
    """The reasons of the score points that applied (for officers; not part of the contract)."""
    return tuple(f"{r.reason} ({r.points:+d})" for r in rule_set.vulnerability.points if holds(r.when, facts))
