"""Finding a household: masked by default; unmasked only as an explicit, logged action (a reveal).

``POST /households/search`` with ``{"nik": ...}`` or ``{"kk": ...}`` in the body (never in the URL:
URLs are logged) answers the household with its personal data masked by lokal-id's helpers
(``partial_mask``: NIK and KK ``3573********0417``, names ``S*** R***``, phone ``0812****7890``,
street ``Jl. ***``; birth dates, RT and RW ``***``; identity numbers and names inside the free-text
occupation masked; NIK warnings reduced to their code and field, since their message quotes the
birth date). Any officer whose scope covers the household's village may search.

With ``"reveal": true`` and a ``purpose`` (at least 5 characters) the record comes back unmasked.
Only the back office, the front office and the kecamatan coordinator may reveal, within their
scope (``REVEAL_ROLES``). Every reveal is written to the access log (``access_log``: who with role,
when, the KK's keyed hash, the purpose, the outcome) *before* the answer is sent; a refused reveal
(another role, a household outside the scope) is written too, then refused (403).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal, Self

from lokal import mask_pii, partial_mask
from puskesos_shared.auth import forbidden_role, outside_scope
from puskesos_shared.contracts.intake import Disability, Household, Member, Relationship, SocioEconomic
from puskesos_shared.contracts.primitives import NIK, KKNumber, OfficerRole, Sex
from puskesos_shared.regions import village_name
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from .access_log import REVEAL, record_access
from .context import Caller, Context, log
from .registry import HouseholdRecord, HouseholdRegistry

REVEAL_ROLES = (OfficerRole.BACK_OFFICE, OfficerRole.FRONT_OFFICE, OfficerRole.COORDINATOR)
HIDDEN = "***"


class HouseholdSearch(BaseModel):
    """Exactly one of ``nik`` (the household the person is a member of now) and ``kk``; ``reveal`` with a
    ``purpose`` for the unmasked record."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    nik: NIK | None = None
    kk: KKNumber | None = None
    reveal: bool = Field(default=False, description="Answer the unmasked record (recorded in the access log)")
    purpose: str | None = Field(default=None, min_length=5, max_length=500, validate_default=True,
                                description="Why the personal data is needed; required with reveal: true")

    @field_validator("purpose")
    @classmethod
    def _purpose_with_reveal(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            value = value.strip()
            if len(value) < 5:
                raise ValueError("the purpose needs at least 5 characters besides spaces")
        if value is None and info.data.get("reveal"):
            raise ValueError("a reveal needs a purpose (at least 5 characters)")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.nik is None) == (self.kk is None):
            raise ValueError("give exactly one of nik and kk")
        return self


class MaskedMember(BaseModel):
    nik: str
    name: str
    birth_date: str
    sex: Sex
    relationship: Relationship
    disability: Disability
    occupation: str


class MaskedAddress(BaseModel):
    village_code: str
    village_name: str | None
    street: str
    rt: str
    rw: str


class MaskedHousehold(BaseModel):
    kk_number: str
    address: MaskedAddress
    members: tuple[MaskedMember, ...]
    socio_economic: SocioEconomic
    phone: str | None


class MaskedWarning(BaseModel):
    """A NIK warning without its message (the message quotes the birth date)."""

    code: str
    field: str


class MaskedHouseholdRecord(BaseModel):
    """The household as a search answers it by default: personal data masked."""

    model_config = ConfigDict(frozen=True)

    masked: Literal[True] = True
    household_id: uuid.UUID
    kk_number: str
    revision: int
    household: MaskedHousehold
    warnings: tuple[MaskedWarning, ...] = ()
    updated_at: dt.datetime


class RevealedHouseholdRecord(HouseholdRecord):
    """The unmasked household; ``access_id`` is the access log entry that records this reveal."""

    masked: Literal[False] = False
    access_id: uuid.UUID


def _hidden(value: str) -> str:
    return HIDDEN if value else ""


def masked_member(member: Member) -> MaskedMember:
    return MaskedMember(
        nik=partial_mask("NIK", member.nik), name=partial_mask("NAME", member.name),
        birth_date=partial_mask("BIRTH_DATE", member.birth_date.isoformat()), sex=member.sex,
        relationship=member.relationship, disability=member.disability,
        occupation=mask_pii(member.occupation, mode="partial").text if member.occupation else "",
    )


def masked_household(household: Household) -> MaskedHousehold:
    address = household.address
    return MaskedHousehold(
        kk_number=partial_mask("KK", household.kk_number),
        address=MaskedAddress(village_code=address.village_code, village_name=village_name(address.village_code),
                              street=partial_mask("ADDRESS", address.street) if address.street else "",
                              rt=_hidden(address.rt), rw=_hidden(address.rw)),
        members=tuple(masked_member(m) for m in household.members),
        socio_economic=household.socio_economic,
        phone=partial_mask("PHONE", household.phone) if household.phone else None,
    )


def masked_record(record: HouseholdRecord) -> MaskedHouseholdRecord:
    return MaskedHouseholdRecord(
        household_id=record.household_id, kk_number=partial_mask("KK", record.kk_number), revision=record.revision,
        household=masked_household(record.household),
        warnings=tuple(MaskedWarning(code=w.code, field=w.field) for w in record.warnings),
        updated_at=record.updated_at,
    )


class HouseholdLookup:
    def __init__(self, ctx: Context, registry: HouseholdRegistry) -> None:
        self.ctx, self.registry = ctx, registry

    async def search(self, body: HouseholdSearch, caller: Caller) -> MaskedHouseholdRecord | RevealedHouseholdRecord:
        if body.nik is not None:
            record = await self.registry.find_by_nik(body.nik)
        else:
            assert body.kk is not None
            record = await self.registry.find(body.kk)
        village = record.household.address.village_code
        if not body.reveal:
            caller.require(village)
            return masked_record(record)
        assert body.purpose is not None
        if caller.actor.role not in REVEAL_ROLES:
            outcome, refusal = "refused_role", forbidden_role(REVEAL_ROLES)
        elif not caller.covers(village):
            outcome, refusal = "outside_scope", outside_scope()
        else:
            outcome, refusal = "revealed", None
        access_id = uuid.uuid4()
        entry = {
            "_id": str(access_id), "kind": REVEAL, "access_id": str(access_id),
            "kk_hash": self.ctx.niks.kk_key(record.kk_number),
            "nik_hash": self.ctx.niks.key(body.nik) if body.nik is not None else None,
            "searched_by": "nik" if body.nik is not None else "kk", "household_id": str(record.household_id),
            "revision": record.revision, "village_code": village, "at": self.ctx.clock(),
            "requested_by": caller.actor.model_dump(mode="json"), "channel": "http", "outcome": outcome,
            "purpose": body.purpose,
        }
        await record_access(self.ctx, entry, what="reveal")
        log.info("household_reveal", access_id=str(access_id), officer=caller.actor.id,
                 role=caller.actor.role.value if caller.actor.role else None, outcome=outcome)
        if refusal is not None:
            raise refusal
        return RevealedHouseholdRecord.model_validate({**record.model_dump(), "access_id": access_id})
