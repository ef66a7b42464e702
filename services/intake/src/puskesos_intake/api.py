"""HTTP edge for officers (OpenAPI at /openapi.json).

Roles: the back office registers and updates households and moves members (a kecamatan
coordinator may move members too); the front office files complaints; any officer whose scope
covers the village reads. ``GET /complaints/{case_number}`` also needs a token (of any role,
in scope): case numbers are sequential and guessable, so they are no secret. The WhatsApp bot is
a system: it asks the ``complaint_status`` NATS command, which answers a view without personal
data (no names, NIKs, phones or descriptions). ``POST /residents/export`` hands a resident their
data held by every service (UU PDP; back office or coordinator, resident in scope; see ``exports``).
``POST /households/search`` finds a household by a member's NIK or by KK, both in the body (URLs are
logged; ``GET /households/{kk}`` stays for the console). ``POST /households/import`` takes a batch of
the registry CSV (back office; ``registry_import``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse
from puskesos_shared.auth import CurrentOfficer, Officer, require_role
from puskesos_shared.commands import CommandError
from puskesos_shared.contracts.intake import ComplaintCategory, Household
from puskesos_shared.contracts.primitives import NIK, KKNumber, OfficerRole, check_kk_number, check_nik
from pydantic import BaseModel, ConfigDict, model_validator

from .context import Caller
from .domain.complaints import ComplaintRequest
from .domain.progress import ComplaintStatus
from .exports import EXPORT_ROLES, ExportRequest, ResidentExports
from .filing import ComplaintDesk, FilingResult
from .registry import HouseholdRecord, HouseholdRegistry, Outcome, RegistrationResult
from .registry_import import ImportBatch, ImportResult, RegistryImport
from .status import ComplaintDetail, ComplaintPage, ComplaintViews
from .transfers import TransferRequest, TransferResult, Transfers

HOUSEHOLD_WRITERS = (OfficerRole.BACK_OFFICE,)
TRANSFER_ROLES = (OfficerRole.BACK_OFFICE, OfficerRole.COORDINATOR)
COMPLAINT_FILERS = (OfficerRole.FRONT_OFFICE,)
CASE_NUMBER = r"^[0-9]{10}/[0-9]{4}/[0-9]{5,}$"


@dataclass
class Intake:
    registry: HouseholdRegistry
    transfers: Transfers
    desk: ComplaintDesk
    views: ComplaintViews
    exports: ResidentExports
    imports: RegistryImport


async def intake(request: Request) -> Intake:
    """The service's use cases (async, so FastAPI does not hop to a worker thread for it)."""
    found: Intake = request.app.state.runtime.state["intake"]
    return found


IntakeDep = Annotated[Intake, Depends(intake)]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200)]
KKPath = Annotated[str, Path(pattern=r"^[0-9]{16}$", description="KK number (16 digits)")]
NIKPath = Annotated[str, Path(pattern=r"^[0-9]{16}$", description="NIK (16 digits)")]


def caller_of(officer: Officer) -> Caller:
    return Caller(actor=officer.actor(), covers=officer.covers, scope=officer.scope)


def checked(value: str, check: Callable[[str], str], name: str) -> str:
    try:
        check(value)
    except ValueError as exc:
        raise CommandError("invalid_path", str(exc), [{"loc": ["path", name], "msg": str(exc), "type": "value_error"}],
                           status=422) from None
    return value


households = APIRouter(prefix="/households", tags=["households"])
complaints = APIRouter(prefix="/complaints", tags=["complaints"])
residents = APIRouter(prefix="/residents", tags=["residents"])


@households.post("", response_model=RegistrationResult, status_code=status.HTTP_201_CREATED,
                 responses={200: {"model": RegistrationResult, "description": "Updated or unchanged"}})
async def register_household(household: Household, officer: CurrentOfficer, svc: IntakeDep,
                             response: Response) -> RegistrationResult:
    """Registers a household, or updates it when the KK is already registered (re-registration)."""
    require_role(officer, *HOUSEHOLD_WRITERS)
    result = await svc.registry.register(household, caller_of(officer))
    if result.outcome is not Outcome.REGISTERED:
        response.status_code = status.HTTP_200_OK
    return result


class HouseholdSearch(BaseModel):
    """Exactly one of ``nik`` (the household the person is a member of now) and ``kk``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    nik: NIK | None = None
    kk: KKNumber | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> HouseholdSearch:
        if (self.nik is None) == (self.kk is None):
            raise ValueError("give exactly one of nik and kk")
        return self


@households.post("/search", response_model=HouseholdRecord)
async def search_household(body: HouseholdSearch, officer: CurrentOfficer, svc: IntakeDep) -> HouseholdRecord:
    """A household by a member's NIK or by its KK, both in the body (never in the URL: URLs are logged)."""
    if body.nik is not None:
        return await svc.registry.get_by_nik(body.nik, caller_of(officer))
    assert body.kk is not None
    return await svc.registry.get(body.kk, caller_of(officer))


