"""HTTP edge for operators: the same operations as the NATS commands, with bearer tokens."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request
from puskesos_shared.auth import CurrentOfficer, require_role

from .commands import OPERATORS, READERS
from .imports import Imports
from .requests import (
    MAX_COUNT,
    MAX_IMPORT_ROWS,
    ROUND_REF,
    CloseRound,
    FinishImport,
    ImportChunk,
    ImportRow,
    OpenRound,
    RoundRef,
)
from .requests import RoundStatusQuery as StatusQuery
from .rounds import RoundOperations

router = APIRouter(prefix="/rounds", tags=["rounds"])
# the same constraints as RoundRef.round: the handlers build a RoundRef from it (a ValidationError there is a 500)
RoundPath = Annotated[str, Path(min_length=3, max_length=80, pattern=ROUND_REF, description="The round's key or id")]


def _ops(request: Request) -> tuple[RoundOperations, Imports]:
    state = request.app.state.runtime.state
    return state["rounds"], state["imports"]


@router.post("", status_code=201)
async def open_round(request: Request, officer: CurrentOfficer, body: OpenRound) -> dict[str, Any]:
    require_role(officer, *OPERATORS)
    return await _ops(request)[0].open(body, officer)


@router.get("/{round_ref}")
async def round_status(request: Request, officer: CurrentOfficer, round_ref: RoundPath,
                       exact: Annotated[bool, Query()] = False) -> dict[str, Any]:
    require_role(officer, *READERS)
    return await _ops(request)[0].status(StatusQuery(round=round_ref, exact=exact))


@router.post("/{round_ref}/candidates")
async def import_rows(request: Request, officer: CurrentOfficer, round_ref: RoundPath,
                      batch_id: Annotated[uuid.UUID, Body()],
                      rows: Annotated[list[ImportRow], Body(min_length=1, max_length=MAX_IMPORT_ROWS)]
                      ) -> dict[str, Any]:
    require_role(officer, *OPERATORS)
    return await _ops(request)[1].import_chunk(ImportChunk(round=round_ref, batch_id=batch_id, rows=tuple(rows)),
                                               officer)


@router.post("/{round_ref}/imports/{batch_id}/finish")
async def finish_import(request: Request, officer: CurrentOfficer, round_ref: RoundPath, batch_id: uuid.UUID,
                        total_rows: Annotated[int, Body(ge=0, le=MAX_COUNT)],
                        rejected_rows: Annotated[int, Body(ge=0, le=MAX_COUNT)],
                        file_name: Annotated[str, Body(max_length=200)] = "") -> dict[str, Any]:
    require_role(officer, *OPERATORS)
    req = FinishImport(round=round_ref, batch_id=batch_id, file_name=file_name, total_rows=total_rows,
                       rejected_rows=rejected_rows)
    return await _ops(request)[1].finish_import(req, officer)


@router.post("/{round_ref}/assessed-candidates")
async def enqueue_assessed(request: Request, officer: CurrentOfficer, round_ref: RoundPath) -> dict[str, Any]:
    require_role(officer, *OPERATORS)
    return await _ops(request)[1].enqueue_assessed(RoundRef(round=round_ref), officer)


@router.post("/{round_ref}/close")
async def close_round(request: Request, officer: CurrentOfficer, round_ref: RoundPath,
                      force: Annotated[bool, Query()] = False) -> dict[str, Any]:
    require_role(officer, *OPERATORS)
    return await _ops(request)[0].close(CloseRound(round=round_ref, force=force), officer)
