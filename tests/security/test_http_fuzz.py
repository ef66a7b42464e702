"""Hostile input over every service's HTTP API (property-based, hypothesis; issue #9).

Each of the five services runs once per module (its real app and lifespan, on the test run's
nats-server and Mongo engine, in a namespace and databases of its own) and is driven in-process
through ``httpx.ASGITransport``. The operations are enumerated from the app's OpenAPI
document, so a new endpoint is fuzzed without touching this file; the expected routes are
asserted so that a broken enumeration cannot make the tests fuzz nothing.

Strategies: arbitrary JSON values as the body, arbitrary bytes declared as JSON, bodies
shaped by the operation's JSON schema and then mutated (a wrong type, a boundary, hostile
text, a missing or unknown field), hostile path parameters and query strings, and wrong,
missing or garbage ``Authorization`` headers (including correctly signed tokens whose claims
are junk).

Property: every request is answered (no exception escapes the app) with a status below 500;
every 4xx is problem details (``application/problem+json``, ``puskesos_shared.problems``: all
keys, ``type`` from a registered ``code``, ``status`` the HTTP status, well-formed ``errors``) and
never echoes a string value of the input. Every endpoint answers a body that is not JSON with
415, and an unknown path and a wrong method with 404 and 405 as problems too. After the run the
service is still ready and still serves a valid request.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import datetime as dt
import hashlib
import hmac
import json
import re
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import jwt
import nats
import pytest
import pytest_asyncio
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from puskesos_shared.auth import AuthError, Officer, issue_token, verify_token
from puskesos_shared.contracts import subject_for
from puskesos_shared.contracts.examples import EXAMPLES
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.ids import stable_id
from puskesos_shared.logging import mask_personal_data
from puskesos_shared.messaging import encode_event, event_headers
from puskesos_shared.settings import ServiceSettings
from puskesos_shared.testing.app import running_app
from puskesos_shared.testing.problems import check_problem
from puskesos_shared.testing.processes import TEST_AUTH_SECRET
from puskesos_shared.testing.servers import ServerHandle
from puskesos_shared.topology import Topology
from pydantic import SecretStr
from pymongo import AsyncMongoClient

# The services run in-process, and synchronous PyMongo (the audit service's log reader) numbers every
# message it sends with the global ``random`` module (``pymongo.message._randint``) from its worker and
# monitor threads; one that sends while a strategy draws changes the global state, which hypothesis
# reports as the strategy using ``random``. Its generation does not use that state, so it is noise.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(240), pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies:hypothesis.errors.HypothesisDeprecationWarning")]

VILLAGE = "35.73.01.1001"  # Balearjosari, Blimbing, Kota Malang
JEMBER_VILLAGE = "35.09.01.2001"
SCOPE = ("35.73", "35.09")  # regencies: every village the seeded data and the fixed values use
SEED_KK = "3573010502200417"
SEED_NIKS = ("3573010101800417", "3573015705850418")
OTHER_KK = "3573010502200418"  # a second registered household (members move there)
OTHER_NIKS = ("3573010101800419", "3573015705850420")
SEED_BATCH = str(uuid.UUID(int=7))
SEED_ROUND = "fuzz-round-0001"
SEED_OFFICER = "fuzz-officer-1"


def fuzz_settings(examples: int) -> Callable[[Any], Any]:
    """Reproducible runs: a fixed derandomized search, no example database, no deadline (real servers)."""
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck), print_blob=False)


def token(role: OfficerRole, *scope: str, officer_id: str = "fuzz-officer") -> str:
    return issue_token(Officer(officer_id=officer_id, role=role, scope=scope or SCOPE), TEST_AUTH_SECRET)


def bearer(role: OfficerRole, *scope: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(role, *scope)}"}


# -- the services -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Service:
    name: str
    roles: tuple[OfficerRole, ...]  # roles whose tokens reach the handlers (others mostly get 403)
    routes: frozenset[tuple[str, str]]  # (method, path) the OpenAPI enumeration must find
    extra_settings: dict[str, Any] = field(default_factory=dict)


HEALTH = {("GET", "/health/live"), ("GET", "/health/ready"), ("GET", "/metrics")}
SERVICES = {
    "intake": Service(
        "intake", (OfficerRole.BACK_OFFICE, OfficerRole.FRONT_OFFICE, OfficerRole.COORDINATOR),
        frozenset(HEALTH | {("POST", "/households"), ("PUT", "/households"), ("POST", "/households/search"),
                            ("POST", "/households/transfers"), ("POST", "/households/import"), ("POST", "/complaints"),
                            ("GET", "/complaints"), ("GET", "/complaints/{case_number}"),
                            ("POST", "/residents/complaints"), ("POST", "/residents/export")}),
    ),
    "referral": Service(
        "referral", (OfficerRole.ASSESSOR, OfficerRole.COORDINATOR, OfficerRole.OPERATOR),
        frozenset(HEALTH | {("POST", "/cases/{case_id}/assessments"), ("POST", "/cases/{case_id}/referrals"),
                            ("POST", "/referrals/responses"), ("POST", "/cases/{case_id}/close"), ("GET", "/cases"),
                            ("GET", "/cases/summary"), ("GET", "/cases/{case_id}"),
                            ("GET", "/cases/{case_id}/assessments/verification"), ("GET", "/rule-sets"),
                            ("POST", "/rule-sets"), ("GET", "/rule-sets/{tag}")}),
        extra_settings={"escalation_interval_seconds": 5.0},
    ),
    "distribution": Service(
        "distribution", (OfficerRole.OPERATOR, OfficerRole.AUDITOR),
        frozenset(HEALTH | {("POST", "/rounds"), ("GET", "/rounds/{round_ref}"),
                            ("POST", "/rounds/{round_ref}/candidates"),
                            ("POST", "/rounds/{round_ref}/imports/{batch_id}/finish"),
                            ("POST", "/rounds/{round_ref}/assessed-candidates"),
                            ("POST", "/rounds/{round_ref}/close")}),
        extra_settings={"close_wait_seconds": 2.0, "work_backoff_initial_seconds": 0.1,
                        "work_backoff_max_seconds": 1.0},
    ),
    "notification": Service(
        "notification", (OfficerRole.COORDINATOR, OfficerRole.OPERATOR, OfficerRole.FRONT_OFFICE),
        frozenset(HEALTH | {("PUT", "/notifications/officers/{officer_id}"),
                            ("GET", "/notifications/officers/{officer_id}"),
                            ("DELETE", "/notifications/officers/{officer_id}"), ("PUT", "/notifications/opt-outs"),
                            ("GET", "/notifications/deliveries/{notification_id}"),
                            ("GET", "/notifications/deliveries"), ("GET", "/notifications/templates")}),
    ),
    "audit": Service(
        "audit", (OfficerRole.AUDITOR,),
        frozenset(HEALTH | {("GET", "/audit/status"), ("GET", "/audit/verify"), ("POST", "/audit/trace"),
                            ("GET", "/audit/decisions"), ("GET", "/audit/rounds/{round_id}/history"),
                            ("GET", "/audit/villages/{village_code}/history"), ("GET", "/audit/checkpoints"),
                            ("POST", "/audit/replay")}),
    ),
}


def build_app(service: str, values: dict[str, Any]) -> FastAPI:
    """The service's real app, as its own tests build it (``create_app(settings)``)."""
    module = __import__(f"puskesos_{service}.app", fromlist=["create_app"])
    settings_module = __import__(f"puskesos_{service}.settings", fromlist=["ServiceSettings"])
    cls = next(v for k, v in vars(settings_module).items()
               if isinstance(v, type) and issubclass(v, ServiceSettings) and v is not ServiceSettings)
    kwargs: dict[str, Any] = {}
    if service == "distribution":  # a payment gateway, so that closing a round can reconcile (no 503)
        from puskesos_distribution.gateway import InMemoryGateway

        kwargs["gateway"] = InMemoryGateway()
    app: FastAPI = module.create_app(cls(_env_file=None, **values), **kwargs)
    return app


