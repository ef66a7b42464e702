"""What the audit index keeps about each logged message (pure).

From the raw bytes of a message: the envelope (if it is an event), the *links* to the events
it came from (``causation_id``, an allocation's assessment, a notification's source event),
and the *entity keys* it concerns (``case:<id>``, ``allocation:<id>``...). Keys that would
carry personal data (NIK, KK number, a correlation id that is not a plain entity id) are
keyed hashes (HMAC-SHA256 with the audit index key): the index never holds them in the clear.

A message that is not a valid event is still indexed by sequence (and by its ``Nats-Msg-Id``
header), with the reason it could not be decoded.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from puskesos_shared.contracts.registry import InvalidMessage, decode_event

#: Entity kinds; the event type that *originates* each one (its first, defining event).
ORIGINS: dict[str, str] = {
    "household": "HouseholdRegistered",
    "complaint": "ComplaintFiled",
    "case": "CaseOpened",
    "assessment": "CaseAssessed",
    "referral": "ReferralIssued",
    "round": "AidRoundOpened",
    "allocation": "AidAllocated",
    "disbursement": "AidDisbursed",
    "notification": "NotificationSent",
    "kk": "HouseholdRegistered",  # a family card's first registration
}
#: Kinds whose events are few enough to walk down from their origin in a trace.
NARROW_KINDS = frozenset({"household", "complaint", "case", "assessment", "referral", "allocation",
                          "disbursement"})
#: Kinds with too many events to list (an aid round); they keep an origin and are not in ``index_keys``.
WIDE_KINDS = frozenset({"round", "notification"})
#: Decisions: events that record inputs and a rule version.
DECISIONS = frozenset({"CaseAssessed", "AidAllocated", "AidAllocationRejected"})

_ENTITY_CORRELATION = re.compile(
    r"^(household|complaint|case|assessment|referral|round|allocation|disbursement):"
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_ID_FIELDS = {
    "household_id": "household", "complaint_id": "complaint", "case_id": "case", "assessment_id": "assessment",
    "referral_id": "referral", "round_id": "round", "allocation_id": "allocation",
    "disbursement_id": "disbursement", "notification_id": "notification",
}
_NIK_FIELDS = ("nik", "head_nik", "subject_nik", "transferred_nik")
_KK_FIELDS = ("kk_number", "counterpart_kk")


def keyed_hash(index_key: bytes, kind: str, value: str) -> str:
    """The index form of a personal identifier: HMAC-SHA256(key, "kind:value"), 32 hex digits."""
    return hmac.new(index_key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()[:32]


def nik_key(index_key: bytes, nik: str) -> str:
    return f"nik:{keyed_hash(index_key, 'nik', nik)}"


def kk_key(index_key: bytes, kk: str) -> str:
    return f"kk:{keyed_hash(index_key, 'kk', kk)}"


@dataclass(frozen=True, slots=True)
class Extracted:
    """The index facts of one message."""

    event_id: str | None
    event_type: str | None
    schema_version: int | None
    error: str | None = None
    envelope: dict[str, Any] = field(default_factory=dict)
    parents: tuple[tuple[str, str], ...] = ()  # (event id or command id, relation)
    keys: tuple[str, ...] = ()  # entity keys this message concerns
    origin_of: tuple[str, ...] = ()  # entity keys this message defines

    @property
    def decoded(self) -> bool:
        return self.error is None


def _walk(value: Any) -> Iterable[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield str(k), v
            yield from _walk(v)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _walk(item)


def _entity_keys(data: Mapping[str, Any], index_key: bytes) -> list[str]:
    keys: list[str] = []
    for name, value in _walk(data):
        if not isinstance(value, str) or not value:
            continue
        if name in _ID_FIELDS:
            keys.append(f"{_ID_FIELDS[name]}:{value}")
        elif name in _NIK_FIELDS:
            keys.append(nik_key(index_key, value))
        elif name in _KK_FIELDS:
            keys.append(kk_key(index_key, value))
    return keys


def _parents(envelope: Mapping[str, Any], data: Mapping[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if envelope.get("causation_id"):
        out.append((str(envelope["causation_id"]), "caused_by"))
    basis = data.get("basis")
    if isinstance(basis, Mapping) and basis.get("assessment_event_id"):
        out.append((str(basis["assessment_event_id"]), "based_on"))
    if data.get("source_event_id"):
        out.append((str(data["source_event_id"]), "notifies"))
    seen: set[str] = set()
    unique = []
    for parent, relation in out:
        if parent not in seen:
            seen.add(parent)
            unique.append((parent, relation))
    return unique


def extract(body: bytes, headers: Mapping[str, str], index_key: bytes) -> Extracted:
    """Index facts of a message; never raises (a bad message is indexed with its error)."""
    try:
        event = decode_event(body)
    except InvalidMessage as exc:
        return Extracted(event_id=headers.get("Nats-Msg-Id"), event_type=headers.get("Puskesos-Event-Type"),
                         schema_version=None, error=exc.reason)
    doc = json.loads(body)  # the payload as sent (decode_event validated it)
    data: Mapping[str, Any] = doc.get("data") or {}
    envelope = {k: v for k, v in doc.items() if k != "data"}
    keys = _entity_keys(data, index_key)
    correlation = str(event.correlation_id)
    if _ENTITY_CORRELATION.fullmatch(correlation):
        keys.append(correlation)
    else:
        keys.append(f"corr:{keyed_hash(index_key, 'corr', correlation)}")
    unique = list(dict.fromkeys(keys))
    origin_of = tuple(k for k in unique if ORIGINS.get(k.split(":", 1)[0]) == event.event_type)
    return Extracted(event_id=str(event.event_id), event_type=event.event_type,
                     schema_version=event.schema_version, envelope=envelope,
                     parents=tuple(_parents(envelope, data)), keys=tuple(unique), origin_of=origin_of)
