"""Casework pages (referral service): the village's cases with their SLA state, a case with its timeline,
assessment, referral, a target's answer and closure (assessors, back office); escalations to act on and the
monthly evaluation per village with a chart (the kecamatan's TKSK coordinator, the Dinas Sosial).

Case ids (UUIDs) are the only identifiers in URLs; NIK and KK of a case are shown masked. Every command
carries a ``command_id`` generated with the form, so a form sent twice is applied once.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import APIRouter, Request
from markupsafe import Markup, escape
from puskesos_shared.contracts.primitives import OfficerRole, Program
from puskesos_shared.regions import village_name, villages_of
from starlette.exceptions import HTTPException
from starlette.responses import Response

from .client import ApiError
from .i18n import WIB, Translator
from .web import Ctx, context, field_errors, form_of, redirect, render, templates, text

router = APIRouter()
R = OfficerRole

#: Observations an assessor ticks (the referral service's ``Observations`` flags), in form order.
OBSERVATIONS = ("needs_hospital_care", "chronic_illness", "has_health_insurance", "pregnant_member",
                "child_neglected", "elderly_alone", "homeless", "begging", "disaster_affected",
                "needs_rehabilitation", "disability_support_needed", "income_verified")
PROGRAMS = tuple(p.value for p in Program if p not in (Program.HOSPITAL_REFERRAL, Program.REHABILITATION))
RESOLUTIONS = ("resolved", "referred_and_completed", "rejected", "withdrawn")
OUTCOMES = ("accepted", "rejected", "completed")
CASE_STATUSES = ("open", "closed", "all")
SLA_FILTERS = ("on_track", "at_risk", "breached")
ESCALATION_STATUSES = ("open", "acknowledged", "resolved")
ESCALATION_ACTIONS = ("returned_to_village", "handled_at_level")
_MONTH = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


# -- words and pictures (pure: unit-tested) ----------------------------------------------------------

def counted(t: Translator, key: str, count: int) -> str:
    """``key`` with ``{count}``; ``key.one`` when the count is 1 and the language has a singular."""
    return t(f"{key}.one" if count == 1 and t.has(f"{key}.one") else key, count=count)


def sla_words(t: Translator, row: Mapping[str, Any]) -> str:
    """A case's SLA in working days as people say it: "2 hari kerja lagi", "jatuh tempo hari ini",
    "terlambat 3 hari kerja", "selesai tepat waktu" (the service counted them, holidays excluded)."""
    state = str(row.get("sla_state") or "")
    if state in ("closed_on_time", "closed_late"):
        return t(f"sla.{state}")
    overdue = int(row.get("overdue_working_days") or 0)
    left = int(row.get("working_days_left") or 0)
    if state == "breached" or overdue > 0:
        return counted(t, "sla.overdue", overdue) if overdue > 0 else t("sla.past_due")
    if left <= 0:
        return t("sla.due_today")
    return counted(t, "sla.left", left)


#: The chart's series: a summary count, its CSS class (fill in console.css) and its catalog key.
SERIES = (("filed", "bar-filed", "evaluation.filed"),
          ("closed_within_sla", "bar-on-time", "evaluation.closed_within_sla"),
          ("closed_late", "bar-late", "evaluation.closed_late"),
          ("referrals_completed", "bar-referrals", "evaluation.referrals_completed"))
CHART_WIDTH = 480
_LABEL_ROW, _BAR, _GAP, _GROUP_GAP, _LEGEND_ROW, _VALUE_ROOM = 20, 12, 3, 14, 22, 44


def evaluation_chart(t: Translator, villages: Sequence[tuple[str, Mapping[str, int]]], title: str) -> Markup:
    """A horizontal grouped bar chart per village as inline SVG: no script, no ``style`` attribute (the fills
    are classes of console.css), ``role="img"`` with a ``<title>`` and a ``<desc>`` naming every number
    (the table beside it has them too). ``villages``: (label, counts) in display order."""
    peak = max([1, *(int(counts.get(key, 0)) for _, counts in villages for key, _, _ in SERIES)])
    span = CHART_WIDTH - _VALUE_ROOM
    parts: list[str] = []
    y = 0
    for i, (_, css, key) in enumerate(SERIES):  # the legend: two items a row
        x = 0 if i % 2 == 0 else CHART_WIDTH // 2
        if i % 2 == 0 and i:
            y += _LEGEND_ROW
        parts.append(f'<rect class="{css}" x="{x}" y="{y + 3}" width="14" height="14"/>'
                     f'<text class="chart-label" x="{x + 20}" y="{y + 15}">{escape(t(key))}</text>')
    y += _LEGEND_ROW + 8
    described: list[str] = []
    for label, counts in villages:
        parts.append(f'<text class="chart-label chart-village" x="0" y="{y + 14}">{escape(label)}</text>')
        y += _LABEL_ROW
        numbers = []
        for key, css, name in SERIES:
            value = int(counts.get(key, 0))
            width = round(span * value / peak, 1)
            parts.append(f'<rect class="{css}" x="0" y="{y}" width="{max(width, 1.5) if value else 0}" '
                         f'height="{_BAR}"/>'
                         f'<text class="chart-value" x="{width + 4}" y="{y + _BAR - 1}">{value}</text>')
            numbers.append(f"{t(name)} {value}")
            y += _BAR + _GAP
        described.append(f"{label}: {', '.join(numbers)}")
        y += _GROUP_GAP
    height = max(y, _LEGEND_ROW * 2 + 8)
    desc = "; ".join(described) if described else t("evaluation.none")
    svg = (f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {CHART_WIDTH} {height}" '
           f'width="100%" role="img" aria-labelledby="chart-title chart-desc" preserveAspectRatio="xMinYMin meet">'
           f'<title id="chart-title">{escape(title)}</title><desc id="chart-desc">{escape(desc)}</desc>'
           f'{"".join(parts)}</svg>')
    return Markup(svg)  # noqa: S704 - every text in it was escaped above


def on_time_share(counts: Mapping[str, int]) -> int | None:
    """Cases closed within the SLA, in percent of the month's closed cases (None when none closed)."""
    closed = int(counts.get("closed", 0))
    return None if closed == 0 else round(100 * int(counts.get("closed_within_sla", 0)) / closed)


