"""Sample data: a realistic flow of contract events with causation links (for tests, benchmarks, demos).

Built from the shared contract models.

complaint -> case -> assessment -> (referral) -> allocation -> disbursement -> notification, in a
round that also rejects a second family (budget exhausted) and is closed with its totals.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

from puskesos_shared.canonical import digest
from puskesos_shared.contracts import (
    Actor,
    ActorKind,
    AidAllocated,
    AidAllocationRejected,
    AidDisbursed,
    AidRoundClosed,
    AidRoundOpened,
    CaseAssessed,
    CaseClosed,
    CaseOpened,
    ComplaintFiled,
    Event,
    HouseholdRegistered,
    NotificationSent,
    ReferralIssued,
)
from puskesos_shared.contracts.distribution import (
    AidAllocatedData,
    AidAllocationRejectedData,
    AidDisbursedData,
    AidRoundClosedData,
    AidRoundOpenedData,
    AllocationBasis,
    CandidateSource,
    FundingSource,
    PayoutMethod,
    PayoutTarget,
    Reconciliation,
    RejectionReason,
    RoundTotals,
)
from puskesos_shared.contracts.examples import household
from puskesos_shared.contracts.intake import (
    Complainant,
    ComplaintCategory,
    ComplaintChannel,
    ComplaintFiledData,
    Household,
    HouseholdRegisteredData,
    Urgency,
)
from puskesos_shared.contracts.notification import NotificationChannel, NotificationSentData, Recipient, RecipientKind
from puskesos_shared.contracts.primitives import OfficerRole, Program
from puskesos_shared.contracts.referral import (
    AssessmentResult,
    CaseAssessedData,
    CaseClosedData,
    CaseOpenedData,
    CaseResolution,
    ReferralIssuedData,
    ReferralTarget,
    ReferralTargetKind,
)
from puskesos_shared.ids import derived_event_id, stable_id

from .rules import evaluate

VILLAGE = "35.73.01.1001"
OTHER_KK = "3573010502200002"
FRONT = Actor(kind=ActorKind.OFFICER, id="officer-blimbing-01", role=OfficerRole.FRONT_OFFICE)
ASSESSOR = Actor(kind=ActorKind.OFFICER, id="officer-blimbing-03", role=OfficerRole.ASSESSOR)
OPERATOR = Actor(kind=ActorKind.OFFICER, id="dinsos-malang-op-01", role=OfficerRole.OPERATOR)
T0 = dt.datetime(2026, 11, 2, 2, 30, tzinfo=dt.UTC)


def assessment_inputs() -> dict[str, Any]:
    return {
        "format": "puskesos.assessment-inputs/1", "assessed_on": "2026-11-03",
        "case": {"category": "aid_not_received", "urgency": "normal"},
        "observations": {"chronic_illness": True, "needs_hospital_care": False, "has_health_insurance": False,
                         "pregnant_member": False, "child_neglected": False, "elderly_alone": False,
                         "homeless": False, "begging": False, "disaster_affected": False,
                         "needs_rehabilitation": False, "disability_support_needed": False,
                         "income_verified": True, "verified_monthly_income": 1_200_000, "enrolled_programs": []},
        "household": {"kk_revision": 1, "monthly_income": 1_200_000, "dependants": 2, "floor": "tanah",
                      "wall": "bambu", "roof": "asbes", "water": "sumur_terlindungi", "electricity": "450VA",
                      "assets": ["smartphone"],
                      "members": [{"age": 46, "sex": "L", "relationship": "kepala_keluarga", "disability": "none"},
                                  {"age": 41, "sex": "P", "relationship": "pasangan", "disability": "none"},
                                  {"age": 14, "sex": "L", "relationship": "anak", "disability": "physical"}]},
    }


@dataclass
class Flow:
    """The events of one flow, in publishing order, with handles on the interesting ids."""

    events: list[Event] = field(default_factory=list)
    ids: dict[str, Any] = field(default_factory=dict)

    def add(self, event: Event, name: str) -> Event:
        self.events.append(event)
        self.ids[name] = event.event_id
        return event


def family(seed: int) -> Household:
    """The example household with a family card and NIKs of its own for each seed."""
    serial, block = seed % 9999 + 1, seed // 9999
    base = household()
    kk = f"357301{(block % 28) + 1:02d}0220{serial:04d}"
    births = [f"0101{80 - block % 30:02d}", f"5705{85 - block % 30:02d}", "200312"]
    members = tuple(m.model_copy(update={"nik": f"357301{births[i]}{serial:04d}"}) for i, m in enumerate(base.members))
    return Household.model_validate({**base.model_dump(), "kk_number": kk,
                                     "members": [m.model_dump() for m in members]})


def build_flow(seed: int, rule_set: dict[str, Any]) -> Flow:
    """Every id depends on ``seed``: two flows with different seeds are unrelated families and rounds.

    The assessment's result is what ``rule_set`` (``assessment@1``) gives on its inputs.
    """
    hh = family(seed)
    kk, head_nik = hh.kk_number, hh.head.nik
    def u(name: str) -> uuid.UUID:
        return stable_id("audit-test", seed, name)

    complaint_id, case_id, assessment_id, round_id = u("complaint"), u("case"), u("assessment"), u("round")
    allocation_id = stable_id("allocation", round_id, kk)
    flow = Flow()
    flow.ids.update(kk=kk, nik=head_nik, complaint_id=complaint_id, case_id=case_id, assessment_id=assessment_id,
                    round_id=round_id, allocation_id=allocation_id, household_id=u("household"))

    def meta(minutes: int, actor: Actor, correlation: str, causation: str | None, village: str | None = VILLAGE,
             ) -> dict[str, Any]:
        return {"event_id": u(f"event-{minutes}"), "occurred_at": T0 + dt.timedelta(minutes=minutes), "actor": actor,
                "correlation_id": correlation, "causation_id": causation, "village_code": village}

    case_corr, round_corr = f"case:{case_id}", f"round:{round_id}"
    flow.add(HouseholdRegistered(producer="intake", **meta(1, FRONT, f"household:{u('household')}",
                                                                        f"cmd:{u('register')}"),
                                              data=HouseholdRegisteredData(household_id=u("household"), household=hh,
                                                                           revision=1)), "registered")
    filed = flow.add(ComplaintFiled(producer="intake", **meta(2, FRONT, case_corr, f"cmd:{u('file')}"),
                                    data=ComplaintFiledData(
                                        complaint_id=complaint_id, case_number=f"3573011001/2026/{seed + 1:05d}",
                                        category=ComplaintCategory.AID_NOT_RECEIVED, channel=ComplaintChannel.WALK_IN,
                                        urgency=Urgency.NORMAL, description="Belum menerima bantuan sejak suami sakit.",
                                        complainant=Complainant(nik=head_nik, kk_number=kk), village_code=VILLAGE,
                                        filed_by=FRONT.id, filed_at=T0)), "filed")
    opened = flow.add(CaseOpened(producer="referral", **meta(3, Actor.system("referral"), case_corr,
                                                             str(filed.event_id)),
                                 data=CaseOpenedData(case_id=case_id, complaint_id=complaint_id,
                                                     case_number=f"3573011001/2026/{seed + 1:05d}",
                                                     category=ComplaintCategory.AID_NOT_RECEIVED,
                                                     urgency=Urgency.NORMAL,
                                                     village_code=VILLAGE, subject_nik=head_nik, kk_number=kk,
                                                     opened_at=T0, sla_due_on=dt.date(2026, 11, 9),
                                                     sla_working_days=5)), "opened")
    inputs = assessment_inputs()
    result = AssessmentResult.model_validate(evaluate(rule_set, inputs))
    assessed = flow.add(CaseAssessed(producer="referral", **meta(4, ASSESSOR, case_corr, str(opened.event_id)),
                                     data=CaseAssessedData(case_id=case_id, assessment_id=assessment_id,
                                                           assessed_by=ASSESSOR.id, kk_number=kk, result=result,
                                                           rule_set_version="assessment@1", inputs=inputs,
                                                           inputs_digest=digest(inputs))), "assessed")
    referred = flow.add(ReferralIssued(producer="referral", **meta(5, ASSESSOR, case_corr, str(assessed.event_id)),
                            data=ReferralIssuedData(referral_id=u("referral"), referral_number="RJK/3573011001/2026/1",
                                                    case_id=case_id, assessment_id=assessment_id,
                                                    target=ReferralTarget(kind=ReferralTargetKind.PROGRAM, code="BLT",
                                                                          name="BLT Kota Malang", program=Program.BLT),
                                                    issued_by=ASSESSOR.id, due_on=dt.date(2026, 11, 16))), "referred")
    flow.add(AidRoundOpened(producer="distribution", **meta(6, OPERATOR, round_corr, f"cmd:{u('open')}", None),
                            data=AidRoundOpenedData(round_id=round_id, name="BLT DBHCHT uji", program=Program.BLT,
                                                    funding_source=FundingSource.DBHCHT, amount_per_family=300_000,
                                                    budget_cap=300_000, eligibility_rule_version="blt-eligibility@1",
                                                    period_start=dt.date(2026, 11, 1), period_end=dt.date(2026, 12, 31),
                                                    opened_by=OPERATOR.id)), "round_opened")
    basis = AllocationBasis(source=CandidateSource.ASSESSMENT, assessment_event_id=assessed.event_id,
                            rule_set_version="blt-eligibility@1")
    work = stable_id("work", "allocate", round_id, kk)
    flow.add(AidAllocated(producer="distribution", **meta(7, Actor.system("distribution"), round_corr,
                                                                      str(work)),
                                      data=AidAllocatedData(allocation_id=allocation_id, round_id=round_id,
                                                            kk_number=kk,
                                                            head_nik=head_nik, recipient_name=hh.head.name,
                                                            village_code=VILLAGE, amount=300_000,
                                                            payout=PayoutTarget(method=PayoutMethod.COLLECTION_POINT,
                                                                                reference="KANTOR-POS-BLIMBING"),
                                                            basis=basis)), "allocated")
    flow.add(AidAllocationRejected(producer="distribution", **meta(8, Actor.system("distribution"), round_corr,
                                                                   f"work:{u('other')}"),
                                   data=AidAllocationRejectedData(
                                       round_id=round_id, kk_number=OTHER_KK, village_code=VILLAGE,
                                       reason=RejectionReason.BUDGET_EXHAUSTED, detail="budget used up",
                                       basis=AllocationBasis(source=CandidateSource.IMPORT, import_batch_id=u("batch"),
                                                             import_row=2, rule_set_version="blt-eligibility@1"))),
             "rejected")
    pay_work = stable_id("work", "disburse", allocation_id)
    disbursement_id = stable_id("disbursement", allocation_id)
    flow.ids["disbursement_id"] = disbursement_id
    disbursed = flow.add(AidDisbursed(producer="distribution", **{**meta(9, Actor.system("distribution"), round_corr,
                                                                         str(pay_work)),
                                                                  "event_id": derived_event_id(pay_work, "disbursed")},
                                      data=AidDisbursedData(disbursement_id=disbursement_id,
                                                            allocation_id=allocation_id,
                                                            round_id=round_id, kk_number=kk, amount=300_000,
                                                            gateway="simulated", gateway_reference=f"SIM-{seed:06d}",
                                                            attempts=1, disbursed_at=T0 + dt.timedelta(hours=1))),
                         "disbursed")
    flow.add(NotificationSent(producer="notification",
                              **meta(10, Actor.system("notification"), round_corr, str(disbursed.event_id)),
                              data=NotificationSentData(notification_id=u("notification"),
                                                        source_event_id=disbursed.event_id,
                                                        source_event_type="AidDisbursed",
                                                        recipient=Recipient(kind=RecipientKind.RESIDENT, id="nikh:ab12",
                                                                            address_masked="0812****7890"),
                                                        channel=NotificationChannel.WHATSAPP,
                                                        template_id="aid_disbursed",
                                                        template_version=1, provider_message_id=f"wamid.{seed}",
                                                        attempts=1, sent_at=T0 + dt.timedelta(hours=1))), "notified")
    flow.add(AidRoundClosed(producer="distribution", **meta(11, OPERATOR, round_corr, f"cmd:{u('close')}", None),
                            data=AidRoundClosedData(
                                round_id=round_id, closed_by=OPERATOR.id,
                                totals=RoundTotals(allocated_count=1, allocated_amount=300_000, rejected_count=1,
                                                   rejected_by_reason={RejectionReason.BUDGET_EXHAUSTED: 1},
                                                   disbursed_count=1, disbursed_amount=300_000, failed_count=0,
                                                   budget_cap=300_000, budget_remaining=0),
                                reconciliation=Reconciliation(gateway_executed_count=1, gateway_executed_amount=300_000,
                                                              matched=True))), "round_closed")
    flow.add(CaseClosed(producer="referral", **meta(12, ASSESSOR, case_corr, str(referred.event_id)),
                        data=CaseClosedData(case_id=case_id, resolution=CaseResolution.REFERRED_AND_COMPLETED,
                                            reason="Keluarga menerima BLT.", closed_by=ASSESSOR.id,
                                            closed_at=T0 + dt.timedelta(days=3))), "closed")
    return flow

