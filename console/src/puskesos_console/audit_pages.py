"""The auditor's pages: verify the hash chain, trace a decision's lineage (drawn as SVG), replay decisions.

Everything comes from the audit service's read-only API with the auditor's token. A NIK or KK to
trace travels in a POST body (the console's form and the API's ``POST /audit/trace``), never in a URL.
The lineage graph is drawn here, on the server (``lineage.py``), as inline SVG without style attributes.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from markupsafe import Markup
from puskesos_audit.verify import FAILURES as FAILURE_KINDS
from starlette.responses import Response

from .client import ApiError
from .lineage import MAX_LABEL, Box, layout, render_svg, text_list
from .web import Ctx, context, field_errors, form_of, render, text

router = APIRouter()

#: What an auditor can trace, in the select's order (the API knows a few more kinds).
TRACE_KINDS = ("allocation", "disbursement", "case", "complaint", "assessment", "referral", "nik", "kk")
PERSONAL_KINDS = ("nik", "kk")
MAX_NODES = 300
MAX_SEQ = 10**15


def _seq(value: str) -> int | None:
    return int(value) if value.isdigit() and 1 <= int(value) <= MAX_SEQ else None


def _range(from_seq: str, to_seq: str) -> dict[str, int]:
    params = {}
    for name, raw in (("from_seq", from_seq), ("to_seq", to_seq)):
        if (seq := _seq(raw.strip())) is not None:
            params[name] = seq
    return params


# -- verify ------------------------------------------------------------------------------------------

@router.get("/audit/verify")
async def verify_page(request: Request, run: int = 0, from_seq: str = "", to_seq: str = "") -> Response:
    ctx = context(request)
    params = _range(from_seq, to_seq)
    report = await ctx.api.call("audit", "GET", "/audit/verify", params=params) if run else None
    first_break = None
    if report:
        failures = [f for f in report.get("findings") or [] if f.get("kind") in FAILURE_KINDS]
        first_break = failures[0] if failures else None
    return render(ctx, "audit_verify.html", report=report, first_break=first_break, failure_kinds=FAILURE_KINDS,
                  from_seq=params.get("from_seq", ""), to_seq=params.get("to_seq", ""))


# -- trace -------------------------------------------------------------------------------------------

def _trace_form(ctx: Ctx, status: int = 200, **values: Any) -> Response:
    values.setdefault("errors", {})
    values.setdefault("general", [])
    values.setdefault("kind", "allocation")
    values.setdefault("value", "")
    return render(ctx, "audit_trace.html", status=status,
                  kinds=[(k, ctx.t(f"audit.kind.{k}")) for k in TRACE_KINDS], **values)


@router.get("/audit/trace")
async def trace_page(request: Request) -> Response:
    ctx = context(request)
    return _trace_form(ctx)


def node_words(ctx: Ctx) -> Any:
    """Labels of the graph's boxes in the officer's language (still nothing personal)."""
    t = ctx.t

    def words(kind: str, node: dict[str, Any]) -> tuple[str, ...]:
        if kind == "external":
            return (t("audit.graph.external"), str(node.get("id", "")).removeprefix("external:")[:13] + "…")
        lines = [f"#{node.get('seq')} {node.get('event_type') or '-'}"]
        day = t.date(str(node.get("occurred_at"))) if node.get("occurred_at") else ""
        lines.append(" · ".join(p for p in (day, str(node.get("village_code") or "")) if p))
        decision = node.get("decision") or {}
        if kind == "error":
            lines.append(t("audit.graph.hidden"))
        elif isinstance(decision, dict) and decision.get("kind"):
            lines.append(t.enum("audit.decision", decision["kind"]))
        return tuple(line if len(line) <= MAX_LABEL else line[:MAX_LABEL - 1] + "…" for line in lines if line)

    return words


@router.post("/audit/trace")
async def trace_run(request: Request) -> Response:
    ctx = context(request)
    form = await form_of(ctx)
    kind, value = text(form, "kind"), "".join(text(form, "value").split())
    shown = "" if kind in PERSONAL_KINDS else value  # a NIK or KK is not written back into the page
    if kind not in TRACE_KINDS or not value:
        errors = {"value": ctx.t("fielderror.missing")} if not value else {"kind": ctx.t("fielderror.enum")}
        return _trace_form(ctx, status=422, kind=kind, value=shown, errors=errors)
    try:
        result = await ctx.api.call("audit", "POST", "/audit/trace",
                                    json={"kind": kind, "value": value, "max_nodes": MAX_NODES})
    except ApiError as exc:
        if exc.status in (401, 403):
            raise
        by_field, general = field_errors(ctx.t, exc, {"kind": kind, "value": shown})
        if kind in PERSONAL_KINDS and "value" in by_field:
            by_field["value"] = ctx.t(f"audit.trace.invalid_{kind}")
        return _trace_form(ctx, status=exc.status, kind=kind, value=shown, errors=by_field, general=general)
    placed = layout(result, node_words(ctx))
    title = ctx.t("audit.graph.title", kind=ctx.t(f"audit.kind.{kind}"))
    desc = ctx.t("audit.graph.desc", nodes=len(result.get("nodes") or []), edges=len(placed.edges),
                 decisions=len(result.get("decisions") or []))
    svg = Markup(render_svg(placed, title=title, desc=desc))  # noqa: S704 - built from escaped parts only
    nodes = {str(n["id"]): n for n in result.get("nodes") or []}
    items: list[tuple[Box, list[tuple[Box, str]], dict[str, Any]]] = [
        (box, causes, nodes.get(box.id, {})) for box, causes in text_list(placed)]
    return _trace_form(ctx, kind=kind, value=shown, result=result, svg=svg, items=items)


# -- decision replay ---------------------------------------------------------------------------------

@router.get("/audit/decisions")
async def decisions_page(request: Request, run: int = 0, from_seq: str = "", to_seq: str = "") -> Response:
    ctx = context(request)
    params = _range(from_seq, to_seq)
    report = await ctx.api.call("audit", "GET", "/audit/decisions", params=params) if run else None
    return render(ctx, "audit_decisions.html", report=report, from_seq=params.get("from_seq", ""),
                  to_seq=params.get("to_seq", ""))