templates.env.globals["sla_words"] = sla_words


# -- helpers -----------------------------------------------------------------------------------------

def _case_id(value: str) -> str:
    if not _UUID.fullmatch(value):
        raise HTTPException(404)
    return value


def _choice(value: str | None, allowed: Sequence[str], default: str) -> str:
    return value if value is not None and value in allowed else default


def _page(value: int) -> int:
    return min(max(value, 1), 10_000)


def _areas(ctx: Ctx) -> list[tuple[str, str]]:
    """Places of the officer's scope a list can be asked for: villages and kecamatan (a regency: its
    kecamatan), as (code, label)."""
    out: dict[str, str] = {}
    for code in ctx.officer.scope:
        depth = code.count(".")
        if depth == 3:
            out[code] = _village_label(code)
        elif depth == 2:
            out[code] = ctx.t("area.kecamatan", code=code)
        elif depth == 1:
            for kecamatan in sorted({v.rsplit(".", 1)[0] for v in villages_of(code)}):
                out[kecamatan] = ctx.t("area.kecamatan", code=kecamatan)
    return list(out.items())


def _village_label(code: str) -> str:
    name = village_name(code)
    return f"{name} ({code})" if name else code


def _scope_params(area: str) -> dict[str, str]:
    return {"village_code": area} if area.count(".") == 3 else {"kecamatan_code": area}


def _command_id(form_value: str) -> str:
    try:
        return str(uuid.UUID(form_value))
    except ValueError:
        return str(uuid.uuid4())


def _refusal(exc: ApiError) -> None:
    """Identity and scope refusals are pages of their own (the app's handler); the rest go in the form."""
    if exc.status in (401, 403, 404):
        raise exc


