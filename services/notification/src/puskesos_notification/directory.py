"""The officers' directory and opt-outs: requests and the operations both edges (NATS, HTTP) share."""

from __future__ import annotations

from typing import Annotated, Any

from puskesos_shared.contracts.primitives import OfficerRole
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from .domain import ContactKeys
from .formatting import mask_phone, whatsapp_number
from .store import MongoNotificationStore, OfficerContact

REGION_CODE = r"^[0-9]{2}\.[0-9]{2}(\.[0-9]{2}(\.[0-9]{4})?)?$"


def _mobile(value: str) -> str:
    normalised = whatsapp_number(value)
    if normalised is None:
        raise ValueError("not an Indonesian mobile number (WhatsApp/SMS need one)")
    return normalised


MobilePhone = Annotated[str, Field(min_length=6, max_length=30), AfterValidator(_mobile)]
RegionCode = Annotated[str, Field(pattern=REGION_CODE, description="Village, kecamatan or regency code")]


class Request(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OfficerEntry(Request):
    phone: MobilePhone
    role: OfficerRole
    scope: tuple[RegionCode, ...] = Field(min_length=1, max_length=300)
    active: bool = True


class OfficerUpsert(OfficerEntry):
    officer_id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")


class OfficerRemove(Request):
    officer_id: str = Field(min_length=1, max_length=100)


class OptOut(Request):
    phone: MobilePhone
    opted_out: bool = True


def parents(code: str) -> tuple[str, ...]:
    """A region code with its kecamatan and regency: ``35.73.01.1001`` → itself, ``35.73.01``, ``35.73``."""
    parts = code.split(".")
    return tuple(".".join(parts[:n]) for n in range(len(parts), 1, -1))


def within(code: str, scope: tuple[str, ...]) -> bool:
    return any(p in scope for p in parents(code))


def officer_view(officer: OfficerContact) -> dict[str, Any]:
    return {"officer_id": officer.officer_id, "phone_masked": mask_phone(officer.phone), "role": officer.role.value,
            "scope": list(officer.scope), "active": officer.active}


class DirectoryService:
    def __init__(self, store: MongoNotificationStore, keys: ContactKeys) -> None:
        self._store, self._keys = store, keys

    async def upsert_officer(self, req: OfficerUpsert) -> dict[str, Any]:
        officer = OfficerContact(officer_id=req.officer_id, phone=req.phone, role=req.role, scope=req.scope,
                                 active=req.active)
        await self._store.upsert_officer(officer)
        return officer_view(officer)

    async def remove_officer(self, req: OfficerRemove) -> dict[str, Any]:
        return {"officer_id": req.officer_id, "removed": await self._store.remove_officer(req.officer_id)}

    async def set_opt_out(self, req: OptOut) -> dict[str, Any]:
        await self._store.set_opt_out(self._keys.phone(req.phone), req.opted_out)
        return {"phone_masked": mask_phone(req.phone), "opted_out": req.opted_out}
