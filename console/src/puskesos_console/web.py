"""What every page needs: the request's context (session, language, CSRF), rendering, navigation by role,
the error pages and problem details turned into friendly messages."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from fastapi import Request
from fastapi.templating import Jinja2Templates
from lokal import partial_mask
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.http import parse_networks
from puskesos_shared.regions import village_name, villages_of
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from .client import Api, ApiError, FieldError
from .i18n import LANGUAGES, Translator, language
from .nik import check_nik
from .security import (
    CSRF_FIELD,
    CSRF_HEADER,
    LANG_COOKIE,
    PRE_SESSION_COOKIE,
    SESSION_COOKIE,
    SIGNED_IN_COOKIE,
    Session,
    TokenUnreadable,
    clear_cookie,
    csrf_token,
    csrf_valid,
    new_pre_session,
    read_claims,
    set_cookie,
)
from .settings import ConsoleSettings

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.trim_blocks = True
templates.env.lstrip_blocks = True

R = OfficerRole
READERS = (R.FRONT_OFFICE, R.BACK_OFFICE, R.ASSESSOR, R.COORDINATOR)


@dataclass(frozen=True)
class NavItem:
    path: str
    key: str
    roles: tuple[OfficerRole, ...]


#: The pages, in menu order, and the roles the menu shows them to (the APIs decide what a token may do).
NAV = (
    NavItem("/", "nav.dashboard", tuple(OfficerRole)),
    NavItem("/households/search", "nav.household_search", READERS),
    NavItem("/complaints/new", "nav.complaint_new", (R.FRONT_OFFICE,)),
    NavItem("/residents/complaints", "nav.resident_complaints", READERS),
    NavItem("/complaints", "nav.complaints", READERS),
    NavItem("/households/register", "nav.household_register", (R.BACK_OFFICE,)),
    NavItem("/cases", "nav.cases", (R.ASSESSOR, R.BACK_OFFICE, R.COORDINATOR)),
    NavItem("/escalations", "nav.escalations", (R.COORDINATOR, R.OPERATOR)),
    NavItem("/evaluation", "nav.evaluation", (R.COORDINATOR, R.OPERATOR)),
    NavItem("/rounds", "nav.rounds", (R.OPERATOR,)),
    NavItem("/audit/verify", "nav.audit_verify", (R.AUDITOR,)),
    NavItem("/audit/trace", "nav.audit_trace", (R.AUDITOR,)),
    NavItem("/audit/decisions", "nav.audit_decisions", (R.AUDITOR,)),
)


class SignInRequired(Exception):
    """No session: to the sign-in page (or the "session ended" page when one was there)."""


class SessionExpired(Exception):
    pass


class CsrfRejected(Exception):
    pass


@dataclass
class Ctx:
    request: Request
    settings: ConsoleSettings
    session: Session | None
    t: Translator
    new_pre_session: str | None = None
    extra_cookies: list[tuple[str, str, int]] = field(default_factory=list)

    @property
    def lang(self) -> str:
        return self.t.lang

    @property
    def csrf_basis(self) -> str | None:
        if self.session is not None:
            return self.session.token
        return self.new_pre_session or self.request.cookies.get(PRE_SESSION_COOKIE)

    @property
    def csrf(self) -> str:
        return csrf_token(self.request.app.state.secret, self.csrf_basis or "")

    @property
    def api(self) -> Api:
        http: httpx.AsyncClient = self.request.app.state.http
        return Api(http, self.settings, self.session.token if self.session else None)

    @property
    def officer(self) -> Session:
        if self.session is None:
            raise SignInRequired()
        return self.session

    def nav(self) -> list[NavItem]:
        if self.session is None:
            return []
        return [item for item in NAV if self.session.role in item.roles]

    def villages(self) -> list[tuple[str, str]]:
        """The villages of the officer's scope, for a select: (code, "name (code)")."""
        codes: list[str] = []
        for code in self.officer.scope:
            codes.extend([code] if code.count(".") == 3 else villages_of(code))
        return [(c, f"{village_name(c) or c} ({c})") for c in dict.fromkeys(codes)]


def trusted_networks(settings: ConsoleSettings) -> tuple[Any, ...]:
    return parse_networks(settings.trusted_proxies.split(","))


def context(request: Request, *, required: bool = True) -> Ctx:
    """The request's context; ``required``: a page for signed-in officers only."""
    settings: ConsoleSettings = request.app.state.settings
    t = Translator(language(request.cookies.get(LANG_COOKIE)))
    session: Session | None = None
    raw = request.cookies.get(SESSION_COOKIE)
    if raw:
        try:
            session = read_claims(raw)
        except TokenUnreadable:
            session = None
        if session is not None and session.expired:
            if required:
                raise SessionExpired()
            session = None
    if session is None and required:
        if request.cookies.get(SIGNED_IN_COOKIE):
            raise SessionExpired()
        raise SignInRequired()
    ctx = Ctx(request=request, settings=settings, session=session, t=t)
    if session is None and not request.cookies.get(PRE_SESSION_COOKIE):
        ctx.new_pre_session = new_pre_session()
    return ctx