async def _case(ctx: Ctx, case_id: str) -> dict[str, Any]:
    found: dict[str, Any] = await ctx.api.call("referral", "GET", f"/cases/{case_id}")
    return found


def _can(ctx: Ctx, *roles: OfficerRole) -> bool:
    return ctx.officer.role in roles


# -- the village's cases -----------------------------------------------------------------------------

@router.get("/cases")
async def cases_page(request: Request, page: int = 1, area: str = "", status: str = "open",
                     sla: str = "") -> Response:
    ctx = context(request)
    areas = _areas(ctx)
    codes = [code for code, _ in areas]
    chosen = area if area in codes else (codes[0] if codes else "")
    status = _choice(status, CASE_STATUSES, "open")
    sla = _choice(sla, SLA_FILTERS, "") if status == "open" else ""
    page, size = _page(page), ctx.settings.console_page_size
    params: dict[str, Any] = {**_scope_params(chosen), "status": status, "limit": size, "offset": (page - 1) * size}
    if sla:
        params["sla_state"] = sla
    listing: dict[str, Any] = {"items": [], "total": 0}
    if chosen:
        listing = await ctx.api.call("referral", "GET", "/cases", params=params)
    total = int(listing.get("total", 0))
    query = f"area={chosen}&status={status}" + (f"&sla={sla}" if sla else "")
    return render(ctx, "case_list.html", listing=listing, page=page, pages=max((total + size - 1) // size, 1),
                  areas=areas, area=chosen, chosen_status=status, sla=sla, query=query,
                  statuses=[(s, ctx.t(f"cases.filter.{s}")) for s in CASE_STATUSES],
                  sla_filters=[(s, ctx.t(f"sla_state.{s}")) for s in SLA_FILTERS])


# -- one case ----------------------------------------------------------------------------------------

def _case_view(ctx: Ctx, case: dict[str, Any], status: int = 200, **values: Any) -> Response:
    values.setdefault("errors", {})
    values.setdefault("general", [])
    pending = [r for r in case.get("referrals", []) if r.get("status") in ("issued", "accepted")]
    latest = case["assessments"][-1] if case.get("assessments") else None
    role = ctx.officer.role
    return render(ctx, "case_detail.html", status=status, case=case, latest=latest, pending=pending,
                  outcomes=[(o, ctx.t(f"outcome.referral.{o}")) for o in OUTCOMES],
                  can_assess=role is R.ASSESSOR and case.get("status") != "closed",
                  can_close=role in (R.ASSESSOR, R.COORDINATOR) and case.get("status") != "closed",
                  can_respond=role in (R.ASSESSOR, R.BACK_OFFICE, R.COORDINATOR),
                  can_escalate=role in (R.COORDINATOR, R.OPERATOR) and bool(case.get("escalations")),
                  command_id=str(uuid.uuid4()), **values)


@router.get("/cases/{case_id}")
async def case_page(request: Request, case_id: str, done: str = "") -> Response:
    ctx = context(request)
    case = await _case(ctx, _case_id(case_id))
    notice = ctx.t(f"case.done.{done}") if done and ctx.t.has(f"case.done.{done}") else None
    return _case_view(ctx, case, notice=notice)


@router.post("/cases/{case_id}/respond")
async def record_response(request: Request, case_id: str) -> Response:
    ctx = context(request)
    case_id = _case_id(case_id)
    form = await form_of(ctx)
    values = {name: text(form, name) for name in ("referral_id", "outcome", "responded_by", "note")}
    body = {"referral_id": values["referral_id"] or None, "outcome": values["outcome"],
            "responded_by": values["responded_by"], "note": values["note"]}
    try:
        await ctx.api.call("referral", "POST", "/referrals/responses", json=body)
    except ApiError as exc:
        _refusal(exc)
        by_field, general = field_errors(ctx.t, exc, values)
        return _case_view(ctx, await _case(ctx, case_id), status=exc.status, errors=by_field, general=general,
                          values=values, focus_referral=values["referral_id"])
    return redirect(ctx, f"/cases/{case_id}?done=responded")


# -- assessment --------------------------------------------------------------------------------------

async def _active_rule_set(ctx: Ctx) -> dict[str, Any] | None:
    listed = await ctx.api.call("referral", "GET", "/rule-sets")
    rows = listed.get("rule_sets", []) if isinstance(listed, dict) else []
    return rows[0] if rows else None


async def _assess_form(ctx: Ctx, case: dict[str, Any], status: int = 200, **values: Any) -> Response:
    values.setdefault("errors", {})
    values.setdefault("general", [])
    values.setdefault("values", {})
    values.setdefault("command_id", str(uuid.uuid4()))
    return render(ctx, "case_assess.html", status=status, case=case, rule_set=await _active_rule_set(ctx),
                  observations=OBSERVATIONS, programs=PROGRAMS, **values)


@router.get("/cases/{case_id}/assess")
async def assess_page(request: Request, case_id: str) -> Response:
    ctx = context(request)
    return await _assess_form(ctx, await _case(ctx, _case_id(case_id)))


@router.post("/cases/{case_id}/assess")
async def assess(request: Request, case_id: str) -> Response:
    ctx = context(request)
    case_id = _case_id(case_id)
    form = await form_of(ctx)
    values: dict[str, Any] = {name: text(form, name) for name in ("verified_monthly_income", "kk_number", "note")}
    ticked = {name for name in OBSERVATIONS if text(form, name) == "1"}
    enrolled = [p for p in PROGRAMS if p in form.getlist("enrolled_programs")]
    values.update(ticked={n: True for n in ticked}, enrolled=enrolled)
    observations: dict[str, Any] = {name: name in ticked for name in OBSERVATIONS}
    observations["enrolled_programs"] = enrolled
    income = re.sub(r"[\s.]|^Rp", "", values["verified_monthly_income"], flags=re.IGNORECASE)
    if income:
        observations["verified_monthly_income"] = int(income) if income.isdigit() else income
    body: dict[str, Any] = {"command_id": _command_id(text(form, "command_id")), "observations": observations,
                            "note": values["note"]}
    if values["kk_number"]:
        body["kk_number"] = "".join(values["kk_number"].split())
    try:
        result = await ctx.api.call("referral", "POST", f"/cases/{case_id}/assessments", json=body)
    except ApiError as exc:
        _refusal(exc)
        rename = {"observations.verified_monthly_income": "verified_monthly_income"}
        by_field, general = field_errors(ctx.t, exc, values, rename)
        return await _assess_form(ctx, await _case(ctx, case_id), status=exc.status, errors=by_field,
                                  general=general, values=values, command_id=str(uuid.uuid4()))
    return render(ctx, "case_assessed.html", case=result.get("case", {}), result=result.get("result", {}),
                  version=result.get("rule_set_version", ""))


# -- referral ----------------------------------------------------------------------------------------

async def _refer_form(ctx: Ctx, case: dict[str, Any], status: int = 200, **values: Any) -> Response:
    values.setdefault("errors", {})
    values.setdefault("general", [])
    values.setdefault("values", {})
    listed = await ctx.api.call("referral", "GET", "/referral-targets",
                                params={"village_code": case["village_code"]})
    eligible = {e["program"] for e in (case["assessments"][-1]["result"]["eligibility"] if case.get("assessments")
                                       else []) if e.get("eligible")}
    targets = [(t["code"], f"{t['name']} · {ctx.t.enum('target_kind', t['kind'])}"
                + (f" ({t['program']})" if t.get("program") else "")) for t in listed.get("targets", [])]
    return render(ctx, "case_refer.html", status=status, case=case, targets=targets, eligible=sorted(eligible),
                  command_id=str(uuid.uuid4()), **values)


@router.get("/cases/{case_id}/refer")
async def refer_page(request: Request, case_id: str) -> Response:
    ctx = context(request)
    return await _refer_form(ctx, await _case(ctx, _case_id(case_id)))


@router.post("/cases/{case_id}/refer")
async def refer(request: Request, case_id: str) -> Response:
    ctx = context(request)
    case_id = _case_id(case_id)
    form = await form_of(ctx)
    values = {name: text(form, name) for name in ("target_code", "instructions", "due_in_working_days")}
    body: dict[str, Any] = {"command_id": _command_id(text(form, "command_id")), "target_code": values["target_code"],
                            "instructions": values["instructions"]}
    if values["due_in_working_days"]:
        due = values["due_in_working_days"]
        body["due_in_working_days"] = int(due) if due.isdigit() else due
    try:
        await ctx.api.call("referral", "POST", f"/cases/{case_id}/referrals", json=body)
    except ApiError as exc:
        _refusal(exc)
        by_field, general = field_errors(ctx.t, exc, values)
        return await _refer_form(ctx, await _case(ctx, case_id), status=exc.status, errors=by_field,
                                 general=general, values=values)
    return redirect(ctx, f"/cases/{case_id}?done=referred")


# -- closure -----------------------------------------------------------------------------------------

def _close_form(ctx: Ctx, case: dict[str, Any], status: int = 200, **values: Any) -> Response:
    values.setdefault("errors", {})
    values.setdefault("general", [])
    values.setdefault("values", {})
    return render(ctx, "case_close.html", status=status, case=case, command_id=str(uuid.uuid4()),
                  resolutions=[(r, ctx.t(f"resolution.{r}")) for r in RESOLUTIONS], **values)


@router.get("/cases/{case_id}/close")
async def close_page(request: Request, case_id: str) -> Response:
    ctx = context(request)
    return _close_form(ctx, await _case(ctx, _case_id(case_id)))


@router.post("/cases/{case_id}/close")
async def close(request: Request, case_id: str) -> Response:
    ctx = context(request)
    case_id = _case_id(case_id)
    form = await form_of(ctx)
    values = {name: text(form, name) for name in ("resolution", "reason")}
    body = {"command_id": _command_id(text(form, "command_id")), **values}
    try:
        await ctx.api.call("referral", "POST", f"/cases/{case_id}/close", json=body)
    except ApiError as exc:
        _refusal(exc)
        by_field, general = field_errors(ctx.t, exc, values)
        return _close_form(ctx, await _case(ctx, case_id), status=exc.status, errors=by_field, general=general,
                           values=values)
    return redirect(ctx, f"/cases/{case_id}?done=closed")


# -- escalations -------------------------------------------------------------------------------------

@router.get("/escalations")
async def escalations_page(request: Request, status: str = "open", page: int = 1) -> Response:
    ctx = context(request)
    status = _choice(status, ESCALATION_STATUSES, "open")
    page, size = _page(page), ctx.settings.console_page_size
    listing = await ctx.api.call("referral", "GET", "/escalations",
                                 params={"status": status, "page": page, "page_size": size})
    total = int(listing.get("total", 0))
    return render(ctx, "escalation_list.html", listing=listing, chosen_status=status, page=page,
                  pages=max((total + size - 1) // size, 1),
                  statuses=[(s, ctx.t(f"escalation_status.{s}")) for s in ESCALATION_STATUSES])


def _escalation_view(ctx: Ctx, case: dict[str, Any], status: int = 200, **values: Any) -> Response:
    values.setdefault("errors", {})
    values.setdefault("general", [])
    values.setdefault("values", {"action": "returned_to_village", "due_in_working_days": "3"})
    latest = case["escalations"][-1] if case.get("escalations") else None
    return render(ctx, "escalation.html", status=status, case=case, escalation=latest,
                  command_id=str(uuid.uuid4()),
                  actions=[(a, ctx.t(f"escalation_action.{a}")) for a in ESCALATION_ACTIONS], **values)


@router.get("/escalations/{case_id}")
async def escalation_page(request: Request, case_id: str, done: str = "") -> Response:
    ctx = context(request)
    case = await _case(ctx, _case_id(case_id))
    notice = ctx.t(f"escalation.done.{done}") if done and ctx.t.has(f"escalation.done.{done}") else None
    return _escalation_view(ctx, case, notice=notice)


@router.post("/escalations/{case_id}/acknowledge")
async def acknowledge(request: Request, case_id: str) -> Response:
    ctx = context(request)
    case_id = _case_id(case_id)
    form = await form_of(ctx)
    values = {"ack_note": text(form, "ack_note")}
    body = {"command_id": _command_id(text(form, "command_id")), "note": values["ack_note"]}
    try:
        await ctx.api.call("referral", "POST", f"/cases/{case_id}/escalation/acknowledge", json=body)
    except ApiError as exc:
        _refusal(exc)
        by_field, general = field_errors(ctx.t, exc, values, {"note": "ack_note"})
        return _escalation_view(ctx, await _case(ctx, case_id), status=exc.status, errors=by_field,
                                general=general)
    return redirect(ctx, f"/escalations/{case_id}?done=acknowledged")


@router.post("/escalations/{case_id}/resolve")
async def resolve(request: Request, case_id: str) -> Response:
    ctx = context(request)
    case_id = _case_id(case_id)
    form = await form_of(ctx)
    values = {name: text(form, name) for name in ("action", "note", "due_in_working_days")}
    body: dict[str, Any] = {"command_id": _command_id(text(form, "command_id")), "action": values["action"],
                            "note": values["note"]}
    due = values["due_in_working_days"]
    if due:
        body["due_in_working_days"] = int(due) if due.isdigit() else due
    elif values["action"] == "returned_to_village":
        return _escalation_view(ctx, await _case(ctx, case_id), status=422, values=values,
                                errors={"due_in_working_days": ctx.t("escalation.due_required")},
                                general=[ctx.t("form.fields_marked", count=1)])
    try:
        await ctx.api.call("referral", "POST", f"/cases/{case_id}/escalation/resolve", json=body)
    except ApiError as exc:
        _refusal(exc)
        by_field, general = field_errors(ctx.t, exc, values)
        return _escalation_view(ctx, await _case(ctx, case_id), status=exc.status, errors=by_field,
                                general=general, values=values)
    return redirect(ctx, f"/escalations/{case_id}?done=resolved")


# -- the monthly evaluation --------------------------------------------------------------------------

def _this_month() -> str:
    return dt.datetime.now(WIB).strftime("%Y-%m")


def _months(ctx: Ctx, count: int = 12) -> list[tuple[str, str]]:
    today = dt.datetime.now(WIB).date()
    out = []
    year, month = today.year, today.month
    for _ in range(count):
        out.append((f"{year:04d}-{month:02d}", f"{ctx.t(f'month.{month}')} {year}"))
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return out


@router.get("/evaluation")
async def evaluation_page(request: Request, area: str = "", month: str = "") -> Response:
    ctx = context(request)
    areas = _areas(ctx)
    codes = [code for code, _ in areas]
    chosen = area if area in codes else (codes[0] if codes else "")
    month = month if _MONTH.fullmatch(month) else _this_month()
    summary: dict[str, Any] = {"villages": {}, "totals": {}}
    if chosen:
        summary = await ctx.api.call("referral", "GET", "/cases/summary",
                                     params={**_scope_params(chosen), "month": month})
    year, number = (int(p) for p in month.split("-"))
    month_words = f"{ctx.t(f'month.{number}')} {year}"
    villages = [(_village_label(code), counts) for code, counts in summary.get("villages", {}).items()]
    title = ctx.t("evaluation.chart_title", month=month_words, area=dict(areas).get(chosen, chosen))
    months = _months(ctx)
    if month not in dict(months):
        months.append((month, month_words))
    return render(ctx, "evaluation.html", summary=summary, villages=villages, areas=areas, area=chosen,
                  month=month, months=months, month_words=month_words, on_time_share=on_time_share,
                  chart=evaluation_chart(ctx.t, villages, title) if villages else None, chart_title=title)
