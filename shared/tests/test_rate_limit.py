"""HTTP rate limits: the token bucket on a fake clock, and the middleware through ASGI."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI
from puskesos_shared import auth
from puskesos_shared import http as http_module
from puskesos_shared.auth import CurrentOfficer, Officer, issue_token
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.http import (
    RATE_LIMITED,
    SECURITY_HEADERS,
    RateLimits,
    TokenBuckets,
    client_address,
    install_http_defaults,
    masked_ip,
    parse_networks,
)
from puskesos_shared.logging import configure_logging
from puskesos_shared.settings import ServiceSettings
from pydantic import SecretStr, ValidationError

SECRET = "r" * 40


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# -- the bucket ----------------------------------------------------------------------------------


def test_a_bucket_allows_its_burst_then_refuses_until_it_refills() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(per_minute=60, burst=3, clock=clock)  # one token a second
    assert [buckets.take("a").allowed for _ in range(4)] == [True, True, True, False]
    refused = buckets.take("a")
    assert not refused.allowed and refused.retry_after == pytest.approx(1.0)
    clock.advance(0.5)
    assert buckets.take("a").retry_after == pytest.approx(0.5)
    clock.advance(0.5)
    assert buckets.take("a").allowed and not buckets.take("a").allowed
    clock.advance(3600)  # never more than the burst saved up
    assert [buckets.take("a").allowed for _ in range(4)] == [True, True, True, False]


def test_sustained_rate_is_per_minute_over_sixty() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(per_minute=600, burst=1, clock=clock)  # 10 a second
    allowed = 0
    for _ in range(1000):  # 10 s in steps of 10 ms
        allowed += buckets.take("k").allowed
        clock.advance(0.01)
    assert allowed == pytest.approx(100, abs=1)


def test_keys_do_not_share_a_bucket() -> None:
    buckets = TokenBuckets(per_minute=60, burst=1, clock=FakeClock())
    assert buckets.take("a").allowed and not buckets.take("a").allowed
    assert buckets.take("b").allowed


def test_the_first_refusal_of_a_window_is_flagged_for_the_log() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(per_minute=60, burst=1, clock=clock, warn_window=60)
    buckets.take("a")
    assert [buckets.take("a").warn for _ in range(3)] == [True, False, False]
    clock.advance(30)
    for _ in range(40):
        buckets.take("a")
    assert not buckets.take("a").warn
    clock.advance(31)
    assert buckets.take("a").allowed  # refilled meanwhile
    assert buckets.take("a").warn  # a new window


def test_idle_buckets_are_dropped_once_full_again() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(per_minute=60, burst=10, clock=clock, warn_window=5)  # full after 10 s idle
    for key in ("a", "b", "c"):
        buckets.take(key)
    clock.advance(5)
    buckets.take("c")
    clock.advance(5)
    buckets.take("d")  # a and b idle 10 s: dropped; c used 5 s ago: kept
    assert len(buckets) == 2 and "c" in buckets and "d" in buckets and "a" not in buckets


def test_the_number_of_keys_is_capped_least_recently_used_first() -> None:
    buckets = TokenBuckets(per_minute=60, burst=5, max_keys=3, clock=FakeClock())
    for key in ("a", "b", "c"):
        buckets.take(key)
    buckets.take("a")  # a is now the most recent
    buckets.take("d")
    assert len(buckets) == 3 and "b" not in buckets and "a" in buckets
    for n in range(10_000):
        buckets.take(f"k{n}")
    assert len(buckets) == 3


def test_a_bucket_needs_a_positive_rate() -> None:
    with pytest.raises(ValueError, match="per_minute > 0"):
        TokenBuckets(per_minute=0, burst=1)


# -- addresses -----------------------------------------------------------------------------------


def scope(client: str, forwarded: str | None = None) -> dict[str, object]:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded is not None else []
    return {"type": "http", "client": (client, 5000), "headers": headers}


def test_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    proxies = parse_networks(["10.0.0.0/8"])
    assert str(client_address(scope("203.0.113.9", "198.51.100.1"), proxies)) == "203.0.113.9"
    assert str(client_address(scope("10.1.1.1", "198.51.100.1"), ())) == "10.1.1.1"
    assert str(client_address(scope("10.1.1.1", "198.51.100.1"), proxies)) == "198.51.100.1"
    # right to left: the client may claim anything at the left end
    assert str(client_address(scope("10.1.1.1", "1.2.3.4, 198.51.100.1, 10.2.2.2"), proxies)) == "198.51.100.1"
    assert str(client_address(scope("10.1.1.1", "junk, 10.2.2.2"), proxies)) == "10.2.2.2"
    assert str(client_address(scope("10.1.1.1"), proxies)) == "10.1.1.1"


def test_addresses_are_truncated_for_logs() -> None:
    assert masked_ip(ipaddress.ip_address("203.0.113.77")) == "203.0.113.0/24"
    assert masked_ip(ipaddress.ip_address("2001:db8:1:2::5")) == "2001:db8:1::/48"


def test_settings_name_the_limits() -> None:
    settings = ServiceSettings(rate_limit_per_minute=0, trusted_proxies="10.0.0.0/8, 192.168.1.1")
    limits = settings.rate_limits()
    assert limits.per_minute == 0 and limits.enabled
    assert limits.trusted_proxies == parse_networks(["10.0.0.0/8", "192.168.1.1/32"])
    with pytest.raises(ValidationError):
        ServiceSettings(trusted_proxies="10.0.0.0/8, not-an-ip")
    defaults = ServiceSettings().rate_limits()
    assert defaults.per_minute > 0 and defaults.anonymous_per_minute > 0 and defaults.trusted_proxies == ()


# -- the middleware through ASGI ---------------------------------------------------------------


def make_app(limits: RateLimits | None, clock: FakeClock) -> FastAPI:
    app = FastAPI()
    install_http_defaults(app, max_body_bytes=1024, rate_limits=limits, auth_secret=SECRET, clock=clock)
    app.state.runtime = SimpleNamespace(settings=SimpleNamespace(auth_secret=SecretStr(SECRET)))

    @app.get("/mine")
    async def mine(officer: CurrentOfficer) -> dict[str, str]:
        return {"officer": officer.officer_id}

    @app.get("/open")
    async def open_() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    async def metrics() -> dict[str, str]:
        return {}

    return app


@asynccontextmanager
async def client(app: FastAPI, ip: str = "203.0.113.10") -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


def bearer(officer_id: str, *, ttl: dt.timedelta = dt.timedelta(hours=1)) -> dict[str, str]:
    officer = Officer(officer_id=officer_id, role=OfficerRole.FRONT_OFFICE, scope=("35.73.01.1001",))
    return {"Authorization": f"Bearer {issue_token(officer, SECRET, ttl=ttl)}"}


LIMITS = RateLimits(per_minute=60, burst=3, anonymous_per_minute=6, anonymous_burst=2)


async def statuses(http: httpx.AsyncClient, path: str, n: int, headers: dict[str, str] | None = None) -> list[int]:
    return [(await http.get(path, headers=headers)).status_code for _ in range(n)]


async def test_officers_are_limited_each_on_their_own() -> None:
    app = make_app(LIMITS, FakeClock())
    async with client(app) as http:
        assert await statuses(http, "/mine", 4, bearer("fo-a")) == [200, 200, 200, 429]
        assert await statuses(http, "/mine", 3, bearer("fo-b")) == [200, 200, 200]  # same IP, other officer
        assert await statuses(http, "/open", 2) == [200, 200]  # the IP's own bucket is untouched
    async with client(app, ip="198.51.100.7") as elsewhere:  # officer A from another address: still A
        assert await statuses(elsewhere, "/mine", 1, bearer("fo-a")) == [429]


async def test_a_refused_request_says_when_to_retry_with_the_usual_error_shape_and_headers() -> None:
    clock = FakeClock()
    app = make_app(RateLimits(per_minute=0.5, burst=1, anonymous_per_minute=6, anonymous_burst=1), clock)
    before = RATE_LIMITED.labels("officer")._value.get()
    async with client(app) as http:
        assert (await http.get("/mine", headers=bearer("fo-a"))).status_code == 200
        clock.advance(30.5)  # a quarter of a token
        refused = await http.get("/mine", headers=bearer("fo-a"))
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "90"  # 89.5 s, rounded up
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json() == {"type": "urn:puskesos:problem:rate_limited", "title": "Too many requests", "status": 429,
                              "detail": "too many requests: retry after 90 s", "code": "rate_limited", "errors": []}
    for name, value in SECURITY_HEADERS.items():
        assert refused.headers[name.decode()] == value.decode()
    assert RATE_LIMITED.labels("officer")._value.get() == before + 1


async def test_anonymous_and_unverifiable_callers_are_limited_by_address() -> None:
    clock = FakeClock()
    app = make_app(LIMITS, clock)
    forged = {"Authorization": "Bearer " + issue_token(
        Officer(officer_id="fo-x", role=OfficerRole.FRONT_OFFICE, scope=("35.73",)), "w" * 40)}
    expired = bearer("fo-old", ttl=dt.timedelta(seconds=-5))
    async with client(app) as http:
        assert await statuses(http, "/open", 1) == [200]
        assert await statuses(http, "/mine", 1, forged) == [401]  # a bad token pays from the IP's bucket
        assert await statuses(http, "/mine", 1, expired) == [429]
        assert await statuses(http, "/mine", 1, bearer("fo-ok")) == [200]  # a real officer is not that IP
    async with client(app, ip="203.0.113.11") as neighbour:
        assert await statuses(neighbour, "/open", 2) == [200, 200]
    clock.advance(10)  # 6 a minute: one token back
    async with client(app) as http:
        assert await statuses(http, "/open", 2) == [200, 429]


async def test_a_token_is_verified_once_for_the_limit_and_the_dependency(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    verify = auth.verify_token_expiry

    def counting(token: str, secret: str, *, now: dt.datetime | None = None) -> tuple[Officer, float]:
        calls.append(token)
        return verify(token, secret, now=now)

    monkeypatch.setattr(http_module, "verify_token_expiry", counting)  # the limiter's
    monkeypatch.setattr(auth, "verify_token_expiry", counting)  # the dependency's (through verify_token)
    clock = FakeClock()
    app = make_app(LIMITS, clock)
    headers = bearer("fo-a")
    async with client(app) as http:
        assert (await http.get("/mine", headers=headers)).json() == {"officer": "fo-a"}
        assert (await http.get("/mine", headers=headers)).json() == {"officer": "fo-a"}
        assert len(calls) == 1  # the second request hit the cache; the dependency verified neither
        clock.advance(61)  # past the cache's minute: verified again
        assert (await http.get("/mine", headers=headers)).json() == {"officer": "fo-a"}
        assert len(calls) == 2


async def test_health_and_metrics_are_never_limited() -> None:
    app = make_app(RateLimits(per_minute=60, burst=1, anonymous_per_minute=60, anonymous_burst=1), FakeClock())
    async with client(app) as http:
        assert set(await statuses(http, "/health/live", 50)) == {200}
        assert set(await statuses(http, "/metrics", 50, bearer("fo-a"))) == {200}
        assert await statuses(http, "/open", 2) == [200, 429]


async def test_zero_turns_a_limit_off() -> None:
    off = make_app(RateLimits(per_minute=0, burst=1, anonymous_per_minute=0, anonymous_burst=1), FakeClock())
    assert off.state.rate_limiter is None
    async with client(off) as http:
        assert set(await statuses(http, "/mine", 30, bearer("fo-a"))) == {200}
        assert set(await statuses(http, "/open", 30)) == {200}
    officers_off = make_app(RateLimits(per_minute=0, burst=1, anonymous_per_minute=60, anonymous_burst=1),
                            FakeClock())
    async with client(officers_off) as http:
        assert set(await statuses(http, "/mine", 30, bearer("fo-a"))) == {200}
        assert await statuses(http, "/open", 2) == [200, 429]
    unlimited = make_app(None, FakeClock())
    async with client(unlimited) as http:
        assert set(await statuses(http, "/open", 30)) == {200}


async def test_trusted_proxy_forwards_the_client_address() -> None:
    limits = RateLimits(per_minute=60, burst=1, anonymous_per_minute=60, anonymous_burst=1,
                        trusted_proxies=parse_networks(["10.0.0.0/8"]))
    app = make_app(limits, FakeClock())
    async with client(app, ip="10.0.0.2") as ingress:
        first = {"X-Forwarded-For": "198.51.100.1"}
        assert await statuses(ingress, "/open", 2, first) == [200, 429]
        assert await statuses(ingress, "/open", 1, {"X-Forwarded-For": "198.51.100.2"}) == [200]
    async with client(app, ip="203.0.113.5") as direct:  # not a proxy: its header is ignored
        assert await statuses(direct, "/open", 2, {"X-Forwarded-For": "198.51.100.3"}) == [200, 429]


async def test_a_refusal_is_logged_once_per_window_with_the_address_masked(
    capfd: pytest.CaptureFixture[str],
) -> None:
    configure_logging(json=True, force=True)  # as the test plugin and production do
    capfd.readouterr()
    clock = FakeClock()
    app = make_app(RateLimits(per_minute=60, burst=1, anonymous_per_minute=60, anonymous_burst=1), clock)
    async with client(app, ip="203.0.113.77") as http:
        await statuses(http, "/open", 5)
        await statuses(http, "/mine", 5, bearer("fo-a"))
    err = capfd.readouterr().err
    lines = [json.loads(line) for line in err.splitlines() if "http_rate_limited" in line]
    assert [(r["kind"], r.get("client_network"), r.get("officer_id")) for r in lines] == [
        ("ip", "203.0.113.0/24", None), ("officer", None, "fo-a")]
    assert "203.0.113.77" not in err