# -- the OpenAPI enumeration ----------------------------------------------------------------------
@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    path_params: dict[str, dict[str, Any]]
    query_params: dict[str, dict[str, Any]]
    header_params: dict[str, dict[str, Any]]
    body: dict[str, Any] | None  # the JSON schema of the request body (refs resolved lazily)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def operations_of(doc: dict[str, Any]) -> list[Operation]:
    ops = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method.upper() not in {"GET", "POST", "PUT", "PATCH", "DELETE"}:
                continue
            params: dict[str, dict[str, dict[str, Any]]] = {"path": {}, "query": {}, "header": {}}
            for p in op.get("parameters", []):
                if p["in"] in params:
                    params[p["in"]][p["name"]] = p.get("schema", {})
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            ops.append(Operation(method.upper(), path, params["path"], params["query"], params["header"], body))
    return ops


# -- hostile values -----------------------------------------------------------------------------
HOSTILE_TEXT = (
    "../../../../etc/passwd", "..%2f..%2f..%2fetc%2fpasswd", "%2e%2e%2f%2e%2e%2f", "....//....//",
    "\x00", "abc\x00def-nul-inside", "\ud800", "\udfff lone surrogate", "\r\nX-Injected: yes", "\u202eRTL-override",
    "\ufeffbom-prefixed", "\u200b\u200c\u200d zero width", "𝕏" * 50, "😀" * 40, "ä" * 3000, "A" * 20_000,
    "{\"$gt\": \"\"}", "$where", "$ne", "a.b.c", "'; DROP TABLE households; --", "<script>alert(1)</script>",
    "${jndi:ldap://x}", "{{7*7}}", "%s%s%s%n", "null", "true", "-1", "1e309", "0x10", "NaN",
    "3573010101800003", "3573015705850004", "081234567890", "+6281234567890", "35.73.01.1001", "35.73",
    "2026-02-30", "9999-12-31T23:59:59+14:00", "0000-00-00", str(uuid.UUID(int=0)),
    "ffffffff-ffff-ffff-ffff-ffffffffffff",
    "3573011001/2026/00001", "3573011001/2026/" + "9" * 200,
)
HOSTILE_NUMBERS = (
    -1, 0, 1, -(2**31), 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**100, -(10**100),
    0.5, -0.0, 1e-308, 1e308, float("inf"), float("-inf"), float("nan"),
)
text = st.text(max_size=30)
hostile_text = st.sampled_from(HOSTILE_TEXT) | text | st.text(min_size=8, max_size=80)
hostile_scalar = (st.none() | st.booleans() | st.sampled_from(HOSTILE_NUMBERS) | st.integers()
                  | st.floats() | hostile_text)
json_values = st.recursive(
    hostile_scalar,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(hostile_text, children, max_size=6),
    max_leaves=30,
)


def valid_nik(serial: int) -> str:
    return f"3573010101{80 + serial % 20:02d}{serial % 9999 + 1:04d}"


#: Values that make schema-shaped bodies get past field validation into the handlers.
KNOWN_VALUES: dict[str, tuple[Any, ...]] = {
    "nik": (*SEED_NIKS, valid_nik(1), valid_nik(77)),
    "kk_number": (SEED_KK, "3573010502200001"),
    "kk": (SEED_KK,),
    "target_kk": (SEED_KK, "3573010502200001"),
    "village_code": (VILLAGE, JEMBER_VILLAGE),
    "kecamatan_code": ("35.73.01", "35.09.01"),
    "phone": ("081234567890", "+6281234567890"),
    "contact_phone": ("081234567890",),
    "round": (SEED_ROUND,),
    "round_ref": (SEED_ROUND,),
    "key": (SEED_ROUND, "fuzz-round-0002"),
    "officer_id": (SEED_OFFICER,),
    "scope": ([VILLAGE], ["35.73"]),
    "month": ("2026-01", "2026-13", "0000-00"),
    "eligibility_rule_version": ("blt-eligibility@1",),
    "birth_date": ("1980-01-01", "2999-01-01"),
    "period_start": ("2022-11-01",),
    "period_end": ("2022-12-31", "2022-10-01"),
}


def resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _pattern_strategy(pattern: str, min_size: int, max_size: int) -> st.SearchStrategy[str]:
    try:
        re.compile(pattern)
        return st.from_regex(pattern, fullmatch=True).filter(lambda s: len(s) <= 200)
    except re.error:
        return st.text(min_size=min_size, max_size=max_size)


def from_schema(schema: dict[str, Any], components: dict[str, Any], depth: int = 0,
                name: str | None = None) -> st.SearchStrategy[Any]:
    """A value that looks valid for ``schema`` (a small JSON-schema-guided generator)."""
    schema = resolve(schema, components)
    known = st.sampled_from(KNOWN_VALUES[name]) if name in KNOWN_VALUES else None
    strategy = _from_schema(schema, components, depth)
    return (known | strategy) if known is not None else strategy


def _from_schema(schema: dict[str, Any], components: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
    if depth > 6:
        return st.none()
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return st.one_of([from_schema(s, components, depth + 1) for s in schema[key]])
    if "allOf" in schema:
        return from_schema(schema["allOf"][0], components, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of([_from_schema({**schema, "type": k}, components, depth) for k in kind])
    if kind == "string":
        lo, hi = schema.get("minLength", 0), min(schema.get("maxLength", 40), 40)
        hi = max(lo, hi)
        fmt = schema.get("format")
        if fmt == "uuid":
            return st.uuids().map(str)
        if fmt == "date":
            return st.dates(dt.date(1900, 1, 1), dt.date(2100, 1, 1)).map(dt.date.isoformat)
        if fmt == "date-time":
            return st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2100, 1, 1),
                                timezones=st.just(dt.UTC)).map(dt.datetime.isoformat)
        if "pattern" in schema:
            return _pattern_strategy(schema["pattern"], lo, hi)
        return st.text(min_size=lo, max_size=hi)
    if kind == "integer":
        lo = schema.get("minimum", schema["exclusiveMinimum"] + 1 if "exclusiveMinimum" in schema else -(10**6))
        hi = schema.get("maximum", schema["exclusiveMaximum"] - 1 if "exclusiveMaximum" in schema else 10**9)
        return st.integers(min_value=int(lo), max_value=int(max(lo, hi)))
    if kind == "number":
        return st.floats(min_value=schema.get("minimum", -1e9), max_value=schema.get("maximum", 1e9),
                         allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        if "prefixItems" in schema:
            return st.tuples(*(from_schema(s, components, depth + 1) for s in schema["prefixItems"])).map(list)
        lo = schema.get("minItems", 0)
        hi = max(lo, min(schema.get("maxItems", 3), 3))
        return st.lists(from_schema(schema.get("items", {}), components, depth + 1), min_size=lo, max_size=hi)
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        required = set(schema.get("required", ()))
        fixed = st.fixed_dictionaries(
            {k: from_schema(v, components, depth + 1, k) for k, v in props.items() if k in required},
            optional={k: from_schema(v, components, depth + 1, k) for k, v in props.items() if k not in required},
        )
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) and not props:
            return st.dictionaries(st.text(max_size=20), from_schema(extra, components, depth + 1), max_size=4)
        return fixed
    return json_values  # no type: anything goes


Path = tuple[str | int, ...]


def _paths(value: Any, prefix: Path = ()) -> Iterator[Path]:
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


