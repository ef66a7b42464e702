"""NATS request-reply commands for external systems (the WhatsApp bot, the national registry sync).

Callers are systems, so each request names its ``actor``; NATS permissions (deploy/) decide who
may send them. Replies follow the kit: ``{"ok": true, "result": ...}`` or an error with a code.

| subject | request | result |
|---|---|---|
| ``{ns}.commands.intake.register_household.v1`` | RegisterHousehold | RegistrationResult |
| ``{ns}.commands.intake.file_complaint.v1`` | FileComplaint | FilingResult |
| ``{ns}.commands.intake.complaint_status.v1`` | ComplaintStatusQuery | PublicStatus (no personal data) |
| ``{ns}.commands.intake.export_resident.v1`` | ExportResident | intake's part of a resident's data export |

``export_resident`` is the part every service answers (``puskesos_shared.resident_export``); the
whole export, with role and scope checks, is ``POST /residents/export``. Intake records each answer
in its access log all the same.
"""

from __future__ import annotations

from faststream.nats import NatsBroker
from puskesos_shared.commands import subscribe_command
from puskesos_shared.contracts.envelope import Actor
from puskesos_shared.contracts.intake import Household
from puskesos_shared.resident_export import serve_export
from puskesos_shared.topology import Topology
from pydantic import BaseModel, ConfigDict, Field

from .api import CASE_NUMBER, Intake
from .context import Caller
from .domain.complaints import ComplaintRequest
from .filing import FilingResult
from .registry import RegistrationResult
from .status import PublicStatus


class _Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    actor: Actor


class RegisterHousehold(_Command):
    household: Household


class FileComplaint(_Command):
    complaint: ComplaintRequest
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)


class ComplaintStatusQuery(_Command):
    case_number: str = Field(pattern=CASE_NUMBER)


def register_commands(broker: NatsBroker, topology: Topology, svc: Intake) -> list[str]:
    async def register_household(req: RegisterHousehold) -> RegistrationResult:
        return await svc.registry.register(req.household, Caller.system(req.actor))

    async def file_complaint(req: FileComplaint) -> FilingResult:
        return await svc.desk.file(req.complaint, Caller.system(req.actor), req.idempotency_key)

    async def complaint_status(req: ComplaintStatusQuery) -> PublicStatus:
        return await svc.views.public_status(req.case_number, Caller.system(req.actor))

    return [
        serve_export(broker, topology, service="intake", handler=svc.exports.intake_part),
        subscribe_command(broker, topology, service="intake", name="register_household",
                          request=RegisterHousehold, handler=register_household),
        subscribe_command(broker, topology, service="intake", name="file_complaint",
                          request=FileComplaint, handler=file_complaint),
        subscribe_command(broker, topology, service="intake", name="complaint_status",
                          request=ComplaintStatusQuery, handler=complaint_status),
    ]
