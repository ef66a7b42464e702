"""HTTP API for officers: assessors assess, refer and close; coordinators list and count cases, and act
on the escalations that reached their level (the kecamatan's TKSK coordinator, the Dinas Sosial's operators).

Every route needs an officer token (``Authorization: Bearer``); roles and scopes are in ``authz``.
Errors: 401/403 for identity and scope, 404 for unknown ids, 409 when the case's state does not
allow the command, 422 with field-level detail for invalid input (never echoing it back).
Commands answer 201 when they changed something and 200 when the ``command_id`` was applied before.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from puskesos_shared.auth import CurrentOfficer
from puskesos_shared.contracts.primitives import VillageCode

from . import authz
from .catalog import targets
from .queries import CaseQueries
from .requests import (
    AcknowledgeEscalationRequest,
    AssessRequest,
    CloseRequest,
    ListCasesQuery,
    ListEscalationsQuery,
    PublishRuleSetRequest,
    ReferRequest,
    ResolveEscalationRequest,
    RespondRequest,
    SummaryQuery,
)
from .service import ReferralService

router = APIRouter(tags=["referral"])


def _service(request: Request) -> ReferralService:
    service: ReferralService = request.app.state.runtime.state["service"]
    return service


def _queries(request: Request) -> CaseQueries:
    queries: CaseQueries = request.app.state.runtime.state["queries"]
    return queries


Service = Annotated[ReferralService, Depends(_service)]
Queries = Annotated[CaseQueries, Depends(_queries)]


def _written(result: dict[str, Any]) -> JSONResponse:
    return JSONResponse(result, status_code=200 if result.get("duplicate") else 201)


@router.post("/cases/{case_id}/assessments", summary="Assess a case with the active rule set")
async def assess_case(case_id: uuid.UUID, body: AssessRequest, officer: CurrentOfficer,
                      service: Service) -> JSONResponse:
    return _written(await service.assess(officer, case_id, body))


@router.post("/cases/{case_id}/referrals", summary="Refer an assessed case to a target")
async def refer_case(case_id: uuid.UUID, body: ReferRequest, officer: CurrentOfficer, service: Service) -> JSONResponse:
    return _written(await service.refer(officer, case_id, body))


@router.post("/referrals/responses", summary="Record a target's answer to a referral (received on paper or by phone)")
async def record_response(body: RespondRequest, officer: CurrentOfficer, service: Service) -> JSONResponse:
    return _written(await service.respond(body, officer=officer))


@router.post("/cases/{case_id}/close", summary="Close a case with a resolution")
async def close_case(case_id: uuid.UUID, body: CloseRequest, officer: CurrentOfficer, service: Service) -> JSONResponse:
    return _written(await service.close(officer, case_id, body))


@router.post("/cases/{case_id}/escalation/acknowledge",
             summary="Take on the case's open escalation (the coordinator or Dinas Sosial of its level)")
async def acknowledge_escalation(case_id: uuid.UUID, body: AcknowledgeEscalationRequest, officer: CurrentOfficer,
                                 service: Service) -> JSONResponse:
    return _written(await service.acknowledge_escalation(officer, case_id, body))


@router.post("/cases/{case_id}/escalation/resolve",
             summary="Resolve the case's escalation: back to the village with a new deadline, or handled at the level")
async def resolve_escalation(case_id: uuid.UUID, body: ResolveEscalationRequest, officer: CurrentOfficer,
                             service: Service) -> JSONResponse:
    return _written(await service.resolve_escalation(officer, case_id, body))


@router.get("/escalations", summary="Escalated cases in the officer's scope at its level, longest escalated first")
async def list_escalations(query: Annotated[ListEscalationsQuery, Query()], officer: CurrentOfficer,
                           queries: Queries) -> dict[str, Any]:
    return await queries.list_escalations(officer, query)


@router.get("/cases", summary="Cases of a village or kecamatan with their SLA state")
async def list_cases(query: Annotated[ListCasesQuery, Query()], officer: CurrentOfficer,
                     queries: Queries) -> dict[str, Any]:
    return await queries.list_cases(officer, query)


@router.get("/cases/summary", summary="Monthly counts per village for the evaluation")
async def case_summary(query: Annotated[SummaryQuery, Query()], officer: CurrentOfficer,
                       queries: Queries) -> dict[str, Any]:
    return await queries.summary(officer, query)


@router.get("/cases/{case_id}", summary="One case in full, with its timeline of events")
async def get_case(case_id: uuid.UUID, officer: CurrentOfficer, service: Service) -> dict[str, Any]:
    return await service.case_page(officer, case_id)


@router.get("/cases/{case_id}/assessments/verification",
            summary="Re-derive every recorded assessment of the case from its recorded inputs and rule set")
async def verify_assessments(case_id: uuid.UUID, officer: CurrentOfficer, service: Service) -> dict[str, Any]:
    results = await service.verify_assessments(officer, case_id)
    return {"case_id": str(case_id), "all_match": all(r["matches"] for r in results), "assessments": results}


@router.get("/referral-targets", summary="Referral targets that serve a village (for the referral form)")
async def list_referral_targets(village_code: Annotated[VillageCode, Query()],
                                officer: CurrentOfficer) -> dict[str, Any]:
    authz.require_role(officer, authz.READ)
    authz.require_scope(officer, village_code)
    return {"village_code": village_code, "targets": [
        entry.target().model_dump(mode="json", exclude_none=True) for entry in targets().values()
        if entry.serves(village_code)]}


@router.get("/rule-sets", summary="Published assessment rule sets, newest first (the first is active)")
async def list_rule_sets(officer: CurrentOfficer, queries: Queries) -> dict[str, Any]:
    return {"rule_sets": await queries.rule_sets()}


@router.get("/rule-sets/{tag}", summary="One rule set as its self-describing JSON document")
async def get_rule_set(tag: str, officer: CurrentOfficer, queries: Queries) -> dict[str, Any]:
    return await queries.rule_set(tag)


@router.post("/rule-sets", summary="Publish a new rule-set version (Dinas Sosial operators)")
async def publish_rule_set(body: PublishRuleSetRequest, officer: CurrentOfficer, service: Service) -> JSONResponse:
    return _written(await service.rules.publish(officer, body.rule_set))
