"""Casework pieces without a browser: the SLA in words, the evaluation chart as SVG, the area catalogs, and
the pages in process against a stand-in referral service (problem details next to their fields)."""

from __future__ import annotations

import datetime as dt
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from puskesos_console.app import create_app
from puskesos_console.casework import SERIES, evaluation_chart, on_time_share, sla_words
from puskesos_console.i18n import CATALOG_DIR, Translator, catalog
from puskesos_console.settings import ConsoleSettings
from puskesos_shared.auth import Officer, issue_token
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.problems import problem_response
from starlette.responses import JSONResponse, Response

SVG = "{http://www.w3.org/2000/svg}"
VILLAGE = "35.73.01.1002"
CASE_ID = "7b0c2a4e-5d1f-5a8e-9c3b-0d2e4f6a8b1c"
SECRET = "unit-test-signing-secret-0123456789abcdef"


# -- the SLA in words ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("row", "indonesian", "english"), [
    ({"sla_state": "on_track", "working_days_left": 2, "overdue_working_days": 0}, "2 hari kerja lagi",
     "2 working days left"),
    ({"sla_state": "at_risk", "working_days_left": 1, "overdue_working_days": 0}, "1 hari kerja lagi",
     "1 working day left"),
    ({"sla_state": "at_risk", "working_days_left": 0, "overdue_working_days": 0}, "jatuh tempo hari ini",
     "due today"),
    ({"sla_state": "breached", "working_days_left": 0, "overdue_working_days": 3}, "terlambat 3 hari kerja",
     "3 working days late"),
    ({"sla_state": "breached", "working_days_left": 0, "overdue_working_days": 1}, "terlambat 1 hari kerja",
     "1 working day late"),
    ({"sla_state": "breached", "working_days_left": 0, "overdue_working_days": 0}, "lewat tenggat",
     "past the deadline"),  # past the date on a day off: not yet a working day late
    ({"sla_state": "closed_late", "working_days_left": None, "overdue_working_days": None}, "selesai terlambat",
     "closed late"),
    ({"sla_state": "closed_on_time"}, "selesai tepat waktu", "closed on time"),
])
def test_sla_in_working_days_as_people_say_it(row: dict[str, Any], indonesian: str, english: str) -> None:
    assert sla_words(Translator("id"), row) == indonesian
    assert sla_words(Translator("en"), row) == english


# -- the chart -----------------------------------------------------------------------------------------

def _chart(villages: list[tuple[str, dict[str, int]]]) -> ET.Element:
    svg = str(evaluation_chart(Translator("id"), villages, "Evaluasi Desember 2026 <Blimbing>"))
    assert "style=" not in svg and "<script" not in svg  # works under the strict CSP
    return ET.fromstring(svg)


def test_chart_is_accessible_svg_with_bars_in_proportion() -> None:
    villages = [("Arjosari (35.73.01.1002)", {"filed": 8, "closed_within_sla": 4, "closed_late": 2,
                                              "referrals_completed": 1}),
                ("Balearjosari & Co", {"filed": 2, "closed_within_sla": 0, "closed_late": 1,
                                       "referrals_completed": 0})]
    root = _chart(villages)
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    assert root.get("aria-labelledby") == "chart-title chart-desc"
    title, desc = root.find(f"{SVG}title"), root.find(f"{SVG}desc")
    assert title is not None and title.text == "Evaluasi Desember 2026 <Blimbing>"  # escaped, then read back
    assert desc is not None and "Arjosari (35.73.01.1002): Keluhan masuk 8" in (desc.text or "")
    assert "Balearjosari & Co: Keluhan masuk 2" in (desc.text or "")
    bars = [r for r in root.iter(f"{SVG}rect") if r.get("y") and float(r.get("height", 0)) == 12]
    by_class: dict[str, list[float]] = {}
    for bar in bars:
        by_class.setdefault(bar.get("class", ""), []).append(float(bar.get("width", 0)))
    assert set(by_class) == {css for _, css, _ in SERIES}
    filed = by_class["bar-filed"]
    assert filed[0] > filed[1] > 0 and abs(filed[0] / filed[1] - 4) < 0.01  # 8 : 2
    assert by_class["bar-on-time"][1] == 0  # zero is no bar, and its number is still written
    values = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "chart-value"]
    assert values == ["8", "4", "2", "1", "2", "0", "1", "0"]
    viewbox = [float(v) for v in (root.get("viewBox") or "").split()]
    assert viewbox[2] == 480 and max(float(b.get("width", 0)) for b in bars) <= 480


