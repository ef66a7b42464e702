"""The read-only HTTP query API for auditors (role ``auditor``; bearer tokens from the shared auth).

Traces are asked with POST so that a NIK or KK number never appears in a URL (and so in no
access log); results mask personal data, and events of villages outside the auditor's scope
are shown without their content.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import PlainTextResponse
from puskesos_shared.auth import CurrentOfficer, Officer, require_role, require_village
from puskesos_shared.commands import CommandError
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.service import ServiceRuntime
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from . import queries
from .commands import MAX_SEQ, ReplayRequest, start_replay
from .reader import LogReader
from .render import mermaid
from .settings import AuditSettings
from .store import AuditStore
from .trace import TraceKind, TraceResult, check_trace_value, trace

router = APIRouter(prefix="/audit", tags=["audit"])
SeqQuery = Annotated[int | None, Query(ge=1, le=MAX_SEQ)]
#: Checked at the edge: anything else (a NIK typed into the wrong field) is a 422 that does not echo it,
#: not a 403 naming it.
VillagePath = Annotated[str, Path(pattern=r"^[0-9]{2}\.[0-9]{2}\.[0-9]{2}\.[0-9]{4}$",
                                  description="Kemendagri code of a kelurahan or desa, dotted")]


def _runtime(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


def _auditor(officer: Officer) -> None:
    require_role(officer, OfficerRole.AUDITOR)


def _reader(runtime: ServiceRuntime) -> LogReader:
    reader: LogReader = runtime.state["reader"]
    return reader


@router.get("/status", summary="The appender's state and the log's head")
async def status(request: Request, officer: CurrentOfficer) -> dict[str, Any]:
    _auditor(officer)
    runtime = _runtime(request)
    store: AuditStore = runtime.state["store"]
    head = await store.get_head()
    appender = runtime.state.get("appender")
    return {"head": {"seq": head.get("seq"), "hash": head.get("hash"), "chunk": head.get("chunk"),
                     "updated_at": head.get("updated_at")},
            "index": {"chunk": await store.index_position()},
            "appender": appender.status if appender is not None else {"state": "disabled"}}


@router.get("/verify", summary="Verify the hash chain (whole log or the chunks covering a range)")
async def verify(request: Request, officer: CurrentOfficer, from_seq: SeqQuery = None,
                 to_seq: SeqQuery = None) -> dict[str, Any]:
    _auditor(officer)
    runtime = _runtime(request)
    report = await asyncio.to_thread(queries.verify, _reader(runtime), runtime.state["checkpoint_key"],
                                     from_seq=from_seq, to_seq=to_seq)
    return report.model_dump(mode="json")


class TraceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: TraceKind
    value: str = Field(min_length=1, max_length=100, repr=False)
    max_nodes: int = Field(default=500, ge=1, le=5000)

    @field_validator("value")
    @classmethod
    def _value_of_its_kind(cls, value: str, info: ValidationInfo) -> str:
        # an invalid id, NIK or KK is a 422 naming the rule, not "nothing in the log"
        kind = info.data.get("kind")
        return check_trace_value(kind, value) if isinstance(kind, TraceKind) else value


def redact_outside_scope(result: TraceResult, officer: Officer) -> TraceResult:
    nodes = []
    for node in result.nodes:
        if node.village_code and not officer.covers(node.village_code):
            node = node.model_copy(update={"data": None, "decision": None, "actor": None,
                                           "error": "outside your scope"})
        nodes.append(node)
    return result.model_copy(update={"nodes": nodes})


@router.post("/trace", summary="Trace a decision to its roots (JSON, or Mermaid with ?format=mermaid)",
             response_model=None)
async def trace_endpoint(request: Request, officer: CurrentOfficer, body: TraceRequest,
                         format: Annotated[str, Query(pattern="^(json|mermaid)$")] = "json"
                         ) -> dict[str, Any] | PlainTextResponse:
    _auditor(officer)
    runtime = _runtime(request)
    result = await trace(runtime.state["store"], body.kind, body.value, runtime.state["index_key"],
                         max_nodes=body.max_nodes)
    result = redact_outside_scope(result, officer)
    if not result.nodes:
        raise CommandError("trace_not_found", f"nothing in the log for that {body.kind.value}", status=404)
    if format == "mermaid":
        return PlainTextResponse(mermaid(result))
    return result.model_dump(mode="json")


@router.get("/decisions", summary="Re-derive every recorded decision and report mismatches")
async def decisions(request: Request, officer: CurrentOfficer, from_seq: SeqQuery = None,
                    to_seq: SeqQuery = None) -> dict[str, Any]:
    _auditor(officer)
    runtime = _runtime(request)
    settings: AuditSettings = runtime.state["settings"]
    report = await queries.decisions(_reader(runtime), directories=settings.rules_dirs(),
                                     nc=runtime.broker.config.connection_state.connection,
                                     topology=runtime.topology, from_seq=from_seq, to_seq=to_seq)
    return report.model_dump(mode="json")


@router.get("/rounds/{round_id}/history", summary="A round's totals rebuilt from the log, compared")
async def round_history(request: Request, officer: CurrentOfficer, round_id: uuid.UUID) -> dict[str, Any]:
    _auditor(officer)
    runtime = _runtime(request)
    settings: AuditSettings = runtime.state["settings"]
    token = request.headers.get("authorization", "").partition(" ")[2] or None
    return await queries.round_history(_reader(runtime), str(round_id),
                                       js=runtime.broker.config.connection_state.stream, topology=runtime.topology,
                                       live_url=settings.audit_distribution_url, token=token)


@router.get("/villages/{village_code}/history", summary="A village's case counts rebuilt from the log, compared")
async def village_history(request: Request, officer: CurrentOfficer, village_code: VillagePath) -> dict[str, Any]:
    _auditor(officer)
    require_village(officer, village_code)
    runtime = _runtime(request)
    return await queries.village_history(_reader(runtime), village_code,
                                         js=runtime.broker.config.connection_state.stream, topology=runtime.topology)


@router.get("/checkpoints", summary="Signed checkpoints of the chain head, to keep outside")
async def checkpoints(request: Request, officer: CurrentOfficer) -> list[dict[str, Any]]:
    _auditor(officer)
    return await asyncio.to_thread(queries.checkpoints, _reader(_runtime(request)))


@router.post("/replay", status_code=202, summary="Replay logged events to {ns}.replay.{request_id}.>")
async def replay(request: Request, officer: CurrentOfficer,
                 body: Annotated[ReplayRequest, Body()]) -> dict[str, Any]:
    _auditor(officer)
    ts = int(body.from_time.astimezone(dt.UTC).timestamp() * 1_000_000_000) if body.from_time else None
    return await start_replay(_runtime(request), request_id=body.request_id, from_seq=body.from_seq,
                              to_seq=body.to_seq, from_ts_ns=ts)
