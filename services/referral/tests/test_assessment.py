"""Assessment inputs and decisions: no personal data recorded, digests, and re-derivation (pure)."""

from __future__ import annotations

import copy
import datetime as dt
import json
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from puskesos_referral.catalog import packaged_rule_sets
from puskesos_referral.domain.assessment import (
    AssessmentInputs,
    HouseholdInputs,
    MemberInputs,
    Observations,
    RecordMismatch,
    assess,
    build_inputs,
    facts,
    household_inputs,
    reassess,
)
from puskesos_referral.domain.decisions import open_case, record_assessment
from puskesos_referral.domain.rules import RuleSet
from puskesos_shared.canonical import digest
from puskesos_shared.contracts import CaseAssessed, decode_event
from puskesos_shared.contracts.intake import (
    ComplaintCategory,
    Disability,
    Electricity,
    FloorType,
    Relationship,
    RoofType,
    Urgency,
    WallType,
    WaterSource,
)
from puskesos_shared.contracts.primitives import OfficerRole, PmksCategory, Program, Sex
from referral_testkit import CHILD_NIK, HEAD_NIK, KK, complaint_filed, household, officer

ON = dt.date(2026, 11, 23)
NOW = dt.datetime(2026, 11, 23, 3, tzinfo=dt.UTC)


def v1() -> RuleSet:
    return packaged_rule_sets()[0]


def v2() -> RuleSet:
    """A stricter later version: poverty line lowered to Rp400.000, BLT needs a score of 60."""
    doc = json.loads(json.dumps(v1().document()).replace("600000", "400000"))
    doc["version"] = 2
    blt = next(p for p in doc["programs"] if p["program"] == "BLT")
    blt["require"][2]["when"]["value"] = 60
    return RuleSet.model_validate(doc)


def test_household_snapshot_keeps_what_rules_read_and_no_personal_data() -> None:
    snapshot = household_inputs(household(), 4, ON)
    text = json.dumps(snapshot.model_dump(mode="json"))
    for secret in (HEAD_NIK, CHILD_NIK, KK, "Slamet", "Siti", "1980-05-05"):
        assert secret not in text
    assert snapshot.kk_revision == 4
    assert [m.age for m in snapshot.members] == [46, 41, 11]


def test_facts_derivation() -> None:
    inputs = build_inputs(assessed_on=ON, category=ComplaintCategory.HEALTH_REFERRAL, urgency=Urgency.HIGH,
                          observations=Observations(verified_monthly_income=900_000),
                          household=household_inputs(household(), 1, ON))
    f = facts(inputs)
    assert f["household.monthly_income"] == 900_000  # the verified amount wins
    assert f["household.per_capita_income"] == 300_000
    assert f["household.school_age_children"] == 1
    assert f["household.disabled_members"] == 1
    assert f["household.female_head"] is False
    without = facts(build_inputs(assessed_on=ON, category=ComplaintCategory.HOMELESS_OR_BEGGAR, urgency=Urgency.HIGH,
                                 observations=Observations(homeless=True), household=None))
    assert without["household.known"] is False
    assert "household.per_capita_income" not in without  # null


def test_poor_sick_family_in_v1() -> None:
    inputs = build_inputs(assessed_on=ON, category=ComplaintCategory.HEALTH_REFERRAL, urgency=Urgency.HIGH,
                          observations=Observations(chronic_illness=True, needs_hospital_care=True),
                          household=household_inputs(household(), 1, ON))
    result = assess(inputs, v1())
    assert result.pmks_category is PmksCategory.RENTAN_KESEHATAN
    eligible = {e.program for e in result.eligibility if e.eligible}
    assert eligible == {Program.PKH, Program.BPNT, Program.PBI_JK, Program.BLT, Program.HOSPITAL_REFERRAL}
    assert result.vulnerability_score == 20 + 8 + 5 + 5 + 5 + 3 + 8 + 8 + 10


def recorded_assessment(inputs: AssessmentInputs, rule_set: RuleSet) -> CaseAssessed:
    """A CaseAssessed as published, read back from its JSON bytes (as the audit service would)."""
    case = open_case(complaint_filed(), NOW).case
    decision = record_assessment(case, command_id=str(uuid.uuid4()), actor=officer(OfficerRole.ASSESSOR).actor(),
                                 inputs=inputs, rule_set=rule_set, kk_number=KK, note="", now=NOW)
    event = decision.events[0]
    decoded = decode_event(event.model_dump_json().encode())
    assert isinstance(decoded, CaseAssessed)
    return decoded