def _set(value: Any, path: Path, new: Any, *, delete: bool = False) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        copy = dict(value)
        if delete and not rest:
            copy.pop(head, None)  # type: ignore[call-overload]
        else:
            copy[head] = _set(copy[head], rest, new, delete=delete)  # type: ignore[index]
        return copy
    copy_list = list(value)
    if delete and not rest:
        copy_list.pop(head)  # type: ignore[arg-type]
    else:
        copy_list[head] = _set(copy_list[head], rest, new, delete=delete)  # type: ignore[index]
    return copy_list


def _get(value: Any, path: Path) -> Any:
    for key in path:
        value = value[key]
    return value


def _wrong_type(value: Any) -> st.SearchStrategy[Any]:
    """A value of another JSON type than ``value``'s."""
    choices: list[st.SearchStrategy[Any]] = [st.none(), st.booleans(), st.sampled_from(HOSTILE_NUMBERS),
                                             hostile_text, st.just([value]), st.just({"value": value})]
    return st.one_of([c for c in choices if not (isinstance(value, str) and c is hostile_text)])


def _boundary(value: Any) -> st.SearchStrategy[Any]:
    if isinstance(value, bool):
        return st.sampled_from((0, 1, "true", "yes"))
    if isinstance(value, int | float):
        return st.sampled_from(HOSTILE_NUMBERS) | st.just(str(value))
    if isinstance(value, str):
        return (st.sampled_from(HOSTILE_TEXT) | st.just(value * 500) | st.just(value + "\x00")
                | st.just(f" {value} ") | st.just(value.upper()) | st.just(""))
    if isinstance(value, list):
        return st.just([]) | st.just(value * 200) | st.just([*value, None])
    if isinstance(value, dict):
        return st.just({}) | st.just({**value, "$where": "1"}) | st.just({**value, "__proto__": {"x": 1}})
    return hostile_scalar


@st.composite
def mutated(draw: st.DrawFn, schema: dict[str, Any], components: dict[str, Any],
            valid: tuple[Any, ...] = ()) -> Any:
    """A schema-shaped value (or one of ``valid``, known to be accepted) with up to three fields broken:
    a wrong type, a boundary, hostile text, a missing or an unknown field."""
    shaped = from_schema(schema, components)
    value = draw((st.sampled_from(valid) | shaped) if valid else shaped, label="base")
    for _ in range(draw(st.sampled_from((0, 0, 1, 1, 2, 3)), label="mutations")):
        path = draw(st.sampled_from(list(_paths(value))))
        target = _get(value, path)
        how = draw(st.sampled_from(("wrong_type", "boundary", "missing", "unknown_field", "json")))
        if how == "missing" and path:
            value = _set(value, path, None, delete=True)
        elif how == "unknown_field" and isinstance(target, dict):
            value = _set(value, path, {**target, draw(hostile_text): draw(json_values)})
        elif how == "wrong_type":
            value = _set(value, path, draw(_wrong_type(target)))
        elif how == "json":
            value = _set(value, path, draw(json_values))
        else:
            value = _set(value, path, draw(_boundary(target)))
    return value


def strings_in(value: Any) -> Iterator[str]:
    """Every string value (not the object keys: an error's ``loc`` names the fields it is about)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings_in(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from strings_in(v)


def keys_in(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from keys_in(v)
    elif isinstance(value, list):
        for v in value:
            yield from keys_in(v)


# -- the running service --------------------------------------------------------------------------
class Target:
    """A running service and what the fuzz sent it (a plain class: hypothesis prints only its repr)."""

    def __init__(self, service: Service, app: FastAPI, http: httpx.AsyncClient, doc: dict[str, Any]) -> None:
        self.service, self.app, self.http = service, app, http
        self.operations = operations_of(doc)
        self.components: dict[str, Any] = doc.get("components", {}).get("schemas", {})
        #: the OpenAPI document: field names, enum values, patterns (an error may name them)
        self.vocabulary = json.dumps(doc, ensure_ascii=False)
        self.statuses: Counter[int] = Counter()
        self.per_operation: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()  # "POST /households 201" -> how many
        self.examples: Counter[str] = Counter()
        self.seconds = 0.0
        self.seeded = Seeded()

    def __repr__(self) -> str:
        return f"Target({self.service.name})"

    async def send(self, op: Operation, *, path: str | None = None, query: str = "",
                   headers: dict[str, Any] | None = None, body: bytes | None = None,
                   sent_strings: tuple[str, ...] = (), sent_keys: tuple[str, ...] = ()) -> httpx.Response:
        """Sends one request and checks the property on its answer."""
        url = (path or fill_path(op, {})) + (f"?{query}" if query else "")
        hdrs = dict(headers or {})
        if body is not None:
            hdrs.setdefault("content-type", "application/json")
        started = time.monotonic()
        try:
            response = await self.http.request(op.method, url, content=body, headers=hdrs)
        finally:
            self.seconds += time.monotonic() - started
        self.statuses[response.status_code] += 1
        self.per_operation[str(op)] += 1
        self.outcomes[f"{op} {response.status_code}"] += 1
        if (self.service.name, str(op)) in ECHO_EXEMPT:
            sent_strings = ()
        check_response(response, op, self.vocabulary, self.seeded.strings, sent_strings, sent_keys)
        return response


#: A rule set is configuration a Dinas Sosial operator publishes, not resident data: its validator names the
#: unknown fact or the value that does not fit on purpose (services/referral/tests/test_rules.py pins it).
ECHO_EXEMPT = {("referral", "POST /rule-sets")}
#: Kemendagri region codes are public (not personal data); a domain error may name the one it refuses.
REGION_CODE = re.compile(r"[0-9]{2}\.[0-9]{2}(\.[0-9]{2}(\.[0-9]{4})?)?")


def check_response(response: httpx.Response, op: Operation, vocabulary: str, seeded: frozenset[str],
                   sent_strings: tuple[str, ...], sent_keys: tuple[str, ...]) -> None:
    where = f"{op} -> {response.status_code}: {response.text[:500]!r}"
    assert response.status_code < 500, f"not answered with 2xx/3xx/4xx: {where}"
    assert response.status_code >= 200, where
    if 300 <= response.status_code < 400:  # Starlette's trailing-slash redirect
        assert response.headers.get("location"), f"a redirect without a Location: {where}"
    elif response.status_code >= 400:
        answered = list(strings_in(check_problem(response)))
        for sent in sent_strings:
            if (len(sent) < 8 or sent in vocabulary or sent in seeded or any(sent in k for k in sent_keys)
                    or REGION_CODE.fullmatch(sent)):
                continue  # named by the schema (a field, an enum value) or by a seeded valid body; a public code
            echoed = [a for a in answered if sent in a]
            assert not echoed, f"the error echoes the input {sent!r}: {where}"
    elif response.headers.get("content-type", "").startswith("application/json"):
        response.json()


def serves(op: Operation, path: str) -> bool:
    """Whether ``path`` (parameters filled in, percent-encoded) is one of ``op``'s."""
    pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(op.path))
    return re.fullmatch(pattern, path) is not None


def enc(value: str, safe: str = "") -> str:
    """Percent-encoded UTF-8; a lone surrogate becomes the (invalid) bytes it stands for."""
    return quote(value, safe=safe, errors="surrogatepass")


def fill_path(op: Operation, values: dict[str, str]) -> str:
    path = op.path
    for name in op.path_params:
        path = path.replace("{" + name + "}", values.get(name, "x"))
    return path


@dataclass
class Stack:
    nats_url: str
    mongo_url: str
    namespace: str = ""


@dataclass
class Seeded:
    """What a service holds before the fuzz: path values that exist, and bodies it accepts."""

    paths: dict[str, tuple[str, ...]] = field(default_factory=dict)
    bodies: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # "POST /households" -> bodies
    roles: dict[str, OfficerRole] = field(default_factory=dict)  # "POST /households" -> the role it is for

    @cached_property
    def strings(self) -> frozenset[str]:
        """The strings of the valid bodies (not generated: a rule set's fact names, say)."""
        return frozenset(s for bodies in self.bodies.values() for body in bodies for s in strings_in(body))


