"""Assessment: recorded inputs, the facts derived from them, and the pure ``assess``/``reassess``.

Inputs (format ``puskesos.assessment-inputs/1``; recorded verbatim in ``CaseAssessed.data.inputs``
and digested with ``puskesos_shared.canonical.digest``)::

    {"format": "puskesos.assessment-inputs/1",
     "assessed_on": "2026-11-26",                       # local date; ages are counted on it
     "case": {"category": "health_referral", "urgency": "high"},
     "observations": {"chronic_illness": true, ..., "verified_monthly_income": null,
                      "enrolled_programs": ["PKH"]},    # what the assessor saw (Observations)
     "household": null | {                              # the projection of the family card (KK)
        "kk_revision": 3, "monthly_income": 1200000, "dependants": 2,
        "floor": "semen", "wall": "tembok", "roof": "genteng", "water": "pdam", "electricity": "450VA",
        "assets": ["smartphone"],                       # sorted
        "members": [{"age": 46, "sex": "L", "relationship": "kepala_keluarga", "disability": "none"}]}}

No names, NIKs or birth dates are recorded: only what the rules read.

Facts (the names rule conditions use) are derived from the inputs alone:

* ``case.category``, ``case.urgency``; ``obs.<field>`` for every observation field;
* ``household.known``: a household snapshot is present; without one every other
  ``household.*`` fact is null;
* ``household.members`` (count), ``household.dependants``, ``household.floor|wall|roof|water|electricity``,
  ``household.assets`` (list);
* ``household.monthly_income``: ``obs.verified_monthly_income`` when the assessor verified an
  amount, else the registered income; ``household.per_capita_income``: that divided by the
  member count, rounded down;
* ``household.children_under_6`` (age < 6), ``household.school_age_children`` (6 <= age <= 18),
  ``household.elderly`` (age >= 60), ``household.disabled_members`` (disability other than none);
* ``household.female_head``: the kepala keluarga is a woman.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from puskesos_shared.canonical import digest
from puskesos_shared.contracts.intake import (
    Asset,
    ComplaintCategory,
    Disability,
    Electricity,
    FloorType,
    Household,
    Relationship,
    RoofType,
    Urgency,
    WallType,
    WaterSource,
)
from puskesos_shared.contracts.primitives import Program, Rupiah, Sex
from puskesos_shared.contracts.referral import AssessmentResult, CaseAssessed
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .rules import RuleSet, evaluate

INPUTS_FORMAT = "puskesos.assessment-inputs/1"
_STRICT = ConfigDict(frozen=True, extra="forbid")


class Observations(BaseModel):
    """What the assessor observed on the visit. Every flag defaults to "not observed"."""

    model_config = _STRICT
    chronic_illness: bool = False
    needs_hospital_care: bool = False
    has_health_insurance: bool = False
    pregnant_member: bool = False
    child_neglected: bool = False
    elderly_alone: bool = False
    homeless: bool = False
    begging: bool = False
    disaster_affected: bool = False
    needs_rehabilitation: bool = False
    disability_support_needed: bool = False
    income_verified: bool = False
    verified_monthly_income: Rupiah | None = Field(default=None, le=1_000_000_000)
    enrolled_programs: tuple[Program, ...] = Field(default=(), max_length=len(Program))

    @field_validator("enrolled_programs")
    @classmethod
    def _sorted_unique(cls, value: tuple[Program, ...]) -> tuple[Program, ...]:
        return tuple(sorted(set(value), key=lambda p: p.value))


class MemberInputs(BaseModel):
    model_config = _STRICT
    age: int = Field(ge=0, le=150)
    sex: Sex
    relationship: Relationship
    disability: Disability


class HouseholdInputs(BaseModel):
    model_config = _STRICT
    kk_revision: int = Field(ge=1)
    monthly_income: Rupiah
    dependants: int = Field(ge=0, le=30)
    floor: FloorType
    wall: WallType
    roof: RoofType
    water: WaterSource
    electricity: Electricity
    assets: tuple[Asset, ...]
    members: tuple[MemberInputs, ...] = Field(min_length=1, max_length=30)


class CaseInputs(BaseModel):
    model_config = _STRICT
    category: ComplaintCategory
    urgency: Urgency


class AssessmentInputs(BaseModel):
    model_config = _STRICT
    format: Literal["puskesos.assessment-inputs/1"] = "puskesos.assessment-inputs/1"
    assessed_on: dt.date
    case: CaseInputs
    observations: Observations
    household: HouseholdInputs | None

    def recorded(self) -> dict[str, Any]:
        """The JSON form recorded in CaseAssessed (and digested)."""
        return self.model_dump(mode="json")

    def digest(self) -> str:
        return digest(self.recorded())


class RecordMismatch(ValueError):
    """A recorded assessment cannot be re-derived: wrong rule set, or inputs that do not match their digest."""


def age_on(birth_date: dt.date, day: dt.date) -> int:
    return max(0, day.year - birth_date.year - ((day.month, day.day) < (birth_date.month, birth_date.day)))


def household_inputs(household: Household, revision: int, on: dt.date) -> HouseholdInputs:
    se = household.socio_economic
    return HouseholdInputs(
        kk_revision=revision, monthly_income=se.monthly_income, dependants=se.dependants, floor=se.floor,
        wall=se.wall, roof=se.roof, water=se.water, electricity=se.electricity,
        assets=tuple(sorted(set(se.assets), key=lambda a: a.value)),
        members=tuple(MemberInputs(age=age_on(m.birth_date, on), sex=m.sex, relationship=m.relationship,
                                   disability=m.disability) for m in household.members),
    )


def build_inputs(*, assessed_on: dt.date, category: ComplaintCategory, urgency: Urgency,
                 observations: Observations, household: HouseholdInputs | None) -> AssessmentInputs:
    return AssessmentInputs(assessed_on=assessed_on, case=CaseInputs(category=category, urgency=urgency),
                            observations=observations, household=household)


def facts(inputs: AssessmentInputs) -> dict[str, Any]:
    """The facts rule conditions read (see the module docstring), as plain JSON values."""
    obs = inputs.observations.model_dump(mode="json")
    out: dict[str, Any] = {"case.category": inputs.case.category.value, "case.urgency": inputs.case.urgency.value,
                           **{f"obs.{k}": v for k, v in obs.items()}}
    hh = inputs.household
    out["household.known"] = hh is not None
    if hh is None:
        return out
    members = hh.members
    income = (inputs.observations.verified_monthly_income
              if inputs.observations.verified_monthly_income is not None else hh.monthly_income)
    head = next((m for m in members if m.relationship is Relationship.HEAD), members[0])
    out.update({
        "household.members": len(members),
        "household.monthly_income": income,
        "household.per_capita_income": income // len(members),
        "household.dependants": hh.dependants,
        "household.children_under_6": sum(1 for m in members if m.age < 6),
        "household.school_age_children": sum(1 for m in members if 6 <= m.age <= 18),
        "household.elderly": sum(1 for m in members if m.age >= 60),
        "household.disabled_members": sum(1 for m in members if m.disability is not Disability.NONE),
        "household.female_head": head.sex is Sex.FEMALE,
        "household.floor": hh.floor.value, "household.wall": hh.wall.value, "household.roof": hh.roof.value,
        "household.water": hh.water.value, "household.electricity": hh.electricity.value,
        "household.assets": [a.value for a in hh.assets],
    })
    return out


def assess(inputs: AssessmentInputs, rule_set: RuleSet) -> AssessmentResult:
    """The decision of ``rule_set`` on ``inputs``. Pure: same inputs and rules, same result."""
    return evaluate(rule_set, facts(inputs))


def reassess(recorded: CaseAssessed, rule_set: RuleSet) -> AssessmentResult:
    """Re-derives a recorded decision from its recorded inputs and the rule set it names.

    Raises ``RecordMismatch`` when ``rule_set`` is not the recorded version or the recorded
    inputs do not match their recorded digest.
    """
    if rule_set.tag != recorded.data.rule_set_version:
        raise RecordMismatch(f"the decision was made by {recorded.data.rule_set_version}, not {rule_set.tag}")
    if digest(recorded.data.inputs) != recorded.data.inputs_digest:
        raise RecordMismatch("the recorded inputs do not match their recorded digest")
    return assess(AssessmentInputs.model_validate(recorded.data.inputs), rule_set)
