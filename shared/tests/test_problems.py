"""Problem details (RFC 9457): the registry against the sources and the docs, and every handler path."""

from __future__ import annotations

import ast
import datetime as dt
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated

import httpx
import pytest
from fastapi import Body, FastAPI
from puskesos_shared.auth import CurrentOfficer, Officer, issue_token
from puskesos_shared.commands import CommandError, as_loc, validation_fields
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.http import SECURITY_HEADERS, RateLimits, install_http_defaults, is_json
from puskesos_shared.problems import PROBLEMS, STATUS_CODES, TYPE_PREFIX
from puskesos_shared.testing.problems import check_problem
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pymongo.errors import ServerSelectionTimeoutError
from starlette.exceptions import HTTPException

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted([*ROOT.glob("services/*/src/**/*.py"), *ROOT.glob("shared/src/**/*.py")])
#: Stand-ins for external systems (a bank, an SMS provider): their errors are theirs, not ours.
EXTERNAL = {"gateway_sim.py", "sink.py"}
#: Where a code is passed on rather than written (its origin is scanned, or is ``STATUS_CODES``).
FORWARDED = {
    ("service.py", "exc.code"),  # referral: a CaseRuleError as a CommandError
    ("auth.py", "exc.code"),  # an AuthError as a CommandError
    ("http_errors.py", "exc.code"),  # a CommandError as problem details
    ("http_errors.py", "code"),  # an HTTPException's status as its generic code
    ("problems.py", "code"),  # the builders calling each other
}
SECRET = "p" * 40
NIK = "3573010101800003"


# -- the registry, the sources and the docs --------------------------------------------------------
def _codes_in_sources() -> tuple[set[str], set[tuple[str, str]]]:
    """Codes written in the sources (``CommandError``/``CaseRuleError``/``AuthError`` raises and the
    problem builders' calls), and the calls that pass a code on."""
    codes: set[str] = set()
    forwarded: set[tuple[str, str]] = set()
    for path in SOURCES:
        if path.name in EXTERNAL:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            position = {"CommandError": 0, "CaseRuleError": 0, "problem_response": 0, "problem": 0,
                        "send_problem": 1, "AuthError": 1}.get(name)
            if position is None:
                continue
            arg = next((k.value for k in node.keywords if k.arg == "code"),
                       node.args[position] if len(node.args) > position else None)
            if arg is None and name == "AuthError":
                codes.add("invalid_token")
            elif isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                codes.add(arg.value)
            elif arg is not None:
                forwarded.add((path.name, ast.unparse(arg)))
    return codes, forwarded


