"""Events of the referral (case management) service: cases, assessments, referrals, escalation.

An escalation (``CaseEscalated``: the SLA sweep or a second rejection moved the case up a level)
is acted on at the level it reached: the kecamatan coordinator (TKSK) or the Dinas Sosial takes
it on (``EscalationAcknowledged``) and resolves it (``EscalationResolved``), either returning the
case to the village officers with instructions and a new deadline, or handling it at that level.
"""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import AwareDatetime, Field

from .envelope import Contract, Event, OpenEnum
from .intake import ComplaintCategory, Urgency
from .primitives import (
    NIK,
    KKNumber,
    LongText,
    PmksCategory,
    Program,
    Sha256Hex,
    ShortText,
    VillageCode,
    personal,
)


class CaseOpenedData(Contract):
    case_id: uuid.UUID
    complaint_id: uuid.UUID
    case_number: str = Field(pattern=r"^[0-9]{10}/[0-9]{4}/[0-9]{5,}$")
    category: ComplaintCategory
    urgency: Urgency
    village_code: VillageCode
    subject_nik: NIK | None = None
    kk_number: KKNumber | None = None
    opened_at: AwareDatetime
    sla_due_on: dt.date = Field(description="Last working day (lokal-id holidays) to resolve the case")
    sla_working_days: int = Field(ge=0, le=60)


class ProgramEligibility(Contract):
    program: Program
    eligible: bool
    reasons: tuple[str, ...] = Field(default=(), description="Why the rules decided so, in order")


class AssessmentResult(Contract):
    pmks_category: PmksCategory
    vulnerability_score: float = Field(ge=0, le=100)
    eligibility: tuple[ProgramEligibility, ...] = Field(min_length=1)


class CaseAssessedData(Contract):
    case_id: uuid.UUID
    assessment_id: uuid.UUID
    assessed_by: str = Field(min_length=1, max_length=100)
    kk_number: KKNumber | None = None
    result: AssessmentResult
    rule_set_version: str = Field(pattern=r"^[a-z0-9_.-]+@[0-9]+$", examples=["assessment@3"])
    inputs: dict[str, Any] = Field(
        description="Snapshot of every input the rules read (observations and household data)",
        json_schema_extra=personal(),  # any household data, free-form
    )
    inputs_digest: Sha256Hex = Field(description="SHA-256 of the canonical JSON of `inputs`")


class ReferralTargetKind(StrEnum):
    PROGRAM = "program"
    HOSPITAL = "hospital"
    REHABILITATION = "rehabilitation"
    DINAS_SOSIAL = "dinas_sosial"


class ReferralTarget(Contract):
    kind: ReferralTargetKind
    code: str = Field(min_length=1, max_length=50, examples=["RSD-SOEBANDI"])
    name: ShortText
    program: Program | None = None


class ReferralIssuedData(Contract):
    referral_id: uuid.UUID
    referral_number: str = Field(min_length=1, max_length=50, examples=["RJK/3573011001/2026/00001"])
    case_id: uuid.UUID
    assessment_id: uuid.UUID | None = None
    target: ReferralTarget
    issued_by: str = Field(min_length=1, max_length=100)
    due_on: dt.date
    instructions: str = Field(default="", max_length=2000, description="Where to go, what to bring",
                              json_schema_extra=personal())