@pytest.fixture(scope="module")
def stack(nats_server: ServerHandle, mongo_server: ServerHandle) -> Stack:
    return Stack(nats_server.url, mongo_server.url)


@pytest_asyncio.fixture(scope="module", params=sorted(SERVICES), loop_scope="session")
async def target(request: pytest.FixtureRequest, stack: Stack,
                 tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Target]:
    """One running app per service for the whole module (a namespace and databases of its own)."""
    service = SERVICES[request.param]
    started = time.monotonic()
    namespace = f"fz{uuid.uuid4().hex[:10]}"
    tmp = tmp_path_factory.mktemp(f"fuzz-{service.name}")
    values: dict[str, Any] = {
        "nats_url": stack.nats_url, "mongo_url": stack.mongo_url, "namespace": namespace,
        "mongo_db": f"{namespace}_{service.name}", "auth_secret": SecretStr(TEST_AUTH_SECRET), "log_json": True,
        # the rate limiter runs (it reads every Authorization header) but never throttles the fuzz
        "rate_limit_per_minute": 1e9, "rate_limit_burst": 10**9, "rate_limit_anonymous_per_minute": 1e9,
        "rate_limit_anonymous_burst": 10**9,
        **service.extra_settings,
    }
    if service.name == "notification":
        values["notify_local_path"] = tmp / "messages.jsonl"
    app = build_app(service.name, values)
    doc = app.openapi()
    try:
        async with running_app(app) as http:
            fuzz = Target(service, app, http, doc)
            fuzz.seeded = await SEEDS[service.name](http, Stack(stack.nats_url, stack.mongo_url, namespace))
            yield fuzz
            report(fuzz, time.monotonic() - started)
    finally:
        await _clean_up(stack, namespace)


def report(fuzz: Target, wall: float) -> None:
    """One line per service (shown with ``-s``): what the fuzz sent and how the service answered."""
    examples = sum(fuzz.examples.values())
    statuses = dict(sorted(fuzz.statuses.items()))
    print(f"\n[http-fuzz] {fuzz.service.name}: {examples} examples ({dict(fuzz.examples)}), "
          f"{sum(fuzz.statuses.values())} requests ({fuzz.seconds:.1f}s in the app), {wall:.1f}s in all, "
          f"statuses {statuses}")


async def _clean_up(stack: Stack, namespace: str) -> None:
    """Deletes the namespace's streams (``{NS}_*``) and drops its databases."""
    with suppress(Exception):
        nc = await nats.connect(stack.nats_url, name="pytest-fuzz-cleanup")
        try:
            js = nc.jetstream()
            for stream in await js.streams_info():
                if (stream.config.name or "").startswith(f"{namespace.upper()}_"):
                    with suppress(Exception):
                        await js.delete_stream(stream.config.name or "")
        finally:
            await nc.close()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.mongo_url, serverSelectionTimeoutMS=5000)
    try:
        with suppress(Exception):
            for name in await client.list_database_names():
                if name.startswith(namespace):
                    await client.drop_database(name)
    finally:
        await client.close()


# -- seeds and valid requests per service ---------------------------------------------------------
def household_body(kk: str = SEED_KK, niks: tuple[str, ...] = SEED_NIKS) -> dict[str, Any]:
    head, spouse = niks
    return {
        "kk_number": kk,
        "address": {"village_code": VILLAGE, "street": "Jl. Raya Balearjosari", "rt": "003", "rw": "002"},
        "members": [
            {"nik": head, "name": "Slamet Riyadi", "birth_date": "1980-01-01", "sex": "L",
             "relationship": "kepala_keluarga"},
            {"nik": spouse, "name": "Siti Aminah", "birth_date": "1985-05-17", "sex": "P", "relationship": "pasangan"},
        ],
        "socio_economic": {"monthly_income": 1_200_000, "floor": "semen", "wall": "tembok_tanpa_plester",
                           "roof": "asbes", "water": "sumur_terlindungi", "electricity": "450VA",
                           "assets": ["smartphone"], "dependants": 2},
        "phone": "+6281234567890",
    }


def round_body(key: str) -> dict[str, Any]:
    return {"key": key, "name": "BLT DBHCHT Jember November 2022", "program": "BLT", "funding_source": "DBHCHT",
            "amount_per_family": 300_000, "budget_cap": 300_000 * 40,
            "eligibility_rule_version": "blt-eligibility@1", "period_start": "2022-11-01",
            "period_end": "2022-12-31"}


def officer_entry() -> dict[str, Any]:
    return {"phone": "081234567890", "role": "front_office", "scope": [VILLAGE], "active": True}


async def _ok(response: Awaitable[httpx.Response], *expected: int) -> httpx.Response:
    answer = await response
    assert answer.status_code in expected, f"{answer.request.method} {answer.request.url}: {answer.text[:500]}"
    return answer


def complaint_body(nik: str = SEED_NIKS[0]) -> dict[str, Any]:
    return {"category": "aid_not_received", "channel": "walk_in", "urgency": "normal",
            "description": "Belum menerima bantuan BLT.", "village_code": VILLAGE,
            "complainant": {"nik": nik, "contact_phone": "081234567890"}}


async def seed_intake(http: httpx.AsyncClient, stack: Stack) -> Seeded:
    back = bearer(OfficerRole.BACK_OFFICE)
    await _ok(http.post("/households", json=household_body(), headers=back), 201)
    await _ok(http.post("/households", json=household_body(OTHER_KK, OTHER_NIKS), headers=back), 201)
    return Seeded(
        bodies={"POST /households": (household_body(), household_body(OTHER_KK, OTHER_NIKS)),
                "PUT /households": (household_body(),),
                "POST /households/search": ({"kk": SEED_KK}, {"nik": OTHER_NIKS[1]},
                                            {"nik": SEED_NIKS[0], "reveal": True, "purpose": "verifikasi data"}),
                "POST /households/transfers": (
                    {"from_kk": SEED_KK, "nik": SEED_NIKS[1], "to_kk": OTHER_KK, "relationship": "anak"},
                    {"from_kk": OTHER_KK, "nik": SEED_NIKS[1], "to_kk": SEED_KK, "relationship": "lainnya"}),
                "POST /complaints": (complaint_body(), complaint_body(OTHER_NIKS[0])),
                "POST /residents/complaints": ({"nik": SEED_NIKS[0]}, {"nik": OTHER_NIKS[0], "page": 2,
                                                                       "page_size": 5})},
        roles={"POST /households": OfficerRole.BACK_OFFICE, "PUT /households": OfficerRole.BACK_OFFICE,
               "POST /households/transfers": OfficerRole.BACK_OFFICE,
               "POST /households/search": OfficerRole.FRONT_OFFICE,
               "POST /complaints": OfficerRole.FRONT_OFFICE},
    )


