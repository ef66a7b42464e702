"""Event contracts: one frozen pydantic model per event and version.

``registry`` lists them all; ``schemas/`` beside the package holds the generated JSON
Schemas, examples and the AsyncAPI document (``puskesos contracts generate``).
"""

from .distribution import (
    AidAllocated,
    AidAllocationRejected,
    AidDisbursed,
    AidRoundClosed,
    AidRoundOpened,
    DisbursementFailed,
)
from .envelope import Actor, ActorKind, Contract, Event, EventMeta, OpenEnum
from .intake import ComplaintFiled, HouseholdRegistered, HouseholdUpdated
from .notification import NotificationFailed, NotificationSent
from .referral import (
    CaseAssessed,
    CaseClosed,
    CaseEscalated,
    CaseOpened,
    EscalationAcknowledged,
    EscalationResolved,
    ReferralIssued,
    ReferralResolved,
)
from .registry import EVENT_TYPES, InvalidMessage, UnknownEventVersion, decode_event, model_for, subject_for

__all__ = [
    "EVENT_TYPES",
    "Actor",
    "ActorKind",
    "AidAllocated",
    "AidAllocationRejected",
    "AidDisbursed",
    "AidRoundClosed",
    "AidRoundOpened",
    "CaseAssessed",
    "CaseClosed",
    "CaseEscalated",
    "CaseOpened",
    "ComplaintFiled",
    "Contract",
    "DisbursementFailed",
    "EscalationAcknowledged",
    "EscalationResolved",
    "Event",
    "EventMeta",
    "HouseholdRegistered",
    "HouseholdUpdated",
    "InvalidMessage",
    "NotificationFailed",
    "NotificationSent",
    "OpenEnum",
    "ReferralIssued",
    "ReferralResolved",
    "UnknownEventVersion",
    "decode_event",
    "model_for",
    "subject_for",
]