@households.post("/import", response_model=ImportResult)
async def import_households(batch: ImportBatch, officer: CurrentOfficer, svc: IntakeDep) -> ImportResult:
    """Registers a batch of rows of the registry CSV (``puskesos registry import`` streams a file in batches).

    The same rules and events as ``POST /households``; rejected households come back with row, column
    and rule (never the value). Importing the same rows again registers nothing twice.
    """
    require_role(officer, *HOUSEHOLD_WRITERS)
    return await svc.imports.import_batch(batch, caller_of(officer))


@households.put("/{kk}", response_model=RegistrationResult)
async def update_household(kk: KKPath, household: Household, officer: CurrentOfficer,
                           svc: IntakeDep) -> RegistrationResult:
    require_role(officer, *HOUSEHOLD_WRITERS)
    checked(kk, check_kk_number, "kk")
    if household.kk_number != kk:
        raise CommandError("kk_mismatch", "the body's kk_number differs from the KK in the path",
                           [{"loc": ["body", "kk_number"], "msg": "must equal the KK in the path",
                             "type": "kk_mismatch"}],
                           status=422)
    return await svc.registry.register(household, caller_of(officer), must_exist=True)


@households.get("/{kk}", response_model=HouseholdRecord)
async def get_household(kk: KKPath, officer: CurrentOfficer, svc: IntakeDep) -> HouseholdRecord:
    checked(kk, check_kk_number, "kk")
    return await svc.registry.get(kk, caller_of(officer))


@households.post("/{kk}/members/{nik}/transfer", response_model=TransferResult)
async def transfer_member(kk: KKPath, nik: NIKPath, body: TransferRequest, officer: CurrentOfficer,
                          svc: IntakeDep, idempotency_key: IdempotencyKey = None) -> TransferResult:
    """Moves a member to another registered household; both get a revision (transfer_out, transfer_in)."""
    require_role(officer, *TRANSFER_ROLES)
    checked(kk, check_kk_number, "kk")
    checked(nik, check_nik, "nik")
    return await svc.transfers.request(kk, nik, body, caller_of(officer), idempotency_key)


@complaints.post("", response_model=FilingResult, status_code=status.HTTP_201_CREATED,
                 responses={200: {"model": FilingResult,
                                  "description": "An existing complaint: the same Idempotency-Key, or an open "
                                                 "complaint of the same resident and category"}})
async def file_complaint(body: ComplaintRequest, officer: CurrentOfficer, svc: IntakeDep, response: Response,
                         idempotency_key: IdempotencyKey = None) -> FilingResult:
    require_role(officer, *COMPLAINT_FILERS)
    result = await svc.desk.file(body, caller_of(officer), idempotency_key)
    if not result.created:
        response.status_code = status.HTTP_200_OK
    return result


@complaints.get("", response_model=ComplaintPage)
async def list_complaints(
    officer: CurrentOfficer, svc: IntakeDep,
    village_code: Annotated[str | None, Query(pattern=r"^[0-9]{2}\.[0-9]{2}\.[0-9]{2}\.[0-9]{4}$")] = None,
    status_: Annotated[ComplaintStatus | None, Query(alias="status")] = None,
    category: ComplaintCategory | None = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 20,
) -> ComplaintPage:
    """Complaints in the officer's scope (or one village of it), newest first."""
    return await svc.views.listing(caller_of(officer), village_code=village_code, status=status_,
                                   category=category, page=page, page_size=page_size)


@complaints.get("/{case_number:path}", response_model=ComplaintDetail)
async def complaint_status(case_number: Annotated[str, Path(pattern=CASE_NUMBER)], officer: CurrentOfficer,
                           svc: IntakeDep) -> ComplaintDetail:
    """A complaint with its status and history, by case number (e.g. 3573011001/2026/00001)."""
    return await svc.views.detail(case_number, caller_of(officer))


@residents.post("/export", responses={
    200: {"description": "The export: every service's records about the person; `complete` is false and "
                         "`unavailable` names the services that did not answer"},
    403: {"description": "Role other than back office or coordinator, or the resident's village (for a person "
                         "the registry does not know: the kecamatan that issued the NIK) is outside the "
                         "officer's scope (the attempt is recorded)"}})
async def export_resident(body: ExportRequest, officer: CurrentOfficer, svc: IntakeDep) -> JSONResponse:
    """A resident's personal data held by every service, as one JSON document (UU PDP right of access).

    The NIK travels in the body, never in the URL. Each export is recorded in the access log.
    """
    require_role(officer, *EXPORT_ROLES)
    document = await svc.exports.export(body.nik, caller_of(officer))
    name = f"resident-export-{document['export_id']}.json"
    return JSONResponse(document, headers={"Content-Disposition": f'attachment; filename="{name}"'})


ROUTERS = (households, complaints, residents)