async def seed_referral(http: httpx.AsyncClient, stack: Stack) -> Seeded:
    """A household and a complaint from intake (its events, published as intake would): an open case."""
    topology = Topology(namespace=stack.namespace)
    household, example = EXAMPLES["HouseholdRegistered"](), EXAMPLES["ComplaintFiled"]()
    complaints = [example.model_copy(update={  # three cases: the fuzz closes some, others stay open
        "event_id": stable_id("fuzz-event", n),
        "data": example.data.model_copy(update={"complaint_id": stable_id("fuzz-complaint", n)})})  # type: ignore[attr-defined]
        for n in range(3)]
    nc = await nats.connect(stack.nats_url, name="pytest-fuzz-seed")
    try:
        js = nc.jetstream()
        for event in (household, *complaints):
            await js.publish(subject_for(event, topology), encode_event(event), headers=event_headers(event),
                             stream=topology.events_stream)
    finally:
        await nc.close()
    case_ids = tuple(str(stable_id("case", c.data.complaint_id)) for c in complaints)  # type: ignore[attr-defined]
    assessor = bearer(OfficerRole.ASSESSOR)
    deadline = time.monotonic() + 30
    for case_id in case_ids:
        while (await http.get(f"/cases/{case_id}", headers=assessor)).status_code != 200:
            assert time.monotonic() < deadline, "the referral service did not open the seeded cases"
            await asyncio.sleep(0.1)
    active = (await _ok(http.get("/rule-sets", headers=assessor), 200)).json()["rule_sets"][0]["tag"]
    rule_set = (await _ok(http.get(f"/rule-sets/{active}", headers=assessor), 200)).json()["document"]
    return Seeded(
        paths={"case_id": case_ids, "tag": (active,)},
        bodies={"POST /cases/{case_id}/assessments": (
                    {"observations": {"chronic_illness": True, "needs_hospital_care": True}},
                    {"command_id": str(uuid.UUID(int=11)), "observations": {"elderly_alone": True},
                     "kk_number": household.data.household.kk_number, "note": "kunjungan"}),  # type: ignore[attr-defined]
                "POST /cases/{case_id}/referrals": ({"target_code": "RSUD-SAIFUL-ANWAR", "instructions": "Bawa KK."},
                                                   {"target_code": "DINSOS-MALANG-BLT", "due_in_working_days": 5}),
                "POST /cases/{case_id}/close": ({"resolution": "referred_and_completed", "reason": "Sudah dirawat."},),
                "POST /referrals/responses": (
                    {"referral_number": "RJK/3573011001/2026/00001", "outcome": "accepted",
                     "responded_by": "RSUD-SAIFUL-ANWAR"},),
                "POST /rule-sets": ({"rule_set": rule_set},)},
        roles={"POST /cases/{case_id}/assessments": OfficerRole.ASSESSOR,
               "POST /cases/{case_id}/referrals": OfficerRole.ASSESSOR,
               "POST /cases/{case_id}/close": OfficerRole.ASSESSOR,
               "POST /referrals/responses": OfficerRole.ASSESSOR, "POST /rule-sets": OfficerRole.OPERATOR},
    )


async def seed_distribution(http: httpx.AsyncClient, stack: Stack) -> Seeded:
    await _ok(http.post("/rounds", json=round_body(SEED_ROUND), headers=bearer(OfficerRole.OPERATOR)), 201)
    row = {"row": 2, "fields": {"kk_number": "3573010502200001", "head_nik": "3573010101800003",
                                "head_name": "Slamet Riyadi", "village_code": VILLAGE,
                                "account_number": "1234567890", "collection_point": "Kantor Desa"}}
    return Seeded(
        paths={"round_ref": (SEED_ROUND,), "batch_id": (SEED_BATCH,)},
        bodies={"POST /rounds": (round_body("fuzz-round-0002"), round_body(SEED_ROUND)),
                "POST /rounds/{round_ref}/candidates": ({"batch_id": SEED_BATCH, "rows": [row]},),
                "POST /rounds/{round_ref}/imports/{batch_id}/finish": (
                    {"total_rows": 1, "rejected_rows": 0, "file_name": "penerima.csv"},)},
        roles=dict.fromkeys(("POST /rounds", "POST /rounds/{round_ref}/candidates",
                             "POST /rounds/{round_ref}/imports/{batch_id}/finish"), OfficerRole.OPERATOR),
    )


async def seed_notification(http: httpx.AsyncClient, stack: Stack) -> Seeded:
    await _ok(http.put(f"/notifications/officers/{SEED_OFFICER}", json=officer_entry(),
                       headers=bearer(OfficerRole.COORDINATOR)), 200)
    return Seeded(
        paths={"officer_id": (SEED_OFFICER,)},
        bodies={"PUT /notifications/officers/{officer_id}": (officer_entry(),),
                "PUT /notifications/opt-outs": ({"phone": "081234567890", "opted_out": True},)},
        roles={"PUT /notifications/officers/{officer_id}": OfficerRole.COORDINATOR,
               "PUT /notifications/opt-outs": OfficerRole.FRONT_OFFICE},
    )


async def seed_audit(http: httpx.AsyncClient, stack: Stack) -> Seeded:
    return Seeded(
        paths={"village_code": (VILLAGE,)},
        bodies={"POST /audit/trace": ({"kind": "nik", "value": "3573010101800003"},
                                      {"kind": "case", "value": str(uuid.UUID(int=3)), "max_nodes": 10}),
                "POST /audit/replay": ({"request_id": "fuzz-1", "from_seq": 1},)},
        roles=dict.fromkeys(("POST /audit/trace", "POST /audit/replay"), OfficerRole.AUDITOR),
    )


SEEDS: dict[str, Callable[[httpx.AsyncClient, Stack], Awaitable[Seeded]]] = {
    "intake": seed_intake, "referral": seed_referral, "distribution": seed_distribution,
    "notification": seed_notification, "audit": seed_audit,
}


async def valid_intake(http: httpx.AsyncClient) -> None:
    filed = await _ok(http.post("/complaints", json=complaint_body(valid_nik(9003)),
                                headers=bearer(OfficerRole.FRONT_OFFICE)), 200, 201)
    case_number = filed.json()["complaint"]["case_number"]
    await _ok(http.get(f"/complaints/{case_number}", headers=bearer(OfficerRole.FRONT_OFFICE)), 200)
    await _ok(http.post("/households", json=household_body("3573010502209001", (valid_nik(9001), valid_nik(9002))),
                        headers=bearer(OfficerRole.BACK_OFFICE)), 201)
    found = await _ok(http.post("/households/search", json={"nik": valid_nik(9002)},
                                headers=bearer(OfficerRole.FRONT_OFFICE)), 200)
    assert found.json()["masked"] is True and valid_nik(9002) not in found.text
    await _ok(http.post("/residents/complaints", json={"nik": valid_nik(9003)},
                        headers=bearer(OfficerRole.FRONT_OFFICE)), 200)


async def valid_referral(http: httpx.AsyncClient) -> None:
    rule_sets = await _ok(http.get("/rule-sets", headers=bearer(OfficerRole.ASSESSOR)), 200)
    assert rule_sets.json()["rule_sets"], "the packaged rule sets are gone"
    await _ok(http.get("/cases", params={"village_code": VILLAGE}, headers=bearer(OfficerRole.COORDINATOR)), 200)


async def valid_distribution(http: httpx.AsyncClient) -> None:
    await _ok(http.post("/rounds", json=round_body("fuzz-after-the-run"), headers=bearer(OfficerRole.OPERATOR)), 201)
    await _ok(http.get("/rounds/fuzz-after-the-run", headers=bearer(OfficerRole.OPERATOR)), 200)


async def valid_notification(http: httpx.AsyncClient) -> None:
    await _ok(http.put("/notifications/officers/fuzz-after-the-run", json=officer_entry(),
                       headers=bearer(OfficerRole.COORDINATOR)), 200)
    await _ok(http.get("/notifications/officers/fuzz-after-the-run", headers=bearer(OfficerRole.COORDINATOR)), 200)
    await _ok(http.get("/notifications/templates", headers=bearer(OfficerRole.FRONT_OFFICE)), 200)


async def valid_audit(http: httpx.AsyncClient) -> None:
    await _ok(http.get("/audit/status", headers=bearer(OfficerRole.AUDITOR)), 200)
    await _ok(http.get("/audit/verify", headers=bearer(OfficerRole.AUDITOR)), 200)


VALID: dict[str, Callable[[httpx.AsyncClient], Awaitable[None]]] = {
    "intake": valid_intake, "referral": valid_referral, "distribution": valid_distribution,
    "notification": valid_notification, "audit": valid_audit,
}