def test_recorded_decision_carries_version_inputs_and_digest() -> None:
    inputs = build_inputs(assessed_on=ON, category=ComplaintCategory.AID_NOT_RECEIVED, urgency=Urgency.NORMAL,
                          observations=Observations(), household=household_inputs(household(), 2, ON))
    recorded = recorded_assessment(inputs, v1())
    assert recorded.data.rule_set_version == "assessment@1"
    assert recorded.data.inputs == inputs.recorded()
    assert recorded.data.inputs_digest == digest(inputs.recorded())
    assert recorded.correlation_id.startswith("case:")


def test_reassess_refuses_another_version_and_altered_inputs() -> None:
    inputs = build_inputs(assessed_on=ON, category=ComplaintCategory.AID_NOT_RECEIVED, urgency=Urgency.NORMAL,
                          observations=Observations(), household=household_inputs(household(), 2, ON))
    recorded = recorded_assessment(inputs, v1())
    with pytest.raises(RecordMismatch, match="made by assessment@1, not assessment@2"):
        reassess(recorded, v2())
    altered = copy.deepcopy(recorded.data.inputs)
    altered["household"]["monthly_income"] = 100
    forged = recorded.model_copy(update={"data": recorded.data.model_copy(update={"inputs": altered})})
    with pytest.raises(RecordMismatch, match="do not match their recorded digest"):
        reassess(forged, v1())


members = st.builds(MemberInputs, age=st.integers(0, 95), sex=st.sampled_from(Sex),
                    relationship=st.sampled_from(Relationship), disability=st.sampled_from(Disability))
households = st.builds(
    HouseholdInputs, kk_revision=st.integers(1, 50), monthly_income=st.integers(0, 10_000_000),
    dependants=st.integers(0, 10), floor=st.sampled_from(FloorType), wall=st.sampled_from(WallType),
    roof=st.sampled_from(RoofType), water=st.sampled_from(WaterSource), electricity=st.sampled_from(Electricity),
    assets=st.just(()), members=st.lists(members, min_size=1, max_size=8).map(tuple))
observations = st.builds(
    Observations, verified_monthly_income=st.none() | st.integers(0, 5_000_000),
    enrolled_programs=st.lists(st.sampled_from(Program), max_size=3).map(tuple),
    **{name: st.booleans() for name in ("chronic_illness", "needs_hospital_care", "has_health_insurance",
                                         "pregnant_member", "child_neglected", "elderly_alone", "homeless",
                                         "begging", "disaster_affected", "needs_rehabilitation",
                                         "disability_support_needed", "income_verified")})
all_inputs = st.builds(build_inputs, assessed_on=st.dates(dt.date(2026, 1, 1), dt.date(2027, 12, 31)),
                       category=st.sampled_from(ComplaintCategory), urgency=st.sampled_from(Urgency),
                       observations=observations, household=st.none() | households)


@settings(max_examples=150, deadline=None)
@given(all_inputs)
def test_rerunning_a_recorded_assessment_gives_the_same_decision(inputs: AssessmentInputs) -> None:
    recorded = recorded_assessment(inputs, v1())
    assert reassess(recorded, v1()) == recorded.data.result


def test_a_newer_version_decides_differently_but_the_recorded_decision_keeps_its_own() -> None:
    inputs = build_inputs(assessed_on=ON, category=ComplaintCategory.AID_NOT_RECEIVED, urgency=Urgency.NORMAL,
                          observations=Observations(), household=household_inputs(household(income=1_500_000), 1, ON))
    recorded = recorded_assessment(inputs, v1())
    assert recorded.data.result.pmks_category is PmksCategory.FAKIR_MISKIN  # Rp500.000 per capita < Rp600.000
    newer = assess(inputs, v2())
    assert newer.pmks_category is PmksCategory.BUKAN_PMKS  # not below the stricter Rp400.000
    assert newer != recorded.data.result
    assert reassess(recorded, v1()) == recorded.data.result
