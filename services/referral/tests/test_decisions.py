"""The case lifecycle as pure decisions: transitions, refusals, escalation once per level."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from puskesos_referral.catalog import packaged_rule_sets, resolve_target
from puskesos_referral.domain.assessment import Observations, build_inputs, household_inputs
from puskesos_referral.domain.case import Case, CaseRuleError, CaseStatus, ReferralStatus
from puskesos_referral.domain.decisions import (
    close_case,
    escalate_overdue,
    issue_referral,
    open_case,
    record_assessment,
    resolve_referral,
)
from puskesos_shared.contracts import Actor, ActorKind
from puskesos_shared.contracts.intake import ComplaintCategory, Urgency
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.contracts.referral import CaseResolution, EscalationLevel, ReferralOutcome
from puskesos_shared.ids import derived_event_id, stable_id
from referral_testkit import JEMBER_VILLAGE, KK, complaint_filed, household, officer

NOW = dt.datetime(2026, 11, 23, 2, tzinfo=dt.UTC)  # Monday 09:00 WIB
ASSESSOR = officer(OfficerRole.ASSESSOR).actor()
HOSPITAL = Actor(kind=ActorKind.EXTERNAL, id="RSD-SOEBANDI")


def opened(**kwargs: object) -> Case:
    return open_case(complaint_filed(**kwargs), NOW).case  # type: ignore[arg-type]


def assessed(case: Case, **observed: bool) -> Case:
    on = NOW.date()
    inputs = build_inputs(assessed_on=on, category=case.category, urgency=case.urgency,
                          observations=Observations(**observed), household=household_inputs(household(), 1, on))
    return record_assessment(case, command_id=str(uuid.uuid4()), actor=ASSESSOR, inputs=inputs,
                             rule_set=packaged_rule_sets()[0], kk_number=KK, note="", now=NOW).case


def referred(case: Case, code: str = "RSD-SOEBANDI") -> Case:
    target = resolve_target(code, JEMBER_VILLAGE).target()
    return issue_referral(case, command_id=str(uuid.uuid4()), referral_number="RJK/3509012001/2026/00001",
                          target=target, actor=ASSESSOR, due_on=dt.date(2026, 11, 24), instructions="",
                          now=NOW).case


def answer(case: Case, outcome: ReferralOutcome) -> tuple[Case, list[str]]:
    referral_id = case.referrals[-1].referral_id
    decision = resolve_referral(case, referral_id=referral_id, outcome=outcome, note="", responded_by="RSD-SOEBANDI",
                                actor=HOSPITAL, causation="x", now=NOW)
    return decision.case, [e.event_type for e in decision.events]


def test_opening_is_deterministic_and_counts_the_sla_from_filing() -> None:
    complaint = complaint_filed(category=ComplaintCategory.HEALTH_REFERRAL, urgency=Urgency.EMERGENCY)
    first, again = open_case(complaint, NOW), open_case(complaint, NOW + dt.timedelta(hours=1))
    assert first.case.case_id == again.case.case_id == stable_id("case", complaint.data.complaint_id)
    assert first.events[0].event_id == again.events[0].event_id == derived_event_id(complaint.event_id, "case_opened")
    event = first.events[0]
    assert event.correlation_id == f"case:{first.case.case_id}"
    assert event.causation_id == str(complaint.event_id)
    assert first.case.sla_due_on == dt.date(2026, 11, 24)  # filed Monday, 1 working day
    assert first.case.level is EscalationLevel.VILLAGE and first.case.status is CaseStatus.OPEN


def test_referral_needs_a_current_assessment_that_makes_the_case_eligible() -> None:
    case = opened()
    with pytest.raises(CaseRuleError) as caught:
        referred(case)
    assert caught.value.code == "invalid_state"
    not_sick = assessed(case)  # no hospital care observed
    with pytest.raises(CaseRuleError) as caught:
        referred(not_sick)
    assert caught.value.code == "not_eligible"
    assert "HOSPITAL_REFERRAL" in caught.value.message
    assert referred(not_sick, "DINSOS-JEMBER").status is CaseStatus.REFERRED  # the Dinas Sosial takes any case


def test_accepted_then_completed_then_closed() -> None:
    case = referred(assessed(opened(), needs_hospital_care=True))
    case, events = answer(case, ReferralOutcome.ACCEPTED)
    assert (case.status, events) == (CaseStatus.REFERRAL_ACCEPTED, ["ReferralResolved"])
    same, none = answer(case, ReferralOutcome.ACCEPTED)  # the target repeats itself
    assert none == [] and same is case
    case, events = answer(case, ReferralOutcome.COMPLETED)
    assert case.status is CaseStatus.REFERRAL_COMPLETED
    with pytest.raises(CaseRuleError, match="cannot be answered rejected"):
        answer(case, ReferralOutcome.REJECTED)
    closed = close_case(case, command_id="c1", resolution=CaseResolution.REFERRED_AND_COMPLETED, reason="dirawat",
                        actor=ASSESSOR, now=NOW)
    assert closed.case.status is CaseStatus.CLOSED and closed.case.closure is not None
    assert closed.case.closure.within_sla
    with pytest.raises(CaseRuleError) as caught:
        assessed(closed.case)
    assert caught.value.code == "case_closed"


def test_a_rejection_asks_for_reassessment_and_the_second_escalates_at_once() -> None:
    case = referred(assessed(opened(), needs_hospital_care=True))
    case, events = answer(case, ReferralOutcome.REJECTED)
    assert case.status is CaseStatus.NEEDS_REASSESSMENT and events == ["ReferralResolved"]
    with pytest.raises(CaseRuleError):
        referred(case)  # needs a new assessment first
    case = referred(assessed(case, needs_hospital_care=True))
    version = case.version
    case, events = answer(case, ReferralOutcome.REJECTED)
    assert events == ["ReferralResolved", "CaseEscalated"]
    assert case.level is EscalationLevel.KECAMATAN and case.rejections == 2
    assert case.version == version + 1  # one write
    assert case.escalations[0].event_id == stable_id("escalation", case.case_id, "kecamatan")


def test_escalation_once_per_level_up_to_the_dinas_sosial() -> None:
    case = opened(category=ComplaintCategory.AID_NOT_RECEIVED, urgency=Urgency.NORMAL)  # due Monday 30 Nov
    assert escalate_overdue(case, dt.datetime(2026, 11, 30, 10, tzinfo=dt.UTC)) is None  # due today: not yet
    tuesday = dt.datetime(2026, 12, 1, 2, tzinfo=dt.UTC)
    first = escalate_overdue(case, tuesday)
    assert first is not None
    event = first.events[0]
    assert event.event_type == "CaseEscalated"
    case = first.case
    assert case.level is EscalationLevel.KECAMATAN and case.level_due_on == dt.date(2026, 12, 4)
    assert escalate_overdue(case, tuesday) is None  # the same sweep again: nothing
    second = escalate_overdue(case, dt.datetime(2026, 12, 7, 2, tzinfo=dt.UTC))
    assert second is not None and second.case.level is EscalationLevel.DINAS_SOSIAL
    assert escalate_overdue(second.case, dt.datetime(2027, 3, 1, 2, tzinfo=dt.UTC)) is None  # the top


def test_closing_rules() -> None:
    case = referred(assessed(opened(), needs_hospital_care=True))
    with pytest.raises(CaseRuleError) as caught:
        close_case(case, command_id="c", resolution=CaseResolution.RESOLVED, reason="x", actor=ASSESSOR, now=NOW)
    assert caught.value.code == "referral_pending"
    with pytest.raises(CaseRuleError, match="needs a referral answered completed"):
        close_case(case, command_id="c", resolution=CaseResolution.REFERRED_AND_COMPLETED, reason="x",
                   actor=ASSESSOR, now=NOW)
    withdrawn = close_case(case, command_id="c", resolution=CaseResolution.WITHDRAWN, reason="pindah domisili",
                           actor=ASSESSOR, now=NOW).case
    assert withdrawn.referrals[0].status is ReferralStatus.WITHDRAWN
    assert escalate_overdue(withdrawn, dt.datetime(2027, 1, 1, tzinfo=dt.UTC)) is None
