"""One realistic example of every event, built through the models (so they always validate).

``puskesos contracts generate`` writes them to ``shared/schemas/examples/``; tests validate
the written files against the written schemas. Identifiers are fixed so the files are stable.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

from .distribution import (
    AidAllocated,
    AidAllocatedData,
    AidAllocationRejected,
    AidAllocationRejectedData,
    AidDisbursed,
    AidDisbursedData,
    AidRoundClosed,
    AidRoundClosedData,
    AidRoundOpened,
    AidRoundOpenedData,
    AllocationBasis,
    CandidateSource,
    DisbursementFailed,
    DisbursementFailedData,
    FundingSource,
    PayoutMethod,
    PayoutTarget,
    Reconciliation,
    RejectionReason,
    RoundTotals,
    VillageQuota,
    VillagesWithoutQuota,
)
from .envelope import Actor, ActorKind, Event
from .intake import (
    Address,
    Asset,
    Complainant,
    ComplaintCategory,
    ComplaintChannel,
    ComplaintFiled,
    ComplaintFiledData,
    Disability,
    Electricity,
    FloorType,
    Household,
    HouseholdChangeKind,
    HouseholdRegistered,
    HouseholdRegisteredData,
    HouseholdUpdated,
    HouseholdUpdatedData,
    Member,
    Relationship,
    RoofType,
    SocioEconomic,
    Urgency,
    WallType,
    WaterSource,
)
from .notification import (
    FailureReason,
    NotificationChannel,
    NotificationFailed,
    NotificationFailedData,
    NotificationSent,
    NotificationSentData,
    Recipient,
    RecipientKind,
)
from .primitives import OfficerRole, PmksCategory, Program, Sex
from .referral import (
    AssessmentResult,
    CaseAssessed,
    CaseAssessedData,
    CaseClosed,
    CaseClosedData,
    CaseEscalated,
    CaseEscalatedData,
    CaseOpened,
    CaseOpenedData,
    CaseResolution,
    EscalationAcknowledged,
    EscalationAcknowledgedData,
    EscalationAction,
    EscalationLevel,
    EscalationResolved,
    EscalationResolvedData,
    ProgramEligibility,
    ReferralIssued,
    ReferralIssuedData,
    ReferralOutcome,
    ReferralResolved,
    ReferralResolvedData,
    ReferralTarget,
    ReferralTargetKind,
)

WIB = dt.timezone(dt.timedelta(hours=7))
AT = dt.datetime(2026, 11, 2, 9, 30, tzinfo=WIB)
VILLAGE = "35.73.01.1001"  # Balearjosari, Blimbing, Kota Malang
KK = "3573010502200001"
HEAD_NIK = "3573010101800003"
SPOUSE_NIK = "3573015705850002"
CHILD_NIK = "3573012003120001"


def _uid(n: int) -> uuid.UUID:
    return uuid.UUID(int=0x5EED_0000_0000_0000_0000_0000_0000_0000 + n)


COMPLAINT_ID, CASE_ID, ASSESSMENT_ID, REFERRAL_ID, ROUND_ID = _uid(1), _uid(2), _uid(3), _uid(4), _uid(5)
ALLOCATION_ID, HOUSEHOLD_ID, IMPORT_BATCH_ID = _uid(6), _uid(7), _uid(8)
FRONT_OFFICE = Actor(kind=ActorKind.OFFICER, id="officer-blimbing-01", role=OfficerRole.FRONT_OFFICE)
ASSESSOR = Actor(kind=ActorKind.OFFICER, id="officer-blimbing-03", role=OfficerRole.ASSESSOR)
OPERATOR = Actor(kind=ActorKind.OFFICER, id="dinsos-malang-op-01", role=OfficerRole.OPERATOR)
COORDINATOR = Actor(kind=ActorKind.OFFICER, id="tksk-blimbing-01", role=OfficerRole.COORDINATOR)


def household() -> Household:
    return Household(
        kk_number=KK,
        address=Address(village_code=VILLAGE, street="Jl. Raya Balearjosari", rt="003", rw="002"),
        members=(
            Member(nik=HEAD_NIK, name="Slamet Riyadi", birth_date=dt.date(1980, 1, 1), sex=Sex.MALE,
                   relationship=Relationship.HEAD, occupation="buruh harian"),
            Member(nik=SPOUSE_NIK, name="Siti Aminah", birth_date=dt.date(1985, 5, 17), sex=Sex.FEMALE,
                   relationship=Relationship.SPOUSE, occupation="mengurus rumah tangga"),
            Member(nik=CHILD_NIK, name="Dimas Pratama", birth_date=dt.date(2012, 3, 20), sex=Sex.MALE,
                   relationship=Relationship.CHILD, disability=Disability.PHYSICAL, occupation="pelajar"),
        ),
        socio_economic=SocioEconomic(
            monthly_income=1_200_000, floor=FloorType.CEMENT, wall=WallType.UNPLASTERED_BRICK,
            roof=RoofType.ASBESTOS, water=WaterSource.PROTECTED_WELL, electricity=Electricity.VA_450,
            assets=(Asset.SMARTPHONE,), dependants=2,
        ),
        phone="+6281234567890",
    )


def _meta(n: int, actor: Actor, correlation: str, causation: str | None) -> dict[str, Any]:
    return {
        "event_id": _uid(100 + n), "occurred_at": AT + dt.timedelta(minutes=n), "actor": actor,
        "correlation_id": correlation, "causation_id": causation, "village_code": VILLAGE,
    }


def _household_registered() -> Event:
    return HouseholdRegistered(producer="intake", **_meta(1, FRONT_OFFICE, f"household:{KK}", None),
                               data=HouseholdRegisteredData(household_id=HOUSEHOLD_ID, household=household(),
                                                            revision=1))


def _household_updated() -> Event:
    return HouseholdUpdated(
        producer="intake", **_meta(2, FRONT_OFFICE, f"household:{KK}", str(_uid(101))),
        data=HouseholdUpdatedData(household_id=HOUSEHOLD_ID, household=household(),
                                  change=HouseholdChangeKind.UPDATE,
                                  changed_fields=("socio_economic.monthly_income",), revision=2),
    )


def _complaint_filed() -> Event:
    return ComplaintFiled(
        producer="intake", **_meta(3, FRONT_OFFICE, f"complaint:{COMPLAINT_ID}", None),
        data=ComplaintFiledData(
            complaint_id=COMPLAINT_ID, case_number="3573011001/2026/00001",
            category=ComplaintCategory.AID_NOT_RECEIVED, channel=ComplaintChannel.WALK_IN,
            urgency=Urgency.NORMAL, description="Keluarga belum menerima bantuan sejak suami sakit.",
            complainant=Complainant(nik=HEAD_NIK, kk_number=KK), village_code=VILLAGE,
            filed_by=FRONT_OFFICE.id, filed_at=AT,
        ),
    )


def _case_opened() -> Event:
    return CaseOpened(
        producer="referral", **_meta(4, Actor.system("referral"), f"case:{CASE_ID}", str(_uid(103))),
        data=CaseOpenedData(case_id=CASE_ID, complaint_id=COMPLAINT_ID, case_number="3573011001/2026/00001",
                            category=ComplaintCategory.AID_NOT_RECEIVED, urgency=Urgency.NORMAL,
                            village_code=VILLAGE, subject_nik=HEAD_NIK, kk_number=KK, opened_at=AT,
                            sla_due_on=dt.date(2026, 11, 9), sla_working_days=5),
    )


def _case_assessed() -> Event:
    inputs = {"observations": {"income_verified": True, "chronic_illness": True},
              "household": {"monthly_income": 1_200_000, "dependants": 2, "floor": "semen"}}
    return CaseAssessed(
        producer="referral", **_meta(5, ASSESSOR, f"case:{CASE_ID}", str(_uid(104))),
        data=CaseAssessedData(
            case_id=CASE_ID, assessment_id=ASSESSMENT_ID, assessed_by=ASSESSOR.id, kk_number=KK,
            result=AssessmentResult(
                pmks_category=PmksCategory.FAKIR_MISKIN, vulnerability_score=72.5,
                eligibility=(
                    ProgramEligibility(program=Program.BLT, eligible=True,
                                       reasons=("income below Rp1.500.000 per month",)),
                    ProgramEligibility(program=Program.PBI_JK, eligible=True, reasons=("chronic illness",)),
                    ProgramEligibility(program=Program.PKH, eligible=False, reasons=("no pregnant member",)),
                ),
            ),
            rule_set_version="assessment@1", inputs=inputs,
            inputs_digest="9f2c1d0b7a4e6f8a1b3c5d7e9f0a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e2f4a",
        ),
    )


def _referral_issued() -> Event:
    return ReferralIssued(
        producer="referral", **_meta(6, ASSESSOR, f"case:{CASE_ID}", str(_uid(105))),
        data=ReferralIssuedData(
            referral_id=REFERRAL_ID, referral_number="RJK/3573011001/2026/00001", case_id=CASE_ID,
            assessment_id=ASSESSMENT_ID,
            target=ReferralTarget(kind=ReferralTargetKind.PROGRAM, code="DINSOS-MALANG-BLT",
                                  name="BLT Dinas Sosial Kota Malang", program=Program.BLT),
            issued_by=ASSESSOR.id, due_on=dt.date(2026, 11, 16),
            instructions="Bawa KK dan KTP asli ke kantor kelurahan.",
        ),
    )


def _referral_resolved() -> Event:
    return ReferralResolved(
        producer="referral",
        **_meta(7, Actor(kind=ActorKind.EXTERNAL, id="dinsos-malang"), f"case:{CASE_ID}", str(_uid(106))),
        data=ReferralResolvedData(referral_id=REFERRAL_ID, case_id=CASE_ID, outcome=ReferralOutcome.ACCEPTED,
                                  note="Masuk daftar penerima BLT Desember.", responded_by="dinsos-malang",
                                  responded_at=AT + dt.timedelta(days=2)),
    )


def _case_escalated() -> Event:
    return CaseEscalated(
        producer="referral", **_meta(8, Actor.system("referral-sla"), f"case:{CASE_ID}", str(_uid(104))),
        data=CaseEscalatedData(case_id=CASE_ID, from_level=EscalationLevel.VILLAGE,
                               to_level=EscalationLevel.KECAMATAN, reason="SLA breached: not assessed in time",
                               sla_due_on=dt.date(2026, 11, 9), overdue_working_days=1),
    )


def _escalation_acknowledged() -> Event:
    return EscalationAcknowledged(
        producer="referral", **_meta(18, COORDINATOR, f"case:{CASE_ID}", str(_uid(19))),
        data=EscalationAcknowledgedData(case_id=CASE_ID, level=EscalationLevel.KECAMATAN,
                                        escalation_event_id=_uid(108), acknowledged_by=COORDINATOR.id,
                                        acknowledged_at=AT + dt.timedelta(days=6, hours=1),
                                        note="Saya hubungi kepala desa hari ini."),
    )


def _escalation_resolved() -> Event:
    return EscalationResolved(
        producer="referral", **_meta(19, COORDINATOR, f"case:{CASE_ID}", str(_uid(20))),
        data=EscalationResolvedData(case_id=CASE_ID, level=EscalationLevel.KECAMATAN, escalation_event_id=_uid(108),
                                    action=EscalationAction.RETURNED_TO_VILLAGE, resolved_by=COORDINATOR.id,
                                    resolved_at=AT + dt.timedelta(days=6, hours=3),
                                    note="Lakukan asesmen di rumah keluarga besok pagi, lalu rujuk ke Dinsos.",
                                    level_after=EscalationLevel.VILLAGE, due_on=dt.date(2026, 11, 12)),
    )


def _case_closed() -> Event:
    return CaseClosed(
        producer="referral", **_meta(9, ASSESSOR, f"case:{CASE_ID}", str(_uid(107))),
        data=CaseClosedData(case_id=CASE_ID, resolution=CaseResolution.REFERRED_AND_COMPLETED,
                            reason="Keluarga terdaftar sebagai penerima BLT.", closed_by=ASSESSOR.id,
                            closed_at=AT + dt.timedelta(days=3)),
    )


def _basis() -> AllocationBasis:
    return AllocationBasis(source=CandidateSource.IMPORT, import_batch_id=IMPORT_BATCH_ID, import_row=42,
                           rule_set_version="blt-eligibility@2")


def _round_opened() -> Event:
    return AidRoundOpened(
        producer="distribution", **{**_meta(10, OPERATOR, f"round:{ROUND_ID}", None), "village_code": None},
        data=AidRoundOpenedData(
            round_id=ROUND_ID, name="BLT DBHCHT Kota Malang 2026", program=Program.BLT,
            funding_source=FundingSource.DBHCHT, amount_per_family=300_000, budget_cap=19_000_500_000,
            village_quotas=(VillageQuota(village_code=VILLAGE, max_families=1200),),
            villages_without_quota=VillagesWithoutQuota.EXCLUDED, eligibility_rule_version="blt-eligibility@2",
            period_start=dt.date(2026, 11, 1),
            period_end=dt.date(2026, 12, 31), opened_by=OPERATOR.id,
        ),
    )


def _allocated() -> Event:
    return AidAllocated(
        producer="distribution", **_meta(11, Actor.system("distribution"), f"round:{ROUND_ID}", "import:42"),
        data=AidAllocatedData(allocation_id=ALLOCATION_ID, round_id=ROUND_ID, kk_number=KK, head_nik=HEAD_NIK,
                              recipient_name="Slamet Riyadi", village_code=VILLAGE, amount=300_000,
                              payout=PayoutTarget(method=PayoutMethod.COLLECTION_POINT,
                                                  reference="KANTOR-POS-BLIMBING"),
                              basis=_basis()),
    )


def _rejected() -> Event:
    return AidAllocationRejected(
        producer="distribution", **_meta(12, Actor.system("distribution"), f"round:{ROUND_ID}", "import:43"),
        data=AidAllocationRejectedData(round_id=ROUND_ID, kk_number=KK, village_code=VILLAGE,
                                       reason=RejectionReason.DUPLICATE_KK,
                                       detail="KK already allocated in this round (row 42)",
                                       basis=AllocationBasis(source=CandidateSource.IMPORT,
                                                             import_batch_id=IMPORT_BATCH_ID, import_row=43,
                                                             rule_set_version="blt-eligibility@2")),
    )


def _disbursed() -> Event:
    return AidDisbursed(
        producer="distribution", **_meta(13, Actor.system("distribution"), f"round:{ROUND_ID}", str(_uid(111))),
        data=AidDisbursedData(disbursement_id=_uid(9), allocation_id=ALLOCATION_ID, round_id=ROUND_ID, kk_number=KK,
                              amount=300_000, gateway="simulated", gateway_reference="SIM-000042", attempts=1,
                              disbursed_at=AT + dt.timedelta(hours=1)),
    )


def _disbursement_failed() -> Event:
    return DisbursementFailed(
        producer="distribution", **_meta(14, Actor.system("distribution"), f"round:{ROUND_ID}", str(_uid(111))),
        data=DisbursementFailedData(allocation_id=ALLOCATION_ID, round_id=ROUND_ID, kk_number=KK, amount=300_000,
                                    gateway="simulated", reason="gateway timeout after 3 attempts", attempts=3,
                                    final=True),
    )


def _round_closed() -> Event:
    return AidRoundClosed(
        producer="distribution", **{**_meta(15, OPERATOR, f"round:{ROUND_ID}", None), "village_code": None},
        data=AidRoundClosedData(
            round_id=ROUND_ID, closed_by=OPERATOR.id,
            totals=RoundTotals(allocated_count=2, allocated_amount=600_000, rejected_count=1,
                               rejected_by_reason={RejectionReason.DUPLICATE_KK: 1}, disbursed_count=2,
                               disbursed_amount=600_000, failed_count=0, budget_cap=19_000_500_000,
                               budget_remaining=18_999_900_000),
            reconciliation=Reconciliation(gateway_executed_count=2, gateway_executed_amount=600_000, matched=True),
        ),
    )


def _recipient() -> Recipient:
    return Recipient(kind=RecipientKind.RESIDENT, id="nikh:4e1c0a9b2f", address_masked="0812****7890")


def _notification_sent() -> Event:
    return NotificationSent(
        producer="notification",
        **_meta(16, Actor.system("notification"), f"round:{ROUND_ID}", str(_uid(113))),
        data=NotificationSentData(notification_id=_uid(10), source_event_id=_uid(113),
                                  source_event_type="AidDisbursed", recipient=_recipient(),
                                  channel=NotificationChannel.WHATSAPP, template_id="aid_disbursed",
                                  template_version=1, provider_message_id="wamid.HBgM0001", attempts=1,
                                  sent_at=AT + dt.timedelta(hours=1, minutes=1)),
    )


def _notification_failed() -> Event:
    return NotificationFailed(
        producer="notification",
        **_meta(17, Actor.system("notification"), f"case:{CASE_ID}", str(_uid(103))),
        data=NotificationFailedData(notification_id=_uid(11), source_event_id=_uid(103),
                                    source_event_type="ComplaintFiled", recipient=_recipient(),
                                    channel=NotificationChannel.WHATSAPP, template_id="complaint_receipt",
                                    template_version=1, reason=FailureReason.PROVIDER_ERROR,
                                    detail="HTTP 503 after 5 attempts", attempts=5),
    )


EXAMPLES: dict[str, Callable[[], Event]] = {
    "HouseholdRegistered": _household_registered,
    "HouseholdUpdated": _household_updated,
    "ComplaintFiled": _complaint_filed,
    "CaseOpened": _case_opened,
    "CaseAssessed": _case_assessed,
    "ReferralIssued": _referral_issued,
    "ReferralResolved": _referral_resolved,
    "CaseEscalated": _case_escalated,
    "EscalationAcknowledged": _escalation_acknowledged,
    "EscalationResolved": _escalation_resolved,
    "CaseClosed": _case_closed,
    "AidRoundOpened": _round_opened,
    "AidAllocated": _allocated,
    "AidAllocationRejected": _rejected,
    "AidDisbursed": _disbursed,
    "DisbursementFailed": _disbursement_failed,
    "AidRoundClosed": _round_closed,
    "NotificationSent": _notification_sent,
    "NotificationFailed": _notification_failed,
}


def example(event_type: str) -> Event:
    return EXAMPLES[event_type]()
