"""A resident's data export at the intake edge (UU No. 27/2022 PDP: the data subject's right of access).

``POST /residents/export`` with ``{"nik": ...}`` in the body (never in the URL: URLs are logged):

1. the back office or the kecamatan coordinator asks (``EXPORT_ROLES``); the resident's village
   comes from the registry (``resident_data.resident_village``) and must be in the officer's scope.
   A person the registry does not know (no household, no complaint) may still appear in other
   services (a recipient list names a family head by NIK): then the kecamatan that issued the NIK
   (its first six digits) decides, so only that kecamatan's coordinator or a regency-wide scope may ask;
2. intake's own part is read in-process; every other service is asked ``export_resident`` over
   NATS at once, each with its own timeout (``PUSKESOS_INTAKE_EXPORT_TIMEOUT_SECONDS``); a service
   that does not answer, answers late or answers an error is named in the document
   (``{"error": "unavailable", "reason": ...}``, ``complete: false``, ``unavailable``): an export
   is never silently incomplete;
3. the export is recorded in the access log (``export_log``, see ``access_log``: who, when, the NIK's
   keyed hash, which services answered) *before* the document is returned; refused attempts (outside
   the officer's scope) are recorded too. No log line carries the NIK.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import nats.errors
from puskesos_shared.commands import CommandError, CommandReply
from puskesos_shared.contracts.envelope import Actor
from puskesos_shared.contracts.primitives import NIK, OfficerRole
from puskesos_shared.ids import stable_id
from puskesos_shared.regions import regency_of, village_name
from puskesos_shared.resident_export import FORMAT, REMOTE_SECTIONS, ExportResident, ExportSection, export_subject
from pydantic import BaseModel, ConfigDict, ValidationError

from .access_log import EXPORT, record_access
from .context import Caller, Context, log
from .resident_data import IntakePart, ResidentData, masked

EXPORT_ROLES = (OfficerRole.BACK_OFFICE, OfficerRole.COORDINATOR)
LEGAL_BASIS = ("UU No. 27 Tahun 2022 tentang Pelindungan Data Pribadi: the data subject's right to obtain the "
               "personal data held about them")

#: Sends one command and returns the parsed reply (raises nats.errors.* when nobody answers in time).
Requester = Callable[[str, ExportResident, float], Awaitable[CommandReply]]


class ExportRequest(BaseModel):
    """The body of ``POST /residents/export``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    nik: NIK


def nik_kecamatan(nik: str) -> str:
    """The kecamatan that issued a NIK (its first six digits, dotted: ``35.73.01``)."""
    return f"{nik[0:2]}.{nik[2:4]}.{nik[4:6]}"


def covers(caller: Caller, code: str) -> bool:
    """Whether the caller's scope covers a village (``35.73.01.1001``) or a kecamatan (``35.73.01``)."""
    if code.count(".") == 3:
        return caller.covers(code)
    return caller.scope is None or code in caller.scope or regency_of(code) in caller.scope


def unavailable(reason: str, message: str) -> dict[str, Any]:
    return {"error": "unavailable", "reason": reason, "message": message}


