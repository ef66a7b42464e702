"""The console in process against a stand-in intake: session, CSRF, headers, masking, field errors.
The browser tests (``test_browser.py``) run the real thing."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from puskesos_console.app import create_app
from puskesos_console.i18n import CATALOG_DIR, Translator, catalog
from puskesos_console.security import CSP, SESSION_COOKIE
from puskesos_console.settings import ConsoleSettings
from puskesos_shared.auth import Officer, issue_token
from puskesos_shared.contracts.primitives import OfficerRole

from console.tests.fake_intake import fake_intake

SECRET = "unit-test-signing-secret-0123456789abcdef"
VILLAGE = "35.73.01.1001"


def token(role: OfficerRole = OfficerRole.BACK_OFFICE, ttl: dt.timedelta = dt.timedelta(hours=1)) -> str:
    return issue_token(Officer(officer_id="bo-1", role=role, scope=(VILLAGE,)), SECRET, ttl=ttl)


@pytest.fixture
def calls() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def client(calls: list[dict[str, Any]], tmp_path: Path) -> Iterator[TestClient]:
    settings = ConsoleSettings(_env_file=None, console_secret="c" * 40)
    app = create_app(settings, transport=httpx.ASGITransport(app=fake_intake(calls)))
    with TestClient(app, base_url="http://console.test") as client:
        yield client


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert found, html[:500]
    return found.group(1)


def sign_in(client: TestClient, role: OfficerRole = OfficerRole.BACK_OFFICE) -> str:
    page = client.get("/login")
    response = client.post("/login", data={"token": token(role), "csrf_token": csrf_of(page.text)},
                           follow_redirects=False)
    assert response.status_code == 303, response.text
    return csrf_of(client.get("/").text)


def test_catalogs_have_the_same_keys() -> None:
    indonesian = json.loads((CATALOG_DIR / "id.json").read_text(encoding="utf-8"))
    english = json.loads((CATALOG_DIR / "en.json").read_text(encoding="utf-8"))
    assert set(indonesian) == set(english)
    assert all(value.strip() for value in [*indonesian.values(), *english.values()])


def test_templates_use_only_keys_of_the_catalogs() -> None:
    keys = set(catalog("id"))  # id.json and the area catalogs (id.casework.json, ...)
    used: set[str] = set()
    for path in (CATALOG_DIR.parent / "templates").glob("*.html"):
        used |= set(re.findall(r'\bt\("([a-z_.0-9]+[a-z0-9])"', path.read_text(encoding="utf-8")))
    assert used - keys == set()


def test_indonesian_formats() -> None:
    t = Translator("id")
    assert t.date(dt.date(2026, 12, 5)) == "5 Desember 2026"
    assert t.rupiah(1_250_000) == "Rp1.250.000"
    assert t.working_days_since(dt.date(2026, 12, 24), today=dt.date(2026, 12, 28)) == "1 hari kerja"
    assert Translator("en").date("2026-12-05") == "5 December 2026"


def test_every_response_carries_the_csp_and_headers(client: TestClient) -> None:
    for path in ("/login", "/static/console.css", "/no-such-page"):
        response = client.get(path)
        assert response.headers["content-security-policy"] == CSP
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
    missing = client.get("/no-such-page")
    assert missing.status_code == 404 and "Halaman tidak ditemukan" in missing.text


def test_unsigned_visitor_goes_to_sign_in(client: TestClient) -> None:
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login"


def test_session_cookie_is_http_only_strict_and_expires_with_the_token(client: TestClient) -> None:
    page = client.get("/login")
    response = client.post("/login", data={"token": token(), "csrf_token": csrf_of(page.text)},
                           follow_redirects=False)
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP, no trusted proxy
    max_age = int(re.search(r"Max-Age=(\d+)", cookie).group(1))  # type: ignore[union-attr]
    assert 3500 < max_age <= 3600


def test_a_token_the_services_refuse_is_not_a_session(client: TestClient) -> None:
    page = client.get("/login")
    forged = token() + "bad"
    response = client.post("/login", data={"token": forged, "csrf_token": csrf_of(page.text)})
    assert response.status_code == 400
    assert SESSION_COOKIE not in response.cookies


def test_post_without_the_csrf_token_is_refused(client: TestClient, calls: list[dict[str, Any]]) -> None:
    sign_in(client)
    response = client.post("/households/search", data={"kind": "kk", "number": "3573010502200077"})
    assert response.status_code == 403 and "Formulir kedaluwarsa" in response.text
    assert not [c for c in calls if c["path"] == "/households/search"]
    login = client.post("/login", data={"token": token()}, follow_redirects=False)
    assert login.status_code == 403


def test_registered_household_is_shown_masked_then_revealed_for_a_purpose(client: TestClient,
                                                                         calls: list[dict[str, Any]]) -> None:
    csrf = sign_in(client)
    form = {"csrf_token": csrf, "kk_number": "3573010502200077", "village_code": VILLAGE, "monthly_income": "900.000",
            "dependants": "2", "floor": "tanah", "wall": "bambu", "roof": "seng", "water": "pdam",
            "electricity": "450VA", "member_rows": "3", "members.0.nik": "3573010505800007",
            "members.0.name": "Slamet Riyadi", "members.0.birth_date": "1980-05-05", "members.0.sex": "L",
            "members.0.relationship": "kepala_keluarga", "action": "save"}
    saved = client.post("/households/register", data=form)
    assert saved.status_code == 200 and "Rumah tangga terdaftar" in saved.text
    sent = next(c["body"] for c in calls if c["path"] == "/households")
    assert sent["socio_economic"]["monthly_income"] == 900_000 and len(sent["members"]) == 1
    found = client.post("/households/search", data={"csrf_token": csrf, "kind": "kk", "number": "3573010502200077"})
    assert "3573********0007" in found.text and "Slamet Riyadi" not in found.text
    assert calls[-1]["body"] == {"kk": "3573010502200077"}
    shown = client.post("/households/reveal", data={"csrf_token": csrf, "kind": "kk", "number": "3573010502200077",
                                                     "purpose": "verifikasi di loket"})
    assert "Slamet Riyadi" in shown.text and "3573010505800007" in shown.text
    assert calls[-1]["body"] == {"kk": "3573010502200077", "reveal": True, "purpose": "verifikasi di loket"}


def test_a_refused_nik_is_explained_next_to_its_field(client: TestClient) -> None:
    csrf = sign_in(client)
    form = {"csrf_token": csrf, "kk_number": "3573010502200077", "village_code": VILLAGE, "member_rows": "2",
            "members.1.nik": "9973019901850008", "members.1.name": "X", "action": "save"}
    response = client.post("/households/register", data=form)
    assert response.status_code == 422
    field = re.search(r'id="f-members-1-nik-msg"[^>]*>([^<]*)<', response.text)
    assert field and "provinsi" in field.group(1)


def test_another_village_is_a_friendly_403(client: TestClient) -> None:
    csrf = sign_in(client)
    response = client.post("/households/search", data={"csrf_token": csrf, "kind": "kk", "number": "3573010502200099"})
    assert response.status_code == 403
    assert "Akses ditolak" in response.text and "di luar wilayah tugas" in response.text


def test_nik_check_endpoint_needs_the_csrf_header(client: TestClient) -> None:
    csrf = sign_in(client)
    refused = client.post("/api/nik-check", json={"nik": "3573014101850008"})
    assert refused.status_code == 403
    ok = client.post("/api/nik-check", json={"nik": "3573014101850008", "sex": "L"}, headers={"X-CSRF-Token": csrf})
    assert ok.json()["valid"] is True and ok.json()["warnings"]
    bad = client.post("/api/nik-check", json={"nik": "3573013201850008"}, headers={"X-CSRF-Token": csrf})
    assert bad.json()["valid"] is False and "tanggal" in bad.json()["errors"][0].lower()


def test_complaint_and_resident_listing(client: TestClient, calls: list[dict[str, Any]]) -> None:
    csrf = sign_in(client, OfficerRole.FRONT_OFFICE)
    page = client.get("/complaints/new")
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    filed = client.post("/complaints/new", data={
        "csrf_token": csrf, "idempotency_key": key, "nik": "3573010505800007", "category": "aid_not_received",
        "channel": "walk_in", "urgency": "high", "description": "Tidak menerima BLT", "village_code": VILLAGE})
    assert "3573011001/2026/00001" in filed.text
    assert calls[-1]["key"] == key and calls[-1]["body"]["complainant"] == {"nik": "3573010505800007"}
    listed = client.post("/residents/complaints", data={"csrf_token": csrf, "nik": "3573010505800007"})
    assert "3573011001/2026/00001" in listed.text and "hari kerja" in listed.text


def test_language_switch(client: TestClient) -> None:
    page = client.get("/login")
    switched = client.post("/lang", data={"csrf_token": csrf_of(page.text), "lang": "en", "next": "/login"},
                           follow_redirects=True)
    assert '<html lang="en">' in switched.text and "Sign in" in switched.text


def test_expired_session_has_a_clear_page(client: TestClient) -> None:
    sign_in(client)
    client.cookies.set(SESSION_COOKIE, token(ttl=dt.timedelta(seconds=-5)), domain="console.test")
    response = client.get("/")
    assert response.status_code == 401 and "Sesi Anda telah berakhir" in response.text