def _docs_table() -> dict[str, tuple[str, str, int]]:
    text = (ROOT / "docs" / "conventions.md").read_text(encoding="utf-8")
    section = text.split("## Errors", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z_]+)` \| `([^`]+)` \| ([^|]+) \| (\d{3}) \|", section, re.MULTILINE)
    return {code: (uri, title.strip(), int(status)) for code, uri, title, status in rows}


def test_every_code_the_sources_raise_is_registered() -> None:
    codes, forwarded = _codes_in_sources()
    assert len(codes) > 40, "the scan found too little to be right"
    assert not codes - set(PROBLEMS), f"codes raised but not in problems.PROBLEMS: {sorted(codes - set(PROBLEMS))}"
    assert forwarded == FORWARDED, f"codes passed on from elsewhere: {sorted(forwarded)}"


def test_every_registered_code_is_used() -> None:
    codes, _ = _codes_in_sources()
    unused = set(PROBLEMS) - codes - set(STATUS_CODES.values())
    assert not unused, f"registered but never raised: {sorted(unused)}"


def test_the_docs_table_lists_the_registry() -> None:
    table = _docs_table()
    expected = {code: (TYPE_PREFIX + code, p.title, p.status) for code, p in PROBLEMS.items()}
    assert table == expected


def test_services_raise_no_bare_http_exceptions() -> None:
    raising = [f"{p.relative_to(ROOT)}" for p in SOURCES
               if p.name not in EXTERNAL and re.search(r"\bHTTPException\(", p.read_text(encoding="utf-8"))]
    assert not raising, f"raise CommandError with a code instead: {raising}"


# -- locations are lists ----------------------------------------------------------------------------
def test_a_command_error_keeps_locations_as_lists() -> None:
    assert as_loc("body.members.1.nik") == ["body", "members", 1, "nik"]
    assert as_loc(("path", "kk")) == ["path", "kk"] and as_loc("") == []
    exc = CommandError("invalid_request", "x", [{"loc": "body.members.1.nik", "msg": "bad"}], status=422)
    assert exc.fields == [{"loc": ["body", "members", 1, "nik"], "msg": "bad", "type": "invalid_request"}]


class Member(BaseModel):
    model_config = ConfigDict(extra="forbid")
    nik: str = Field(pattern=r"^[0-9]{16}$")


class Household(BaseModel):
    model_config = ConfigDict(extra="forbid")
    members: list[Member]


def test_validation_fields_give_list_locations_without_the_input() -> None:
    with pytest.raises(ValidationError) as caught:
        Household.model_validate({"members": [{"nik": NIK}, {"nik": "nik 3573019999999999"}]})
    fields = validation_fields(caught.value)
    assert [f["loc"] for f in fields] == [["members", 1, "nik"]]
    assert "3573019999999999" not in str(fields)


# -- every handler path -----------------------------------------------------------------------------
def make_app(*, max_body_bytes: int = 1024, rate_limits: RateLimits | None = None) -> FastAPI:
    app = FastAPI()
    install_http_defaults(app, max_body_bytes=max_body_bytes, rate_limits=rate_limits, auth_secret=SECRET)
    app.state.runtime = SimpleNamespace(settings=SimpleNamespace(auth_secret=SecretStr(SECRET)))

    @app.post("/households")
    async def register(household: Household) -> dict[str, int]:
        return {"members": len(household.members)}

    @app.post("/close")
    async def close(force: bool = False) -> dict[str, bool]:
        return {"closed": True}

    @app.put("/note")
    async def note(text: Annotated[str, Body(embed=True)]) -> dict[str, int]:
        return {"length": len(text)}

    @app.get("/refused")
    async def refused() -> None:
        raise CommandError("nik_in_other_household", "a NIK belongs to one household at a time",
                           [{"loc": "body.members.1.nik", "msg": "in another household",
                             "type": "nik_in_other_household"}], status=409)

    @app.get("/teapot")
    async def teapot() -> None:
        raise HTTPException(409, f"internal text naming {NIK}")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError(f"internals: /srv/app.py line 3, NIK {NIK}")

    @app.get("/db")
    async def db() -> None:
        raise ServerSelectionTimeoutError("mongo:27017: [Errno 111] Connection refused")

    @app.get("/mine")
    async def mine(officer: CurrentOfficer) -> dict[str, str]:
        return {"officer": officer.officer_id}

    return app


@asynccontextmanager
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # Starlette re-raises after a 500
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_an_invalid_body_is_a_422_invalid_request_naming_fields_not_values() -> None:
    async with client(make_app()) as http:
        r = await http.post("/households", json={"members": [{"nik": NIK}, {"nik": "Budi 0812345678"}]})
    body = check_problem(r, 422, "invalid_request")
    assert [e["loc"] for e in body["errors"]] == [["body", "members", 1, "nik"]]
    assert body["errors"][0]["type"] == "string_pattern_mismatch"
    assert "Budi" not in r.text and "0812345678" not in r.text


async def test_a_command_error_is_its_code_with_list_locations() -> None:
    async with client(make_app()) as http:
        r = await http.get("/refused")
    body = check_problem(r, 409, "nik_in_other_household")
    assert body["detail"] == "a NIK belongs to one household at a time"
    assert body["errors"] == [{"loc": ["body", "members", 1, "nik"], "msg": "in another household",
                               "type": "nik_in_other_household"}]


async def test_http_exceptions_take_the_code_of_their_status() -> None:
    async with client(make_app()) as http:
        unknown = await http.get("/nowhere")
        wrong_method = await http.delete("/households")
        raised = await http.get("/teapot")
    assert check_problem(unknown, 404, "not_found")["errors"] == []
    check_problem(wrong_method, 405, "method_not_allowed")
    assert wrong_method.headers["allow"] == "POST"
    assert check_problem(raised, 409, "conflict")["detail"] == "Conflict" and NIK not in raised.text


async def test_a_body_over_the_limit_is_413() -> None:
    async with client(make_app(max_body_bytes=64)) as http:
        declared = await http.post("/households", json={"members": [{"nik": NIK}] * 10})

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield b"x" * 20

        streamed = await http.post("/households", content=chunks(), headers={"content-type": "application/json"})
    check_problem(declared, 413, "payload_too_large")
    check_problem(streamed, 413, "payload_too_large")


async def test_a_body_that_is_not_json_is_415_and_a_request_without_a_body_needs_no_type() -> None:
    async with client(make_app()) as http:
        for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data", "",
                             "*/*+json", "application/jsonx"):
            r = await http.post("/households", content=b'{"members": []}', headers={"content-type": content_type})
            check_problem(r, 415, "unsupported_media_type")
        r = await http.post("/households", content=b'{"members": []}')  # no Content-Type at all
        check_problem(r, 415, "unsupported_media_type")
        r = await http.put("/note", content=b"hello", headers={"content-type": "text/plain"})
        check_problem(r, 415, "unsupported_media_type")
        for content_type in ("application/json", "Application/JSON; charset=utf-8", "application/merge-patch+json"):
            ok = await http.post("/households", content=b'{"members": []}', headers={"content-type": content_type})
            assert ok.status_code == 200, (content_type, ok.text)
        assert (await http.post("/close")).status_code == 200  # no body, no Content-Type
        assert (await http.post("/close", headers={"content-type": "text/plain"})).status_code == 200
    assert is_json(b"application/problem+json") and not is_json(b"json") and not is_json(b"*/*+json")


async def test_over_the_rate_limit_is_429_with_retry_after() -> None:
    app = make_app(rate_limits=RateLimits(per_minute=1, burst=1, anonymous_per_minute=1, anonymous_burst=1))
    async with client(app) as http:
        await http.get("/nowhere")
        r = await http.get("/nowhere")
    check_problem(r, 429, "rate_limited")
    assert int(r.headers["retry-after"]) >= 1


async def test_an_unhandled_exception_is_a_500_without_internals() -> None:
    async with client(make_app()) as http:
        r = await http.get("/boom")
    body = check_problem(r, 500, "internal_error")
    assert "RuntimeError" not in r.text and "internals" not in r.text and NIK not in r.text
    assert body["errors"] == []
    for name, value in SECURITY_HEADERS.items():
        assert r.headers[name.decode()] == value.decode()


async def test_an_unreachable_database_is_503_storage_unavailable() -> None:
    async with client(make_app()) as http:
        r = await http.get("/db")
    body = check_problem(r, 503, "storage_unavailable")
    assert r.headers["retry-after"] == "5" and "can be sent again" in body["detail"]
    assert "27017" not in r.text and "Errno" not in r.text


async def test_tokens_are_refused_with_a_code_and_no_library_text() -> None:
    officer = Officer(officer_id="fo-1", role=OfficerRole.FRONT_OFFICE, scope=("35.73",))
    expired = issue_token(officer, SECRET, now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=9))
    async with client(make_app()) as http:
        missing = await http.get("/mine")
        garbage = await http.get("/mine", headers={b"Authorization": b"Bearer \xb7\xff\x00garbage.token"})
        other = await http.get("/mine", headers=bearer(issue_token(officer, "q" * 40)))
        undecodable = await http.get("/mine", headers=bearer("t7e3.e30.c2ln"))  # a header of bytes 0xb7
        old = await http.get("/mine", headers=bearer(expired))
        good = await http.get("/mine", headers=bearer(issue_token(officer, SECRET)))
    check_problem(missing, 401, "unauthenticated")
    for refused in (garbage, other, undecodable):
        body = check_problem(refused, 401, "invalid_token")
        assert refused.headers["www-authenticate"] == 'Bearer error="invalid_token"'
        for internal in ("codec", "utf-8", "byte", "Invalid", "Signature", "header"):
            assert internal not in body["detail"], body["detail"]
    check_problem(old, 401, "token_expired")
    assert good.status_code == 200


async def test_without_a_secret_authentication_is_503() -> None:
    app = make_app()
    app.state.runtime = SimpleNamespace(settings=SimpleNamespace(auth_secret=None))
    async with client(app) as http:
        check_problem(await http.get("/mine", headers=bearer("x.y.z")), 503, "auth_not_configured")
