"""The contract registry: every published event type and version, and decoding raw bytes.

Decoding distinguishes three failures a consumer must dead-letter with a clear reason:
the body is not a JSON object; the (event_type, schema_version) is unknown to this
release; the payload does not satisfy the contract. A known version is read tolerantly
(``Contract.read``): fields this release does not know are ignored, at every depth, and a
value of an open enum it does not know is kept as an unknown member.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from ..topology import Topology
from .distribution import (
    AidAllocated,
    AidAllocationRejected,
    AidDisbursed,
    AidRoundClosed,
    AidRoundOpened,
    DisbursementFailed,
)
from .envelope import Event
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

EVENT_TYPES: tuple[type[Event], ...] = (
    HouseholdRegistered,
    HouseholdUpdated,
    ComplaintFiled,
    CaseOpened,
    CaseAssessed,
    ReferralIssued,
    ReferralResolved,
    CaseEscalated,
    EscalationAcknowledged,
    EscalationResolved,
    CaseClosed,
    AidRoundOpened,
    AidAllocated,
    AidAllocationRejected,
    AidDisbursed,
    DisbursementFailed,
    AidRoundClosed,
    NotificationSent,
    NotificationFailed,
)


def _key(model: type[Event]) -> tuple[str, int]:
    fields = model.model_fields
    return fields["event_type"].default, fields["schema_version"].default


_BY_KEY: dict[tuple[str, int], type[Event]] = {_key(m): m for m in EVENT_TYPES}
if len(_BY_KEY) != len(EVENT_TYPES):  # pragma: no cover - a programming error caught at import
    raise RuntimeError("two event models share an (event_type, schema_version)")


class InvalidMessage(Exception):
    """A message no retry can fix; it belongs in the dead-letter stream with ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnknownEventVersion(InvalidMessage):
    pass


def event_key(model: type[Event]) -> tuple[str, int]:
    """(event_type, schema_version) of an event model."""
    return _key(model)


def model_for(event_type: str, schema_version: int) -> type[Event]:
    try:
        return _BY_KEY[(event_type, schema_version)]
    except KeyError:
        known = sorted(v for (t, v) in _BY_KEY if t == event_type)
        if known:
            raise UnknownEventVersion(
                f"unknown schema_version {schema_version} of {event_type}; this release reads {known}"
            ) from None
        raise UnknownEventVersion(f"unknown event_type {event_type!r}") from None


def subject_for(model: type[Event] | Event, topology: Topology) -> str:
    cls = model if isinstance(model, type) else type(model)
    _, version = _key(cls)
    return topology.event_subject(cls.PRODUCER, cls.SUBJECT_NAME, version)


def subjects_for(models: Iterable[type[Event]], topology: Topology) -> list[str]:
    return [subject_for(m, topology) for m in models]


def describe_validation_error(exc: ValidationError) -> str:
    """Field-level detail without echoing input values (they may be personal data)."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def decode_event(body: bytes, expected: Iterable[type[Event]] | None = None) -> Event:
    """Parses raw bytes into the right event model (as a tolerant reader), or raises ``InvalidMessage``."""
    try:
        raw: Any = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidMessage(f"malformed JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise InvalidMessage(f"an event is a JSON object, got {type(raw).__name__}")
    event_type, version = raw.get("event_type"), raw.get("schema_version")
    if not isinstance(event_type, str) or not isinstance(version, int) or isinstance(version, bool):
        raise InvalidMessage("missing or mistyped envelope fields event_type (string) / schema_version (integer)")
    model = model_for(event_type, version)
    if expected is not None and model not in tuple(expected):
        raise InvalidMessage(f"{event_type} v{version} is not consumed here")
    try:
        return model.read(raw)
    except ValidationError as exc:
        raise InvalidMessage(f"{event_type} v{version} does not match its contract: "
                             f"{describe_validation_error(exc)}") from None