def test_chart_without_cases_and_the_on_time_share() -> None:
    root = _chart([])
    desc = root.find(f"{SVG}desc")
    assert desc is not None and desc.text == "Tidak ada kasus pada bulan ini."
    assert on_time_share({"closed": 4, "closed_within_sla": 3}) == 75
    assert on_time_share({"closed": 0, "closed_within_sla": 0}) is None


# -- catalogs ------------------------------------------------------------------------------------------

def test_area_catalogs_have_the_same_keys_and_templates_use_only_catalog_keys() -> None:
    indonesian = json.loads((CATALOG_DIR / "id.casework.json").read_text(encoding="utf-8"))
    english = json.loads((CATALOG_DIR / "en.casework.json").read_text(encoding="utf-8"))
    assert set(indonesian) == set(english) and all(v.strip() for v in [*indonesian.values(), *english.values()])
    assert set(catalog("id")) == set(catalog("en"))
    used: set[str] = set()
    for path in (CATALOG_DIR.parent / "templates").glob("*.html"):
        used |= set(re.findall(r'\bt\("([a-z_.0-9]+[a-z0-9])"', path.read_text(encoding="utf-8")))
    assert used - set(catalog("id")) == set()


# -- the pages against a stand-in referral service -----------------------------------------------------

def _case() -> dict[str, Any]:
    return {"case_id": CASE_ID, "case_number": "3573011002/2026/00001", "category": "health_referral",
            "urgency": "normal", "village_code": VILLAGE, "kecamatan_code": "35.73.01", "status": "assessed",
            "level": "village", "filed_on": "2026-12-01", "sla_due_on": "2026-12-03", "level_due_on": "2026-12-03",
            "sla_working_days": 2, "sla_state": "breached", "working_days_left": 0, "overdue_working_days": 2,
            "subject_nik": "3573010505800007", "kk_number": "3573010502200123", "assessments": [], "referrals": [],
            "escalations": [], "closure": None,
            "timeline": [{"event_id": "e1", "event_type": "CaseOpened", "occurred_at": "2026-12-01T03:00:00+00:00",
                          "actor": {"kind": "system", "id": "referral", "role": None}, "summary": "case opened"}]}


def fake_services(calls: list[dict[str, Any]]) -> FastAPI:
    app = FastAPI()

    @app.get("/complaints")
    async def complaints() -> Response:
        return JSONResponse({"items": [], "page": 1, "page_size": 5, "total": 0})

    @app.get("/cases")
    async def cases(request: Request) -> Response:
        calls.append({"path": "/cases", "query": dict(request.query_params)})
        row = {k: v for k, v in _case().items() if k not in ("timeline", "assessments", "referrals")}
        return JSONResponse({"total": 1, "offset": 0, "limit": 20, "items": [{**row, "escalation_status": None}]})

    @app.get("/cases/summary")
    async def summary(request: Request) -> Response:
        calls.append({"path": "/cases/summary", "query": dict(request.query_params)})
        counts = {"filed": 3, "closed": 2, "closed_within_sla": 1, "closed_late": 1, "open": 1, "open_breached": 1,
                  "referrals_issued": 2, "referrals_completed": 1}
        return JSONResponse({"villages": {VILLAGE: counts}, "totals": counts})

    @app.get("/cases/{case_id}")
    async def case(case_id: str) -> Response:
        if case_id != CASE_ID:
            return problem_response("case_not_found", "no such case", status=404)
        return JSONResponse(_case())

    @app.post("/cases/{case_id}/close")
    async def close(request: Request) -> Response:
        body = await request.json()
        calls.append({"path": "/close", "body": body})
        if not body.get("reason"):
            return problem_response("invalid_request", "invalid", status=422, errors=[
                {"loc": ["body", "reason"], "msg": "String should have at least 1 character",
                 "type": "string_too_short"}])
        return JSONResponse({"duplicate": False}, status_code=201)

    return app


