"""Complaints' pure rules: the filing request, case numbers, the ComplaintFiled event.

Correlation: ComplaintFiled carries ``correlation_id = "complaint:{complaint_id}"``; the referral
service opens the case under its own ``case:{case_id}`` correlation and names the complaint in
CaseOpened (``complaint_id``), so the audit trail links the two.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from lokal import normalize_phone
from puskesos_shared.canonical import digest
from puskesos_shared.contracts.envelope import Actor
from puskesos_shared.contracts.intake import (
    Complainant,
    ComplaintCategory,
    ComplaintChannel,
    ComplaintFiled,
    ComplaintFiledData,
    Urgency,
)
from puskesos_shared.contracts.primitives import LongText, VillageCode
from puskesos_shared.ids import stable_id
from puskesos_shared.regions import district_of, regency_of, village_digits
from pydantic import BaseModel, ConfigDict, Field, field_validator

#: Provinces on Central (WITA, UTC+8) and Eastern (WIT, UTC+9) Indonesia Time; the rest is on WIB (UTC+7).
_WITA = {"51", "52", "53", "63", "64", "65", "71", "72", "73", "74", "75", "76"}
_WIT = {"81", "82", "91", "92", "93", "94", "95", "96", "97"}
MIN_SEQUENCE_DIGITS = 5


class ComplainantInput(Complainant):
    """The complainant as a client sends it: the phone may be in any Indonesian form (08…, 62…, +62…)."""

    @field_validator("contact_phone", mode="before")
    @classmethod
    def _normalize_phone(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        normalized = normalize_phone(value)
        if normalized is None:
            raise ValueError("invalid phone number (expected an Indonesian number: 08…, 62… or +62…)")
        return normalized

    def contract(self) -> Complainant:
        return Complainant.model_validate(self.model_dump())


class ComplaintRequest(BaseModel):
    """What the front office records when a resident complains (the officer comes from the token)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    category: ComplaintCategory
    channel: ComplaintChannel
    urgency: Urgency = Urgency.NORMAL
    description: LongText
    village_code: VillageCode
    complainant: ComplainantInput

    def digest(self) -> str:
        """Fingerprint of the request, to recognise an idempotency key reused for another complaint."""
        return digest(self.model_dump(mode="json"))


class StoredComplaint(BaseModel):
    """A filed complaint as stored (one document, written once together with its case number)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    complaint_id: uuid.UUID
    case_number: str
    village_year: str
    sequence: int = Field(ge=1)
    category: ComplaintCategory
    channel: ComplaintChannel
    urgency: Urgency
    description: str
    complainant: Complainant
    village_code: str
    filed_by: str
    actor: Actor
    filed_at: dt.datetime
    request_digest: str


def complaint_id_for(actor_id: str, idempotency_key: str | None) -> uuid.UUID:
    """Deterministic for a client's idempotency key (scoped to the caller), random without one."""
    if idempotency_key:
        return stable_id("complaint", actor_id, idempotency_key)
    return uuid.uuid4()


def local_zone(village_code: str) -> dt.timezone:
    province = village_code[:2]
    hours = 9 if province in _WIT else 8 if province in _WITA else 7
    return dt.timezone(dt.timedelta(hours=hours))


def case_year(village_code: str, filed_at: dt.datetime) -> int:
    """The year of the case number is the year on the village's local clock at filing."""
    return filed_at.astimezone(local_zone(village_code)).year


def village_year(village_code: str, filed_at: dt.datetime) -> str:
    return f"{village_digits(village_code)}/{case_year(village_code, filed_at)}"


def format_case_number(vy: str, sequence: int) -> str:
    return f"{vy}/{sequence:0{MIN_SEQUENCE_DIGITS}d}"


def complaint_filed_event_id(complaint_id: uuid.UUID) -> uuid.UUID:
    return stable_id("complaint-filed", complaint_id)


def build_complaint(*, complaint_id: uuid.UUID, request: ComplaintRequest, complainant: Complainant,
                    actor: Actor, filed_at: dt.datetime, sequence: int) -> StoredComplaint:
    vy = village_year(request.village_code, filed_at)
    return StoredComplaint(
        complaint_id=complaint_id, case_number=format_case_number(vy, sequence), village_year=vy,
        sequence=sequence, category=request.category, channel=request.channel, urgency=request.urgency,
        description=request.description, complainant=complainant, village_code=request.village_code,
        filed_by=actor.id, actor=actor, filed_at=filed_at, request_digest=request.digest(),
    )


def complaint_filed(complaint: StoredComplaint) -> ComplaintFiled:
    """The event of a filed complaint: everything in it follows from the stored complaint (same id on replay)."""
    return ComplaintFiled(
        event_id=complaint_filed_event_id(complaint.complaint_id), occurred_at=complaint.filed_at,
        producer="intake", correlation_id=f"complaint:{complaint.complaint_id}", causation_id=None,
        actor=complaint.actor, village_code=complaint.village_code,
        data=ComplaintFiledData(
            complaint_id=complaint.complaint_id, case_number=complaint.case_number, category=complaint.category,
            channel=complaint.channel, urgency=complaint.urgency, description=complaint.description,
            complainant=complaint.complainant, village_code=complaint.village_code,
            filed_by=complaint.filed_by, filed_at=complaint.filed_at,
        ),
    )


def scope_fields(village_code: str) -> dict[str, str]:
    """Fields that let a listing filter by an officer's scope (village, kecamatan or regency codes)."""
    return {"village_code": village_code, "district_code": district_of(village_code),
            "regency_code": regency_of(village_code)}
