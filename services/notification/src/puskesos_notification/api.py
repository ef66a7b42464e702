"""HTTP edge for officers: the directory, opt-outs, delivery records and the template catalogue."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from puskesos_shared.auth import CurrentOfficer, outside_scope, require_role
from puskesos_shared.commands import CommandError
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.service import ServiceRuntime

from .directory import DirectoryService, OfficerEntry, OfficerRemove, OfficerUpsert, OptOut, officer_view, within
from .domain import DeliveryRecord
from .formatting import mask_phone
from .store import MongoNotificationStore
from .templates import TEMPLATES

router = APIRouter(prefix="/notifications", tags=["notifications"])
DIRECTORY_ROLES = (OfficerRole.COORDINATOR, OfficerRole.OPERATOR)
FRONT_ROLES = (OfficerRole.FRONT_OFFICE, OfficerRole.BACK_OFFICE, OfficerRole.ASSESSOR, OfficerRole.COORDINATOR,
               OfficerRole.OPERATOR)
#: The directory's officer ids (``OfficerUpsert.officer_id``): checked at the edge, so that an id the
#: directory cannot store is a 422 and not a validation error inside the handler (a 500).
OfficerId = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")]


def _runtime(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


def _store(request: Request) -> MongoNotificationStore:
    store: MongoNotificationStore = _runtime(request).state["store"]
    return store


def _directory(request: Request) -> DirectoryService:
    service: DirectoryService = _runtime(request).state["directory"]
    return service


def _record_view(record: DeliveryRecord) -> dict[str, Any]:
    n = record.notification
    return {
        "notification_id": str(n.notification_id), "state": record.state.value, "channel": record.channel.value,
        "source_event_id": str(n.source_event_id), "source_event_type": n.source_event_type,
        "recipient": n.recipient.model_dump(mode="json"), "template_id": n.template_id,
        "template_version": n.template_version, "text": n.text,
        "phone_masked": mask_phone(n.phone) if n.phone else None, "attempts": record.attempts,
        "provider_message_id": record.provider_message_id,
        "reason": record.reason.value if record.reason else None, "detail": record.detail,
    }


@router.put("/officers/{officer_id}")
async def put_officer(officer_id: OfficerId, entry: OfficerEntry, officer: CurrentOfficer,
                      request: Request) -> dict[str, Any]:
    require_role(officer, *DIRECTORY_ROLES)
    if not all(within(code, officer.scope) for code in entry.scope):
        raise outside_scope("a region of the entry's scope")
    existing = await _store(request).officer(officer_id)
    if existing is not None and not all(within(c, officer.scope) for c in existing.scope):
        raise outside_scope("the officer's current scope")
    req = OfficerUpsert(officer_id=officer_id, **entry.model_dump())
    return await _directory(request).upsert_officer(req)


@router.get("/officers/{officer_id}")
async def get_officer(officer_id: OfficerId, officer: CurrentOfficer, request: Request) -> dict[str, Any]:
    found = await _store(request).officer(officer_id)
    if found is None or not any(within(c, officer.scope) for c in found.scope):
        raise CommandError("officer_not_found", "no such officer in your scope", status=404)
    return officer_view(found)


@router.delete("/officers/{officer_id}")
async def delete_officer(officer_id: OfficerId, officer: CurrentOfficer, request: Request) -> dict[str, Any]:
    require_role(officer, *DIRECTORY_ROLES)
    found = await _store(request).officer(officer_id)
    if found is None:
        raise CommandError("officer_not_found", "no such officer", status=404)
    if not all(within(c, officer.scope) for c in found.scope):
        raise outside_scope("the officer's scope")
    return await _directory(request).remove_officer(OfficerRemove(officer_id=officer_id))


@router.put("/opt-outs")
async def put_opt_out(body: OptOut, officer: CurrentOfficer, request: Request) -> dict[str, Any]:
    """Records a resident's wish (told to an officer) to receive no more messages, or to receive them again."""
    require_role(officer, *FRONT_ROLES)
    return await _directory(request).set_opt_out(body)


@router.get("/deliveries/{notification_id}")
async def get_delivery(notification_id: uuid.UUID, officer: CurrentOfficer, request: Request) -> dict[str, Any]:
    record = await _store(request).get(notification_id)
    if record is None or not _visible(record, officer.scope):
        raise CommandError("notification_not_found", "no such notification in your scope", status=404)
    return _record_view(record)


@router.get("/deliveries")
async def list_deliveries(source_event_id: uuid.UUID, officer: CurrentOfficer,
                          request: Request) -> dict[str, Any]:
    records = await _store(request).for_source(source_event_id)
    return {"items": [_record_view(r) for r in records if _visible(r, officer.scope)]}


@router.get("/templates")
async def list_templates(officer: CurrentOfficer) -> dict[str, Any]:
    return {"items": [{"template_id": t.template_id, "version": t.version, "audience": t.audience.value,
                       "text": t.text} for t in TEMPLATES.values()]}


def _visible(record: DeliveryRecord, scope: tuple[str, ...]) -> bool:
    village = record.notification.village_code
    return village is None or within(village, scope)
