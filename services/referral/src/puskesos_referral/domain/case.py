"""The case aggregate: its state (one document per case) and the records it keeps.

Lifecycle::

    open ──assess──> assessed ──refer──> referred ──accepted──> referral_accepted
      ^                 ^  │                │  └──────completed──────┐     │ completed
      │                 │  │                └─rejected─┐             v     v
      │       assess    │  │                           v        referral_completed
      └─────────── needs_reassessment <────rejected────┘ (from referred or accepted)

    any state but closed ──close──> closed

A rejection sends the case back to ``needs_reassessment``; the second rejection on one case
also escalates it one level at once (the referral path is not working; a coordinator must
look).

Escalations (``EscalationRecord``, one per level reached, in order) are acted on at the level
they reached: the latest one is ``open`` until the level's officer acknowledges it
(``acknowledged``), and ``resolved`` once that officer returns the case to the village (level
back to village, a new deadline there: past it the case escalates again) or handles it at the
level; closing the case resolves an escalation left open (action ``case_closed``), and so does the
next escalation (``escalated_further``). The status of
a case (above) is independent of its escalation.

A closed case accepts nothing further. ``version`` grows by one on every change and guards every
write (optimistic concurrency; several replicas may handle one case).
"""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum
from typing import TypedDict

from puskesos_shared.contracts.envelope import Actor
from puskesos_shared.contracts.intake import ComplaintCategory, Urgency
from puskesos_shared.contracts.referral import (
    CaseAssessed,
    CaseResolution,
    EscalationLevel,
    ReferralOutcome,
    ReferralTarget,
)
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class CaseStatus(StrEnum):
    OPEN = "open"
    ASSESSED = "assessed"
    REFERRED = "referred"
    REFERRAL_ACCEPTED = "referral_accepted"
    REFERRAL_COMPLETED = "referral_completed"
    NEEDS_REASSESSMENT = "needs_reassessment"
    CLOSED = "closed"


#: Every status of a case still being worked on (lists and the escalation sweep select these).
OPEN_STATUSES = tuple(status for status in CaseStatus if status is not CaseStatus.CLOSED)


class ReferralStatus(StrEnum):
    ISSUED = "issued"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    COMPLETED = "completed"
    WITHDRAWN = "withdrawn"  # the case was closed as withdrawn while the referral was pending


PENDING_REFERRAL = frozenset({ReferralStatus.ISSUED, ReferralStatus.ACCEPTED})