# -- drawing requests -----------------------------------------------------------------------------
SAFE_HEADERS = {"accept": "application/json"}


def draw_operation(data: st.DataObject, fuzz: Target, *, with_body: bool = False) -> Operation:
    ops = [op for op in fuzz.operations if op.body is not None] if with_body else fuzz.operations
    return data.draw(st.sampled_from(ops), label="operation")


def draw_auth(data: st.DataObject, fuzz: Target, op: Operation) -> dict[str, str]:
    """A valid token: mostly of the role the operation is for (so that the request reaches its handler)."""
    preferred = fuzz.seeded.roles.get(str(op))
    roles = (preferred,) * 3 if preferred else fuzz.service.roles
    role = data.draw(st.sampled_from((*roles, *OfficerRole)), label="role")
    return {**SAFE_HEADERS, **bearer(role)}


def draw_path(data: st.DataObject, fuzz: Target, op: Operation) -> tuple[str, tuple[str, ...]]:
    """Path parameters that fit (the schema, or a value the service knows about), and their values."""
    values = {name: str(data.draw(path_value(fuzz, name, schema), label=name))
              for name, schema in op.path_params.items()}
    return fill_path(op, {k: enc(v) for k, v in values.items()}), tuple(values.values())


def path_value(fuzz: Target, name: str, schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    shaped = from_schema(schema, fuzz.components, name=name)
    known = fuzz.seeded.paths.get(name)
    return (st.sampled_from(known) | shaped) if known else shaped


def draw_body(data: st.DataObject, fuzz: Target, op: Operation) -> bytes | None:
    """A body that fits (no mutation): the request is about something else."""
    if op.body is None:
        return None
    valid = fuzz.seeded.bodies.get(str(op), ())
    shaped = from_schema(op.body, fuzz.components)
    return json.dumps(data.draw((st.sampled_from(valid) | shaped) if valid else shaped, label="body")).encode()


# -- the properties -------------------------------------------------------------------------------
def test_every_service_is_fuzzed() -> None:
    assert set(SERVICES) == {"intake", "referral", "distribution", "notification", "audit"}


def test_signed_tokens_with_junk_claims_are_refused_not_crashed() -> None:
    """Regression (found by this fuzz): PyJWT checks no claim types it does not verify (exp, scope)."""
    for claim, junk in JUNK_CLAIMS:
        try:
            officer = verify_token(_signed(_claims(**{claim: junk})), TEST_AUTH_SECRET)
        except AuthError:
            continue
        assert claim not in {"exp", "scope"} or (claim == "exp" and junk == 10**30), (claim, junk, officer)


def test_a_phone_number_in_a_logged_url_is_masked() -> None:
    """Regression (found by this fuzz and the log scan): httpx logs every request's URL; lokal-id's text
    detection left a mobile number in a URL path alone, so a phone typed into a path reached the logs."""
    line = 'HTTP Request: GET http://distribution/rounds/081234567890/history "HTTP/1.1 200 OK"'
    masked = mask_personal_data(None, "info", {"event": line, "logger": "httpx"})["event"]
    assert "081234567890" not in masked and "0812****7890" in masked


async def test_the_enumeration_finds_the_expected_routes(target: Target) -> None:
    found = {(op.method, op.path) for op in target.operations}
    missing = target.service.routes - found
    assert not missing, f"{target.service.name}: OpenAPI no longer lists {sorted(missing)}"
    assert any(op.body is not None for op in target.operations), "no operation with a JSON body was enumerated"


def _rule_set_with(fuzz: Target, value: int) -> dict[str, Any]:
    """The seeded (active) rule set as a new version whose first condition compares with ``value``."""
    doc = copy.deepcopy(fuzz.seeded.bodies["POST /rule-sets"][0]["rule_set"])
    doc["version"] += 1
    doc["vulnerability"]["points"][0]["when"]["value"] = value
    return {"rule_set": doc}


@dataclass(frozen=True)
class Regression:
    """A request the fuzz found answered with a 500 (or echoing its input) before the fix."""

    service: str
    why: str
    method: str
    path: str  # formatted with the first seeded value of each path parameter
    role: OfficerRole
    body: Callable[[Target], Any] | None = None
    status: int = 422


BIG = 2**64
REGRESSIONS = (
    Regression("notification", "the path's officer id was validated inside the handler (OfficerUpsert): "
               "a pydantic ValidationError, a 500", "PUT", "/notifications/officers/%3B", OfficerRole.COORDINATOR,
               lambda _: officer_entry()),
    Regression("notification", "the same, too long", "PUT", "/notifications/officers/" + "a" * 101,
               OfficerRole.COORDINATOR, lambda _: officer_entry()),
    Regression("audit", "any string was a village: a NIK typed there was answered 403 naming it", "GET",
               "/audit/villages/3573010101800003/history", OfficerRole.AUDITOR),
    Regression("distribution", "a round key with 0x1f cannot become an id: a ValueError, a 500", "GET",
               "/rounds/ab%1Fc", OfficerRole.OPERATOR),
    Regression("distribution", "the same when closing", "POST", "/rounds/ab%1Fc/close", OfficerRole.OPERATOR),
    Regression("distribution", "a budget over 2**63: an OverflowError at the write, a 500", "POST", "/rounds",
               OfficerRole.OPERATOR, lambda _: round_body("fuzz-big") | {"budget_cap": BIG}),
    Regression("distribution", "a village quota over 2**63", "POST", "/rounds", OfficerRole.OPERATOR,
               lambda _: round_body("fuzz-big") | {"village_quotas": [{"village_code": VILLAGE,
                                                                       "max_families": BIG}]}),
    Regression("distribution", "an import's row count over 2**63", "POST",
               "/rounds/{round_ref}/imports/{batch_id}/finish", OfficerRole.OPERATOR,
               lambda _: {"total_rows": BIG, "rejected_rows": 0}),
    Regression("intake", "a monthly income over 2**63: an OverflowError at the write, a 500", "POST",
               "/households", OfficerRole.BACK_OFFICE,
               lambda _: household_body() | {"socio_economic": household_body()["socio_economic"]
                                             | {"monthly_income": BIG}}),
    Regression("referral", "a rule condition's number over 2**63: an OverflowError at the write, a 500", "POST",
               "/rule-sets", OfficerRole.OPERATOR, lambda fuzz: _rule_set_with(fuzz, BIG)),
    Regression("referral", "the 422 repeated the unknown target code (whatever was typed there)", "POST",
               "/cases/{case_id}/referrals", OfficerRole.ASSESSOR,
               lambda _: {"target_code": "3573010101800003 Budi", "instructions": "x"}),
)


async def test_requests_that_once_failed_are_answered(target: Target) -> None:
    """The fuzz's findings as explicit examples (``st.data()`` draws cannot be replayed with ``@example``)."""
    values = {name: found[0] for name, found in target.seeded.paths.items()}
    for case in (r for r in REGRESSIONS if r.service == target.service.name):
        path = case.path.format(**values)
        op = next(o for o in target.operations if o.method == case.method and serves(o, path))
        body = case.body(target) if case.body else None
        sent = tuple(strings_in(body))
        response = await target.send(op, path=path, headers=bearer(case.role),
                                     body=json.dumps(body).encode() if body is not None else None,
                                     sent_strings=(*sent, *case.path.split("/")))
        assert response.status_code == case.status, f"{case.why}: {response.status_code} {response.text[:300]}"
    # any service: a correctly signed token whose exp is not a number (a TypeError, a 500) or whose
    # scope is not a list (a TypeError for a number; a string was split into characters)
    route = next(op for op in target.operations if not op.path.startswith(UNAUTHENTICATED) and op.method == "GET")
    for claim, junk in (("exp", "abc"), ("exp", [1]), ("scope", 5), ("scope", "35.73")):
        headers = {"authorization": f"Bearer {_signed(_claims(**{claim: junk}))}"}
        path = fill_path(route, {n: fixed_value(target, n, s) for n, s in route.path_params.items()})
        response = await target.send(route, path=path, headers=headers)
        assert response.status_code == 401, (claim, junk, response.text)


@fuzz_settings(60)
@given(data=st.data())
async def test_arbitrary_json_bodies_are_answered_with_4xx_or_success(target: Target, data: st.DataObject) -> None:
    op = draw_operation(data, target, with_body=data.draw(st.booleans(), label="only operations with a body"))
    value = data.draw(json_values, label="body")
    path, in_path = draw_path(data, target, op)
    await target.send(op, path=path, headers=draw_auth(data, target, op), body=json.dumps(value).encode(),
                      sent_strings=(*strings_in(value), *in_path), sent_keys=tuple(keys_in(value)))
    target.examples["json"] += 1


HOSTILE_BYTES = (
    b"", b"{", b"[" * 5000, b"{\"a\":" * 3000, b"\xff\xfe{}", b"\x00", b"{\"a\": NaN}", b"1" * 5000,
    b'{"a": "\\ud800"}', b'{"a": 1, "a": 2}', b"\xef\xbb\xbf{}", b"null", b"-0", b"1e999999", b"[]", b"\"x\"",
    b" " * (300 * 1024),  # over the body limit
)
CONTENT_TYPES = ("application/json", "application/json; charset=latin-1", "application/json; charset=utf-16",
                 "text/plain", "application/x-www-form-urlencoded", "multipart/form-data", "application/json\x00",
                 "application/merge-patch+json", "")


@fuzz_settings(40)
@given(data=st.data())
async def test_arbitrary_bytes_as_json_are_answered_with_4xx_or_success(target: Target,
                                                                        data: st.DataObject) -> None:
    op = draw_operation(data, target, with_body=True)
    body = data.draw(st.binary(max_size=2000) | st.sampled_from(HOSTILE_BYTES), label="body")
    content_type = data.draw(st.sampled_from(CONTENT_TYPES), label="content-type")
    path, _ = draw_path(data, target, op)
    await target.send(op, path=path, headers={**draw_auth(data, target, op), "content-type": content_type}, body=body)
    target.examples["bytes"] += 1


@fuzz_settings(160)
@given(data=st.data())
async def test_schema_shaped_bodies_are_answered_with_4xx_or_success(target: Target, data: st.DataObject) -> None:
    op = draw_operation(data, target, with_body=True)
    assert op.body is not None
    value = data.draw(mutated(op.body, target.components, target.seeded.bodies.get(str(op), ())), label="body")
    headers: dict[str, Any] = draw_auth(data, target, op)
    path, in_path = draw_path(data, target, op)
    sent: list[str] = [*strings_in(value), *in_path]
    if "Idempotency-Key" in op.header_params and data.draw(st.booleans(), label="with an Idempotency-Key"):
        key = data.draw(st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=300),
                        label="Idempotency-Key")
        headers["Idempotency-Key"] = key.encode("latin-1")
        sent.append(key)
    await target.send(op, path=path, headers=headers, body=json.dumps(value).encode(), sent_strings=tuple(sent),
                      sent_keys=tuple(keys_in(value)))
    target.examples["schema"] += 1