async def form_of(ctx: Ctx) -> FormData:
    """The POSTed form, after its CSRF token was checked."""
    form = await ctx.request.form()
    presented = form.get(CSRF_FIELD)
    if not csrf_valid(ctx.request.app.state.secret, ctx.csrf_basis,
                      presented if isinstance(presented, str) else None):
        raise CsrfRejected()
    return form


def check_csrf_header(ctx: Ctx) -> None:
    if not csrf_valid(ctx.request.app.state.secret, ctx.csrf_basis, ctx.request.headers.get(CSRF_HEADER)):
        raise CsrfRejected()


def text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def render(ctx: Ctx, template: str, status: int = 200, **values: Any) -> Response:
    response = templates.TemplateResponse(ctx.request, template, {
        "ctx": ctx, "t": ctx.t, "lang": ctx.lang, "languages": LANGUAGES, "officer": ctx.session,
        "nav": ctx.nav(), "csrf": ctx.csrf, "path": ctx.request.url.path, **values,
    }, status_code=status)
    finish(ctx, response)
    return response


def finish(ctx: Ctx, response: Response) -> None:
    trusted = trusted_networks(ctx.settings)
    if ctx.new_pre_session:
        set_cookie(response, ctx.request, trusted, PRE_SESSION_COOKIE, ctx.new_pre_session, 86_400)
    for name, value, max_age in ctx.extra_cookies:
        if value:
            set_cookie(response, ctx.request, trusted, name, value, max_age)
        else:
            clear_cookie(response, ctx.request, trusted, name)


def redirect(ctx: Ctx, path: str) -> Response:
    response = RedirectResponse(path, status_code=303)
    finish(ctx, response)
    return response


def safe_next(path: str) -> str:
    """A path on this site to go back to (never another origin), without its query."""
    parts = urlsplit(path)
    if parts.scheme or parts.netloc or not parts.path.startswith("/") or parts.path.startswith("//"):
        return "/"
    return parts.path


def sign_in(ctx: Ctx, session: Session) -> None:
    ttl = int(session.expires_at - time.time())
    ctx.extra_cookies += [(SESSION_COOKIE, session.token, ttl), (SIGNED_IN_COOKIE, "1", ttl + 86_400),
                          (PRE_SESSION_COOKIE, "", 0)]


def sign_out(ctx: Ctx) -> None:
    ctx.extra_cookies += [(SESSION_COOKIE, "", 0), (SIGNED_IN_COOKIE, "", 0)]


# -- problem details as people read them -------------------------------------------------------------

def problem_message(t: Translator, error: ApiError) -> str:
    for key in (f"problem.{error.code}", f"problem.status.{error.status}"):
        if t.has(key):
            return t(key)
    return t("problem.generic")


def field_message(t: Translator, error: FieldError, value: str = "") -> str:
    """A field error in the officer's language; a NIK the API refused is explained by lokal-id."""
    if error.field.endswith("nik") and value and error.type in ("value_error", "string_pattern_mismatch",
                                                                 "string_too_short", "string_too_long"):
        check = check_nik(t, value)
        if check.errors:
            return "; ".join(check.errors)
    key = f"fielderror.{error.type}"
    return t(key) if t.has(key) else (error.msg or t("problem.generic"))


def field_errors(t: Translator, error: ApiError, values: dict[str, str],
                 rename: dict[str, str] | None = None) -> tuple[dict[str, str], list[str]]:
    """(messages by form field, messages for the form as a whole). ``rename`` maps an API field
    (``members.0.nik``) to the form's name for it when they differ."""
    by_field: dict[str, str] = {}
    general: list[str] = []
    for item in error.errors:
        name = (rename or {}).get(item.field, item.field)
        if name and name in values:
            by_field.setdefault(name, field_message(t, item, values.get(name, "")))
        else:
            general.append(field_message(t, item))
    if error.status != 422 or not (by_field or general):
        general.insert(0, problem_message(t, error))
    elif by_field:
        general.insert(0, t("form.fields_marked", count=len(by_field)))
    return by_field, general


# -- template filters --------------------------------------------------------------------------------

def _masked(value: object, kind: str, revealed: bool) -> str:
    """Personal data as the masked view shows it (whatever the service already masked stays as it is)."""
    text_value = "" if value is None else str(value)
    if revealed or not text_value or "*" in text_value:
        return text_value
    if kind == "NIK":
        return partial_mask("NIK", text_value) if len(text_value) == 16 else "*" * len(text_value)
    if kind == "KK":
        return partial_mask("KK", text_value) if len(text_value) == 16 else "*" * len(text_value)
    if kind == "NAME":
        return partial_mask("NAME", text_value)
    if kind == "DATE":
        return "**-**-" + text_value[:4] if len(text_value) >= 4 else "***"
    return "***"


def _village(code: object) -> str:
    name = village_name(str(code)) if code else None
    return f"{name} ({code})" if name else str(code or "")


def _options(values: object, t: Translator, group: str) -> list[tuple[str, str]]:
    return [(str(v), t.enum(group, v)) for v in values] if isinstance(values, tuple | list) else []


def _combine_focus(attrs: dict[str, Any], focus: object, name: str) -> dict[str, Any]:
    return {**attrs, "autofocus": "autofocus"} if isinstance(focus, str) and focus == name else attrs


templates.env.filters.update(masked=_masked, village=_village, options=_options, combine_focus=_combine_focus)