class CaseRuleError(Exception):
    """A command the case's current state does not allow; ``code`` is stable, ``status`` an HTTP status."""

    def __init__(self, code: str, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


class AssessmentRecord(BaseModel):
    model_config = _FROZEN
    assessment_id: uuid.UUID
    event: CaseAssessed  # the decision as published: inputs, digest, rule-set version, result
    note: str = ""


class ResponseRecord(BaseModel):
    model_config = _FROZEN
    outcome: ReferralOutcome
    note: str
    responded_by: str
    responded_at: AwareDatetime
    event_id: uuid.UUID


class ReferralRecord(BaseModel):
    model_config = _FROZEN
    referral_id: uuid.UUID
    referral_number: str
    target: ReferralTarget
    assessment_id: uuid.UUID | None
    issued_by: str
    issued_at: AwareDatetime
    due_on: dt.date
    instructions: str
    status: ReferralStatus = ReferralStatus.ISSUED
    responses: tuple[ResponseRecord, ...] = ()


class EscalationStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


#: Resolutions that are no ``EscalationAction``: an escalation left open when its case was closed, or
#: when the case went on to the next level.
CASE_CLOSED_ACTION = "case_closed"
ESCALATED_FURTHER_ACTION = "escalated_further"


class EscalationAcknowledgement(BaseModel):
    model_config = _FROZEN
    by: str
    role: str | None = None
    at: AwareDatetime
    note: str = ""
    event_id: uuid.UUID


class EscalationResolution(BaseModel):
    model_config = _FROZEN
    by: str
    role: str | None = None
    at: AwareDatetime
    action: str  # an EscalationAction value, CASE_CLOSED_ACTION or ESCALATED_FURTHER_ACTION
    note: str = ""
    level_after: EscalationLevel
    due_on: dt.date | None = None  # the deadline at level_after (None when the case was closed)
    event_id: uuid.UUID


class EscalationRecord(BaseModel):
    model_config = _FROZEN
    from_level: EscalationLevel
    to_level: EscalationLevel
    reason: str
    escalated_at: AwareDatetime
    missed_due_on: dt.date
    event_id: uuid.UUID
    acknowledgement: EscalationAcknowledgement | None = None
    resolution: EscalationResolution | None = None

    @property
    def status(self) -> EscalationStatus:
        if self.resolution is not None:
            return EscalationStatus.RESOLVED
        return EscalationStatus.OPEN if self.acknowledgement is None else EscalationStatus.ACKNOWLEDGED


class Closure(BaseModel):
    model_config = _FROZEN
    resolution: CaseResolution
    reason: str
    closed_by: str
    closed_at: AwareDatetime
    closed_on: dt.date  # local date at the village, for monthly evaluation
    within_sla: bool


class Case(BaseModel):
    model_config = _FROZEN
    case_id: uuid.UUID
    complaint_id: uuid.UUID
    case_number: str
    category: ComplaintCategory
    urgency: Urgency
    village_code: str
    kecamatan_code: str
    subject_nik: str | None = None
    kk_number: str | None = None
    opened_at: AwareDatetime
    opened_event_id: uuid.UUID
    complaint_event_id: uuid.UUID
    filed_on: dt.date
    sla_working_days: int
    sla_due_on: dt.date
    level: EscalationLevel = EscalationLevel.VILLAGE
    level_due_on: dt.date  # the deadline at the current level; past it, the case escalates
    status: CaseStatus = CaseStatus.OPEN
    version: int = Field(default=1, ge=1)
    assessments: tuple[AssessmentRecord, ...] = ()
    referrals: tuple[ReferralRecord, ...] = ()
    escalations: tuple[EscalationRecord, ...] = ()
    rejections: int = 0
    closure: Closure | None = None
    commands: tuple[str, ...] = ()  # ids of the commands already applied (idempotent retries)

    @property
    def correlation_id(self) -> str:
        return f"case:{self.case_id}"

    @property
    def latest_assessment(self) -> AssessmentRecord | None:
        return self.assessments[-1] if self.assessments else None

    @property
    def pending_referral(self) -> ReferralRecord | None:
        return next((r for r in self.referrals if r.status in PENDING_REFERRAL), None)

    @property
    def latest_escalation(self) -> EscalationRecord | None:
        return self.escalations[-1] if self.escalations else None

    @property
    def open_escalation(self) -> EscalationRecord | None:
        """The escalation awaiting action at the case's level (open or acknowledged), if any."""
        latest = self.latest_escalation
        if latest is None or latest.resolution is not None or latest.to_level is not self.level:
            return None
        return latest

    def referral(self, referral_id: uuid.UUID) -> ReferralRecord | None:
        return next((r for r in self.referrals if r.referral_id == referral_id), None)

    def applied(self, command_id: str) -> bool:
        return command_id in self.commands


class Envelope(TypedDict):
    event_id: uuid.UUID
    occurred_at: dt.datetime
    producer: str
    correlation_id: str
    causation_id: str | None
    actor: Actor
    village_code: str | None


def meta(case: Case, *, event_id: uuid.UUID, now: dt.datetime, causation: str | None, actor: Actor) -> Envelope:
    """Envelope fields of an event about ``case``."""
    return {"event_id": event_id, "occurred_at": now, "producer": "referral", "correlation_id": case.correlation_id,
            "causation_id": causation, "actor": actor, "village_code": case.village_code}
