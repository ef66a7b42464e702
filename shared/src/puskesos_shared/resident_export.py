"""The resident data export (UU No. 27/2022, Pelindungan Data Pribadi: the data subject's right of access).

Every service that stores data about residents answers the request-reply command
``{ns}.commands.{service}.export_resident.v1`` with *its* records about one person, found by the
person's NIK (and the family cards the registry links them to). The intake service's HTTP edge
(``POST /residents/export``) checks the officer's role and the resident's village, asks every
service at once with a timeout each, records the export in its access log and returns one
document. NATS permissions (``permissions``) let only intake (and the operators' tools) send
these commands, so the command carries who asked (``requested_by``) and the export's id instead
of an officer token: each service logs both (never the NIK), which ties its log line to intake's
access log entry.

A section is ``{"service", "generated_at", "found", "records": {...}, "notes": [...]}``: an
unknown NIK is an empty section (``found: false``), not an error; an invalid NIK is an
``invalid_request`` reply with the field, never the value.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from faststream.nats import NatsBroker
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from .commands import CommandError, subscribe_command
from .contracts.envelope import Actor
from .contracts.primitives import NIK, KKNumber
from .topology import Topology

log = structlog.get_logger("puskesos.resident_export")

EXPORT_COMMAND = "export_resident"
#: The services whose part the intake edge asks over NATS (intake reads its own part in-process).
REMOTE_SECTIONS = ("referral", "distribution", "notification", "audit")
#: Every section of a complete export, in the document's order.
ALL_SECTIONS = ("intake", *REMOTE_SECTIONS)
FORMAT = "puskesos.resident-export.v1"
#: A section larger than this is refused with a reason (a NATS message is 1 MiB at most by default).
MAX_SECTION_BYTES = 768 * 1024


class ExportResident(BaseModel):
    """The command: whose data, for which export, asked by whom."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    export_id: uuid.UUID = Field(description="The export this part belongs to (intake's access log entry)")
    requested_by: Actor = Field(description="The officer (or system) the export is made for")
    nik: NIK
    kk_numbers: tuple[KKNumber, ...] = Field(
        default=(), max_length=20,
        description="Family cards the registry links the person to (current and former); a service adds the "
                    "ones it finds itself by the NIK",
    )


class ExportSection(BaseModel):
    """One service's records about the person."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    service: str = Field(min_length=1, max_length=50)
    generated_at: AwareDatetime
    found: bool = Field(description="Whether the service holds any record about the person")
    records: dict[str, Any] = Field(description="Lists of records by kind (empty lists when nothing is held)")
    notes: tuple[str, ...] = Field(default=(), description="How the records were found; what is not included")


def section(service: str, records: dict[str, Any], notes: tuple[str, ...] = (), *,
            now: dt.datetime | None = None) -> ExportSection:
    """A section whose ``found`` says whether any list (or value) in ``records`` holds something."""
    found = any(bool(value) for value in records.values())
    return ExportSection(service=service, generated_at=now or dt.datetime.now(dt.UTC), found=found,
                         records=records, notes=notes)


def export_subject(topology: Topology, service: str) -> str:
    return topology.command_subject(service, EXPORT_COMMAND)


ExportHandler = Callable[[ExportResident], Awaitable[ExportSection]]


def serve_export(broker: NatsBroker, topology: Topology, *, service: str, handler: ExportHandler) -> str:
    """Answers ``export_resident`` for ``service``; logs who asked and what was found, never the NIK."""

    async def answer(req: ExportResident) -> ExportSection:
        part = await handler(req)
        size = len(json.dumps(part.model_dump(mode="json")))
        counts = {k: len(v) for k, v in part.records.items() if isinstance(v, list)}
        log.info("resident_export_served", service=service, export_id=str(req.export_id),
                 requested_by=req.requested_by.id, found=part.found, counts=counts, bytes=size)
        if size > MAX_SECTION_BYTES:
            raise CommandError("section_too_large", f"the {service} section is {size} bytes, over the "
                               f"{MAX_SECTION_BYTES}-byte limit of one reply", status=413)
        return part

    return subscribe_command(broker, topology, service=service, name=EXPORT_COMMAND, request=ExportResident,
                             handler=answer)
