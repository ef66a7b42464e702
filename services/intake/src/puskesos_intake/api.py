"""HTTP edge for officers (OpenAPI at /openapi.json).

Roles: the back office registers and updates households and moves members (a kecamatan
coordinator may move members too); the front office files complaints; any officer whose scope
covers the village reads. ``GET /complaints/{case_number}`` also needs a token (of any role,
in scope): case numbers are sequential and guessable, so they are no secret. The WhatsApp bot is
a system: it asks the ``complaint_status`` NATS command, which answers a view without personal
data (no names, NIKs, phones or descriptions). ``POST /residents/export`` hands a resident their
data held by every service (UU PDP; back office or coordinator, resident in scope; see ``exports``).

No KK or NIK ever travels in a URL path (URLs are logged): ``PUT /households`` takes the KK from the
body, ``POST /households/search`` finds a household by a member's NIK or by KK (masked unless the body
asks ``reveal`` with a ``purpose``: a reveal is recorded in the access log, see ``reveals``),
``POST /households/transfers`` moves a member, ``POST /residents/complaints`` lists a resident's
complaints. ``POST /households/import`` takes a batch of the registry CSV (back office; ``registry_import``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse
from puskesos_shared.auth import CurrentOfficer, Officer, require_role
from puskesos_shared.contracts.intake import ComplaintCategory, Household
from puskesos_shared.contracts.primitives import NIK, OfficerRole
from pydantic import BaseModel, ConfigDict, Field

from .context import Caller
from .domain.complaints import ComplaintRequest
from .domain.progress import ComplaintStatus
from .exports import EXPORT_ROLES, ExportRequest, ResidentExports
from .filing import ComplaintDesk, FilingResult
from .registry import HouseholdRegistry, Outcome, RegistrationResult
from .registry_import import ImportBatch, ImportResult, RegistryImport
from .reveals import HouseholdLookup, HouseholdSearch, MaskedHouseholdRecord, RevealedHouseholdRecord
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
    lookup: HouseholdLookup


async def intake(request: Request) -> Intake:
    """The service's use cases (async, so FastAPI does not hop to a worker thread for it)."""
    found: Intake = request.app.state.runtime.state["intake"]
    return found


IntakeDep = Annotated[Intake, Depends(intake)]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200)]


def caller_of(officer: Officer) -> Caller:
    return Caller(actor=officer.actor(), covers=officer.covers, scope=officer.scope)


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


@households.post("/search", response_model=MaskedHouseholdRecord | RevealedHouseholdRecord, responses={
    403: {"description": "The household's village is outside the officer's scope; with reveal: true also a role "
                         "other than back office, front office or coordinator (a refused reveal is recorded)"},
    503: {"description": "A reveal that could not be recorded in the access log (not handed out)"}})
async def search_household(body: HouseholdSearch, officer: CurrentOfficer,
                           svc: IntakeDep) -> MaskedHouseholdRecord | RevealedHouseholdRecord:
    """A household by a member's NIK or by its KK, both in the body (never in the URL: URLs are logged).

    Personal data (NIKs, KK, names, birth dates, address, phone) comes back masked (``masked: true``). With
    ``"reveal": true`` and a ``purpose`` the record comes back unmasked (``masked: false``, ``access_id``): back
    office, front office and coordinator, within their scope; every reveal, refused ones too, is recorded in
    the access log (who, when, the KK's keyed hash, the purpose) before the answer is sent.
    """
    return await svc.lookup.search(body, caller_of(officer))


@households.post("/import", response_model=ImportResult)
async def import_households(batch: ImportBatch, officer: CurrentOfficer, svc: IntakeDep) -> ImportResult:
    """Registers a batch of rows of the registry CSV (``puskesos registry import`` streams a file in batches).

    The same rules and events as ``POST /households``; rejected households come back with row, column
    and rule (never the value). Importing the same rows again registers nothing twice.
    """
    require_role(officer, *HOUSEHOLD_WRITERS)
    return await svc.imports.import_batch(batch, caller_of(officer))


@households.put("", response_model=RegistrationResult, responses={
    404: {"description": "No household is registered with the body's kk_number (register it with POST /households)"}})
async def update_household(household: Household, officer: CurrentOfficer, svc: IntakeDep) -> RegistrationResult:
    """Updates a registered household; the KK is the body's ``kk_number`` (never in the URL)."""
    require_role(officer, *HOUSEHOLD_WRITERS)
    return await svc.registry.register(household, caller_of(officer), must_exist=True)


@households.post("/transfers", response_model=TransferResult)
async def transfer_member(body: TransferRequest, officer: CurrentOfficer, svc: IntakeDep,
                          idempotency_key: IdempotencyKey = None) -> TransferResult:
    """Moves the member ``nik`` from the household ``from_kk`` to the registered household ``to_kk``; both get a
    revision (transfer_out, transfer_in). The numbers travel in the body, never in the URL."""
    require_role(officer, *TRANSFER_ROLES)
    return await svc.transfers.request(body, caller_of(officer), idempotency_key)


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


class ResidentComplaints(BaseModel):
    """The body of ``POST /residents/complaints``: the resident's NIK (never in the URL) and the page."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    nik: NIK
    page: int = Field(default=1, ge=1, le=10_000)
    page_size: int = Field(default=20, ge=1, le=100)


@residents.post("/complaints", response_model=ComplaintPage)
async def resident_complaints(body: ResidentComplaints, officer: CurrentOfficer, svc: IntakeDep) -> ComplaintPage:
    """Every complaint filed under the resident's NIK (as complainant), newest first, in the officer's scope
    (complaints filed in villages outside it are left out); the items are those of ``GET /complaints``."""
    return await svc.views.of_resident(body.nik, caller_of(officer), page=body.page, page_size=body.page_size)


ROUTERS = (households, complaints, residents)