@pytest.fixture
def calls() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def client(calls: list[dict[str, Any]]) -> Iterator[TestClient]:
    settings = ConsoleSettings(_env_file=None, console_secret="c" * 40)
    app = create_app(settings, transport=httpx.ASGITransport(app=fake_services(calls)))
    with TestClient(app, base_url="http://console.test") as client:
        yield client


def _sign_in(client: TestClient, role: OfficerRole) -> str:
    token = issue_token(Officer(officer_id="as-1", role=role, scope=(VILLAGE,)), SECRET, ttl=dt.timedelta(hours=1))
    page = client.get("/login")
    csrf = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text).group(1)  # type: ignore[union-attr]
    assert client.post("/login", data={"token": token, "csrf_token": csrf}, follow_redirects=False).status_code == 303
    return re.search(r'name="csrf_token" value="([0-9a-f]+)"', client.get("/").text).group(1)  # type: ignore[union-attr]


def test_case_list_and_page_show_the_sla_in_words_and_mask_the_numbers(client: TestClient,
                                                                      calls: list[dict[str, Any]]) -> None:
    _sign_in(client, OfficerRole.ASSESSOR)
    listed = client.get("/cases?sla=breached&page=2")
    assert listed.status_code == 200 and "terlambat 2 hari kerja" in listed.text
    assert calls[-1]["query"] == {"village_code": VILLAGE, "status": "open", "limit": "20", "offset": "20",
                                  "sla_state": "breached"}
    page = client.get(f"/cases/{CASE_ID}")
    assert page.status_code == 200 and "1 Desember 2026" in page.text and "Kasus dibuka" in page.text
    assert "3573010505800007" not in page.text and "3573********0007" in page.text
    assert client.get("/cases/not-a-uuid").status_code == 404


def test_closure_refused_by_the_service_is_explained_next_to_the_field(client: TestClient,
                                                                       calls: list[dict[str, Any]]) -> None:
    csrf = _sign_in(client, OfficerRole.ASSESSOR)
    form = client.get(f"/cases/{CASE_ID}/close")
    command_id = re.search(r'name="command_id" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
    refused = client.post(f"/cases/{CASE_ID}/close", data={"csrf_token": csrf, "command_id": command_id,
                                                           "resolution": "resolved", "reason": ""})
    assert refused.status_code == 422
    message = re.search(r'id="f-reason-msg"[^>]*>([^<]*)<', refused.text)
    assert message and message.group(1) == "Terlalu pendek."
    assert calls[-1]["body"]["command_id"] == command_id
    done = client.post(f"/cases/{CASE_ID}/close", data={"csrf_token": csrf, "command_id": command_id,
                                                        "resolution": "resolved", "reason": "Selesai"},
                       follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"/cases/{CASE_ID}?done=closed"
    assert client.post(f"/cases/{CASE_ID}/close", data={"resolution": "resolved"}).status_code == 403  # no CSRF


def test_evaluation_page_has_the_chart_and_the_table(client: TestClient, calls: list[dict[str, Any]]) -> None:
    _sign_in(client, OfficerRole.COORDINATOR)
    page = client.get("/evaluation?month=2026-11")
    assert page.status_code == 200 and calls[-1]["query"] == {"village_code": VILLAGE, "month": "2026-11"}
    assert '<svg class="chart"' in page.text and 'role="img"' in page.text and "November 2026" in page.text
    assert 'id="evaluation-table"' in page.text and "50%" in page.text
    assert " style=" not in page.text