RAW_SEGMENTS = ("..", ".", "%2e%2e", "%2F", "%00", "%ZZ", "%", "%c0%ae%c0%ae", "..;", ";x=1", "%252e%252e%252f",
                "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "a%2Fb", "%u002e", "%C0%AF", "%ff%fe")
RAW_QUERIES = ("%ZZ=1", "a=%", "&&&==", "page=1&page=2", "a[b]=1", "x=" + "y" * 10_000, "%00=%00", "=",
               "limit=1e3", "offset=-0", "from_seq=99999999999999999999", "to_seq=0x10", "exact=maybe",
               "force=%00", "format=mermaid%0a", "status=open&status=closed")


def hostile_segment() -> st.SearchStrategy[tuple[str, str]]:
    """(what goes into the URL, the value it stands for)."""
    raw = st.sampled_from(HOSTILE_TEXT) | st.text(min_size=1, max_size=60) | st.just("x" * 10_000)
    return st.one_of(
        raw.map(lambda s: (enc(s), s)),  # percent-encoded
        raw.map(lambda s: (enc(s, "/.%"), s)),  # slashes and dots left as they are (traversal)
        raw.map(lambda s: (enc(enc(s)), s)),  # double-encoded
        st.sampled_from(RAW_SEGMENTS).map(lambda s: (s, s)),
    )


@fuzz_settings(80)
@given(data=st.data())
async def test_hostile_paths_and_query_strings_are_answered_with_4xx_or_success(target: Target,
                                                                                data: st.DataObject) -> None:
    op = draw_operation(data, target)
    values, sent = {}, []
    for name, schema in op.path_params.items():
        if data.draw(st.booleans(), label=f"hostile {name}"):
            values[name], value = data.draw(hostile_segment(), label=name)
        else:
            value = str(data.draw(path_value(target, name, schema), label=name))
            values[name] = enc(value)
        sent.append(value)
    pairs: list[tuple[str, str]] = []
    for name, schema in op.query_params.items():
        if data.draw(st.booleans(), label=f"a fitting {name}"):
            fitting = data.draw(from_schema(schema, target.components, name=name), label=name)
            pairs.append((name, json.dumps(fitting) if isinstance(fitting, bool) else str(fitting)))
    names = [*op.query_params, "page", "limit", "$where", "__proto__", "format"]
    for _ in range(data.draw(st.integers(0, 4), label="query parameters")):
        name = data.draw(st.sampled_from(names) | st.text(max_size=10), label="name")
        value = data.draw(st.sampled_from([str(v) for v in HOSTILE_NUMBERS]) | hostile_text, label="value")
        pairs.append((name, value))
        sent.append(value)
    query = urlencode(pairs, errors="surrogatepass")  # a lone surrogate: invalid UTF-8 once decoded
    if data.draw(st.booleans(), label="raw query"):
        query += "&" + data.draw(st.sampled_from(RAW_QUERIES), label="raw")
    await target.send(op, path=fill_path(op, values), query=query, body=draw_body(data, target, op),
                      sent_strings=tuple(sent), headers=draw_auth(data, target, op))
    target.examples["path_query"] += 1


def _b64(raw: bytes) -> bytes:
    return base64.urlsafe_b64encode(raw).rstrip(b"=")


def _signed(claims: dict[str, Any], secret: str = TEST_AUTH_SECRET, algorithm: str = "HS256") -> str:
    """A JWT signed by hand: PyJWT's encoder refuses some junk claims that a buggy issuer could still sign."""
    digest = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}[algorithm]
    signing_input = _b64(json.dumps({"alg": algorithm, "typ": "JWT"}).encode()) + b"." + _b64(
        json.dumps(claims).encode())
    signature = hmac.new(secret.encode(), signing_input, digest).digest()
    return (signing_input + b"." + _b64(signature)).decode()


def _claims(**override: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": "puskesos", "sub": "fuzz", "role": "auditor", "scope": ["35.73", "35.09"], "iat": now,
            "exp": now + 3600, **override}


#: Correctly signed tokens (a buggy or compromised issuer) whose claims are junk.
JUNK_CLAIMS = tuple((claim, junk) for claim in ("exp", "iat", "scope", "role", "sub", "iss", "nbf", "aud", "jti")
                    for junk in ("abc", [1], {"a": 1}, 5, 1.5, True, "35.73", [None], 10**30, ""))