class ReferralOutcome(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    COMPLETED = "completed"


class ReferralResolvedData(Contract):
    referral_id: uuid.UUID
    case_id: uuid.UUID
    outcome: ReferralOutcome
    note: str = Field(default="", max_length=2000, json_schema_extra=personal())
    responded_by: str = Field(min_length=1, max_length=100, description="The target system or its officer")
    responded_at: AwareDatetime


class EscalationLevel(StrEnum):
    VILLAGE = "village"  # the Puskesos officers
    KECAMATAN = "kecamatan"  # TKSK coordinator
    DINAS_SOSIAL = "dinas_sosial"


class CaseEscalatedData(Contract):
    case_id: uuid.UUID
    from_level: EscalationLevel
    to_level: EscalationLevel
    reason: ShortText
    sla_due_on: dt.date
    overdue_working_days: int = Field(ge=0)


class EscalationAcknowledgedData(Contract):
    case_id: uuid.UUID
    level: EscalationLevel = Field(description="The level the case was escalated to, whose officer takes it on")
    escalation_event_id: uuid.UUID = Field(description="The CaseEscalated event acknowledged")
    acknowledged_by: str = Field(min_length=1, max_length=100, description="The officer id")
    acknowledged_at: AwareDatetime
    note: str = Field(default="", max_length=2000, json_schema_extra=personal())


class EscalationAction(OpenEnum):
    """How an escalation was resolved (open: a reader keeps an action it does not know, and reads
    the case's level and deadline from ``level_after`` and ``due_on``)."""

    RETURNED_TO_VILLAGE = "returned_to_village"  # back to the village officers, with instructions and a deadline
    HANDLED_AT_LEVEL = "handled_at_level"  # the coordinator (or the Dinas Sosial) handles the case itself


class EscalationResolvedData(Contract):
    case_id: uuid.UUID
    level: EscalationLevel = Field(description="The level whose escalation is resolved")
    escalation_event_id: uuid.UUID = Field(description="The CaseEscalated event resolved")
    action: EscalationAction
    resolved_by: str = Field(min_length=1, max_length=100, description="The officer id")
    resolved_at: AwareDatetime
    note: LongText = Field(description="Instructions to the village, or what the level does",
                           json_schema_extra=personal())
    level_after: EscalationLevel = Field(description="The level the case is at after the resolution")
    due_on: dt.date = Field(description="The case's deadline at level_after (lokal-id working days); past it, "
                                        "the case escalates again (nothing goes above the Dinas Sosial)")


class CaseResolution(StrEnum):
    RESOLVED = "resolved"
    REFERRED_AND_COMPLETED = "referred_and_completed"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


class CaseClosedData(Contract):
    case_id: uuid.UUID
    resolution: CaseResolution
    reason: LongText = Field(json_schema_extra=personal())
    closed_by: str = Field(min_length=1, max_length=100)
    closed_at: AwareDatetime


class CaseOpened(Event):
    PRODUCER: ClassVar[str] = "referral"
    SUBJECT_NAME: ClassVar[str] = "case_opened"
    event_type: Literal["CaseOpened"] = "CaseOpened"
    schema_version: Literal[1] = 1
    data: CaseOpenedData


class CaseAssessed(Event):
    PRODUCER: ClassVar[str] = "referral"
    SUBJECT_NAME: ClassVar[str] = "case_assessed"
    event_type: Literal["CaseAssessed"] = "CaseAssessed"
    schema_version: Literal[1] = 1
    data: CaseAssessedData


class ReferralIssued(Event):
    PRODUCER: ClassVar[str] = "referral"
    SUBJECT_NAME: ClassVar[str] = "referral_issued"
    event_type: Literal["ReferralIssued"] = "ReferralIssued"
    schema_version: Literal[1] = 1
    data: ReferralIssuedData


class ReferralResolved(Event):
    PRODUCER: ClassVar[str] = "referral"
    SUBJECT_NAME: ClassVar[str] = "referral_resolved"
    event_type: Literal["ReferralResolved"] = "ReferralResolved"
    schema_version: Literal[1] = 1
    data: ReferralResolvedData


class CaseEscalated(Event):
    PRODUCER: ClassVar[str] = "referral"
    SUBJECT_NAME: ClassVar[str] = "case_escalated"
    event_type: Literal["CaseEscalated"] = "CaseEscalated"
    schema_version: Literal[1] = 1
    data: CaseEscalatedData


class CaseClosed(Event):
    PRODUCER: ClassVar[str] = "referral"
    SUBJECT_NAME: ClassVar[str] = "case_closed"
    event_type: Literal["CaseClosed"] = "CaseClosed"
    schema_version: Literal[1] = 1
    data: CaseClosedData


class EscalationAcknowledged(Event):
    PRODUCER: ClassVar[str] = "referral"
    SUBJECT_NAME: ClassVar[str] = "escalation_acknowledged"
    event_type: Literal["EscalationAcknowledged"] = "EscalationAcknowledged"
    schema_version: Literal[1] = 1
    data: EscalationAcknowledgedData


class EscalationResolved(Event):
    PRODUCER: ClassVar[str] = "referral"
    SUBJECT_NAME: ClassVar[str] = "escalation_resolved"
    event_type: Literal["EscalationResolved"] = "EscalationResolved"
    schema_version: Literal[1] = 1
    data: EscalationResolvedData