class ResidentExports:
    def __init__(self, ctx: Context, data: ResidentData, request: Requester, timeout: float) -> None:
        self.ctx, self.data, self.request, self.timeout = ctx, data, request, timeout

    async def export(self, nik: str, caller: Caller) -> dict[str, Any]:
        """The whole export for an officer (HTTP); raises CommandError 403 when the resident is outside the scope."""
        export_id = uuid.uuid4()
        key = self.ctx.niks.key(nik)
        part = await self.data.collect(nik)
        where = part.village_code or nik_kecamatan(nik)
        if not covers(caller, where):
            await self._record(export_id, key, caller.actor, "http", "outside_scope", village=where)
            if part.village_code is not None:
                caller.require(part.village_code)
            raise CommandError("outside_scope", f"the registry does not know this resident, so the kecamatan that "
                               f"issued the NIK ({where}) decides; it is outside this officer's scope (ask its "
                               "kecamatan coordinator)", status=403)
        request = ExportResident(export_id=export_id, requested_by=caller.actor, nik=nik,
                                 kk_numbers=part.kk_numbers)
        answers = await asyncio.gather(*(self._ask(service, request) for service in REMOTE_SECTIONS))
        sections: dict[str, dict[str, Any]] = {"intake": part.section.model_dump(mode="json"),
                                               **dict(zip(REMOTE_SECTIONS, answers, strict=True))}
        missing = [name for name, body in sections.items() if "error" in body]
        states = {name: f"unavailable: {body['reason']}" if "error" in body else "answered"
                  for name, body in sections.items()}
        await self._record(export_id, key, caller.actor, "http", "exported", village=where, sections=states)
        log.info("resident_exported", export_id=str(export_id), requested_by=caller.actor.id,
                 complete=not missing, unavailable=missing)
        return self._document(export_id, caller.actor, nik, part, sections, missing)

    async def intake_part(self, req: ExportResident) -> ExportSection:
        """Intake's part for the ``export_resident`` command (a system on the bus; recorded all the same).

        The entry's id derives from (export, NIK key): a retried command is recorded once.
        """
        part = await self.data.collect(req.nik)
        await self._record(req.export_id, self.ctx.niks.key(req.nik), req.requested_by, "nats", "exported",
                           village=part.village_code, sections={"intake": "answered"})
        return part.section

    def _document(self, export_id: uuid.UUID, actor: Actor, nik: str, part: IntakePart,
                  sections: dict[str, dict[str, Any]], missing: list[str]) -> dict[str, Any]:
        subject = {"nik_masked": masked("NIK", nik), "name_masked": part.name_masked,
                   "village_code": part.village_code,
                   "village_name": village_name(part.village_code) if part.village_code else None}
        return {"format": FORMAT, "export_id": str(export_id), "generated_at": self.ctx.clock().isoformat(),
                "requested_by": actor.model_dump(mode="json"), "legal_basis": LEGAL_BASIS, "subject": subject,
                "complete": not missing, "unavailable": missing, "sections": sections}

    async def _ask(self, service: str, request: ExportResident) -> dict[str, Any]:
        subject = export_subject(self.ctx.topology, service)
        try:
            reply = await self.request(subject, request, self.timeout)
        except nats.errors.NoRespondersError:
            return unavailable("no_responders", f"no {service} instance is running to answer")
        except (nats.errors.TimeoutError, TimeoutError):
            return unavailable("timeout", f"the {service} service did not answer within {self.timeout:g} s")
        except nats.errors.Error as exc:
            return unavailable("nats_error", f"the request to {service} failed: {type(exc).__name__}")
        if not reply.ok:
            error = reply.error or {}
            return unavailable(str(error.get("code", "error")), str(error.get("message", "the service failed")))
        try:
            answered = ExportSection.model_validate(reply.result)
        except ValidationError:
            return unavailable("invalid_reply", f"the {service} service answered something that is not a section")
        if answered.service != service:
            return unavailable("invalid_reply", f"the {service} subject was answered by {answered.service}")
        return answered.model_dump(mode="json")

    async def _record(self, export_id: uuid.UUID, key: str, actor: Actor, channel: str, outcome: str, *,
                      village: str | None = None, sections: dict[str, str] | None = None) -> None:
        """The access log entry; an export whose entry cannot be written is not handed out."""
        entry_id = export_id if channel == "http" else stable_id("export-log", export_id, key)
        doc = {"_id": str(entry_id), "kind": EXPORT, "export_id": str(export_id), "nik_hash": key,
               "at": self.ctx.clock(), "requested_by": actor.model_dump(mode="json"), "channel": channel,
               "outcome": outcome, "village_code": village, "sections": sections,
               "complete": None if sections is None else all(s == "answered" for s in sections.values())}
        await record_access(self.ctx, doc, what="export")