@st.composite
def authorization(draw: st.DrawFn) -> tuple[bytes | None, bool]:
    """A wrong, missing or garbage Authorization header value (bytes: anything latin-1 can carry), and
    whether it must be refused (a correctly signed token with a junk ``iat`` or ``jti`` is still valid)."""
    good = token(draw(st.sampled_from(list(OfficerRole))))
    now = int(time.time())
    choice = draw(st.sampled_from((
        None, b"", b"Bearer", b"Bearer ", b"bearer  ", b"Basic dXNlcjpwYXNz", b"Token " + good.encode(),
        "Bearer " + good + "x", "Bearer " + good[:-5], "Bearer " + good.upper(), "Bearer " + good + " extra",
        "Bearer " + ".".join(reversed(good.split("."))), "Bearer " + good.replace(".", "", 1),
        "Bearer " + _signed(_claims(), "x" * 40),  # another secret
        "Bearer " + _signed(_claims(), TEST_AUTH_SECRET + "-longer-for-hs512-" * 2, "HS512"),  # another key/alg
        "Bearer " + jwt.encode(_claims(), None, algorithm="none"),  # unsigned
        "Bearer " + _signed(_claims(exp=now - 10)),  # expired
        "Bearer " + _signed(_claims(iss="someone-else")),
        "Bearer " + _signed({"sub": "fuzz", "role": "auditor", "scope": ["35.73"]}),  # no exp/iat/iss
        "signed_junk_claim", "signed_junk_claim", "garbage_text", "garbage_bytes",
    )), label="authorization")
    if choice == "signed_junk_claim":
        claim = draw(st.sampled_from(("role", "scope", "sub", "exp", "iat", "iss", "nbf", "aud", "jti")))
        return ("Bearer " + _signed(_claims(**{claim: draw(json_values)}))).encode(), False
    if choice == "garbage_text":
        return ("Bearer " + draw(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E),
                                         max_size=200))).encode(), True
    if choice == "garbage_bytes":
        return draw(st.binary(max_size=300).filter(lambda b: b"\r" not in b and b"\n" not in b)), True
    if isinstance(choice, str):
        return choice.encode(), True
    return choice, True


UNAUTHENTICATED = ("/health/", "/metrics")


@fuzz_settings(60)
@given(data=st.data())
async def test_wrong_missing_or_garbage_authorization_is_answered_with_4xx(target: Target,
                                                                          data: st.DataObject) -> None:
    op = draw_operation(data, target)
    header, refused = data.draw(authorization(), label="Authorization")
    headers: dict[str, Any] = dict(SAFE_HEADERS)
    if header is not None:
        headers["authorization"] = header
    path, _ = draw_path(data, target, op)
    response = await target.send(op, path=path, headers=headers, body=draw_body(data, target, op))
    if refused and not op.path.startswith(UNAUTHENTICATED):
        assert response.status_code >= 300, f"{op} answered {response.status_code} to Authorization {header!r}"
    target.examples["auth"] += 1


def fixed_value(fuzz: Target, name: str, schema: dict[str, Any]) -> str:
    if name in fuzz.seeded.paths:
        return fuzz.seeded.paths[name][0]
    if resolve(schema, fuzz.components).get("format") == "uuid":
        return str(uuid.UUID(int=1))
    return "fuzz-value"


async def test_every_operation_answers_a_fixed_set_of_hostile_requests(target: Target) -> None:
    """Deterministic companion of the searches above: every operation, every role, no token, junk bodies,
    every hostile path segment and correctly signed tokens with junk claims (whatever hypothesis drew)."""
    for op in target.operations:
        fixed = {name: fixed_value(target, name, schema) for name, schema in op.path_params.items()}
        path = fill_path(op, {k: enc(v) for k, v in fixed.items()})
        valid = tuple(json.dumps(b).encode() for b in target.seeded.bodies.get(str(op), ()))
        bodies: tuple[bytes | None, ...] = (*valid, None, b"{}", b"[]", b"null", b'"x"', b"{") if op.body else (None,)
        await target.send(op, path=path, headers=dict(SAFE_HEADERS), body=bodies[-1])
        for role in OfficerRole:
            for body in bodies:
                await target.send(op, path=path, headers={**SAFE_HEADERS, **bearer(role)}, body=body)
        primary = {**SAFE_HEADERS, **bearer(target.service.roles[0])}
        for name in op.path_params:
            for value in (*HOSTILE_TEXT, *RAW_SEGMENTS):
                for encoded in {enc(value), enc(value, "/.%")}:
                    hostile = fill_path(op, {**{k: enc(v) for k, v in fixed.items()}, name: encoded})
                    await target.send(op, path=hostile, headers=primary, body=b"{}" if op.body else None,
                                      sent_strings=(value,))
        for raw in RAW_QUERIES:
            await target.send(op, path=path, query=raw, headers=primary)
        for claim, junk in JUNK_CLAIMS:
            headers = {**SAFE_HEADERS, "authorization": f"Bearer {_signed(_claims(**{claim: junk}))}"}
            await target.send(op, path=path, headers=headers, body=b"{}" if op.body else None)
    target.examples["fixed"] += 1


METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


async def test_every_endpoint_answers_a_wrong_media_type_path_or_method_with_a_problem(target: Target) -> None:
    """415 for a body that is not JSON (before the handler: with or without a token), 404 for a path no
    route serves, 405 (with ``Allow``) for a method the path does not take; a body-less request needs no
    Content-Type."""
    primary = {**SAFE_HEADERS, **bearer(target.service.roles[0])}
    for op in target.operations:
        path = fill_path(op, {n: enc(fixed_value(target, n, s)) for n, s in op.path_params.items()})
        body = next((json.dumps(b).encode() for b in target.seeded.bodies.get(str(op), ())), b"{}")
        if op.body is not None:
            for headers in (primary, SAFE_HEADERS):
                for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/xml"):
                    answer = await target.send(op, path=path, headers={**headers, "content-type": content_type},
                                               body=body)
                    check_problem(answer, 415, "unsupported_media_type")
        elif op.method in {"POST", "PUT", "PATCH"}:
            answer = await target.send(op, path=path, headers={**primary, "content-type": "text/plain"})
            assert answer.status_code != 415, f"{op}: a request without a body was refused for its type"
        check_problem(await target.send(op, path="/no-such-prefix" + path, headers=primary), 404, "not_found")
        served = {o.method for o in target.operations if serves(o, path)}
        for method in (m for m in METHODS if m not in served):
            wrong = Operation(method, op.path, op.path_params, op.query_params, op.header_params, None)
            answer = await target.send(wrong, path=path, headers=primary)
            check_problem(answer, 405, "method_not_allowed")
            allowed = set(answer.headers.get("allow", "").replace(" ", "").split(",")) - {""}
            assert allowed and allowed <= served | {"HEAD"}, (str(wrong), answer.headers)  # one route's methods
    target.examples["media_path_method"] += 1


async def test_the_service_is_healthy_after_the_fuzz(target: Target) -> None:
    """Runs after the fuzz tests of the same service (same module-scoped app, tests in file order)."""
    live = await _ok(target.http.get("/health/live"), 200)
    assert live.json()["status"] == "ok"
    ready = await _ok(target.http.get("/health/ready"), 200)
    assert ready.json()["checks"] == {"nats": True, "mongo": True}
    await VALID[target.service.name](target.http)
    # the fuzz really ran: every enumerated operation was exercised, and the answers were varied
    unreached = {str(op) for op in target.operations} - set(target.per_operation)
    assert not unreached, f"never exercised: {sorted(unreached)}"
    assert sum(target.examples.values()) >= 300, target.examples
    assert {401, 403, 404, 422} <= set(target.statuses), target.statuses
    passed = [k for k in target.outcomes if k.split()[0] != "GET" and k.split()[-1].startswith("2")]
    assert passed, f"no fuzzed write got past validation into a handler: {sorted(target.outcomes)}"

