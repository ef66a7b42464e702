"""HTTP edge defaults: errors as problem details (``problems``, ``http_errors``), body size limit, JSON
bodies only, security headers, rate limits.

Rate limits are token buckets in process memory, keyed on the officer of a verified bearer token,
else on the client address (``X-Forwarded-For`` is believed only from ``trusted_proxies``). Each
replica enforces its own limits, so N replicas admit up to N times as much: a global limit belongs
at the gateway or ingress. Health and metrics endpoints are never limited.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import structlog
from fastapi import FastAPI
from prometheus_client import Counter
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import VERIFIED_OFFICER, AuthError, Officer, verify_token_expiry
from .http_errors import install_problem_handlers
from .problems import send_problem

log = structlog.get_logger("puskesos.http")

Clock = Callable[[], float]
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

RATE_LIMITED = Counter(
    "puskesos_http_rate_limited_total",
    "HTTP requests answered 429 by the rate limit, by what the limit is keyed on (officer, ip)",
    ["kind"],
)
#: Never limited: probes and scrapes must see an overloaded service as it is.
EXEMPT_PATHS = frozenset({"/health", "/health/live", "/health/ready", "/metrics"})

SECURITY_HEADERS = {
    b"x-content-type-options": b"nosniff",
    b"x-frame-options": b"DENY",
    b"referrer-policy": b"no-referrer",
    b"cache-control": b"no-store",
    b"content-security-policy": b"default-src 'none'; frame-ancestors 'none'",
}


class BodyLimitMiddleware:
    """Answers 413 for bodies over ``max_bytes`` (declared or streamed) before any handler runs."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge(self.max_bytes)
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        await send_problem(send, "payload_too_large", _TooLarge.message(self.max_bytes))


class _TooLarge(HTTPException):
    """Raised while the app reads the body: an ``HTTPException``, which FastAPI lets through (any other
    exception there becomes its 400 "error parsing the body")."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, self.message(max_bytes))

    @staticmethod
    def message(max_bytes: int) -> str:
        return f"the request body is larger than {max_bytes} bytes"


class JsonBodyMiddleware:
    """Answers 415 to a body (POST, PUT, PATCH) that is not declared JSON (``application/json`` or
    ``type/subtype+json``), before any handler runs: every endpoint takes JSON. A request without a
    body (no ``Content-Length``, or 0, and no ``Transfer-Encoding``) passes whatever it declares."""

    METHODS = frozenset({"POST", "PUT", "PATCH"})

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") in self.METHODS:
            headers = dict(scope.get("headers") or [])
            length = headers.get(b"content-length", b"").strip()
            has_body = b"transfer-encoding" in headers or length not in (b"", b"0")
            if has_body and not is_json(headers.get(b"content-type", b"")):
                await send_problem(send, "unsupported_media_type", "the request body must be JSON "
                                   "(Content-Type: application/json)")
                return
        await self.app(scope, receive, send)


def is_json(content_type: bytes) -> bool:
    media = content_type.split(b";", 1)[0].strip().lower()
    kind, _, subtype = media.partition(b"/")
    return bool(kind) and kind != b"*" and (media == b"application/json" or subtype.endswith(b"+json"))


class SecurityHeadersMiddleware:
    """Adds ``headers`` to every response (errors included) unless the handler set them. ``cache_control``
    chooses Cache-Control by request path instead (the console caches its static assets, not its pages)."""

    def __init__(self, app: ASGIApp, headers: Mapping[bytes, bytes] = SECURITY_HEADERS,
                 cache_control: Callable[[str], bytes] | None = None) -> None:
        self.app, self.headers, self.cache_control = app, headers, cache_control

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        defaults = dict(self.headers)
        if self.cache_control is not None:
            defaults[b"cache-control"] = self.cache_control(str(scope.get("path", "")))

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in defaults.items() if k not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


# -- rate limits ---------------------------------------------------------------------------------


class Verdict(NamedTuple):
    allowed: bool
    #: Seconds until the next token (0 when allowed).
    retry_after: float = 0.0
    #: The first refusal of this key in its warning window (log it; later ones are only counted).
    warn: bool = False


class _Bucket:
    __slots__ = ("tokens", "updated", "warn_after")

    def __init__(self, tokens: float, updated: float) -> None:
        self.tokens, self.updated, self.warn_after = tokens, updated, updated


class TokenBuckets:
    """One token bucket per key: ``per_minute / 60`` tokens a second, at most ``burst`` saved up.

    Memory is bounded. A bucket idle until it is full again (and past its warning window) is the
    same as no bucket, so it is dropped; buckets are kept in least-recently-used order, which makes
    that sweep O(1) amortised. Past ``max_keys`` the least recently used bucket goes even if not
    full (the only lossy eviction: that key starts again with a full burst).
    """

    def __init__(self, per_minute: float, burst: int, *, max_keys: int = 100_000, clock: Clock = time.monotonic,
                 warn_window: float = 60.0) -> None:
        if per_minute <= 0 or burst < 1 or max_keys < 1:
            raise ValueError("a token bucket needs per_minute > 0, burst >= 1 and max_keys >= 1")
        self.rate, self.burst, self.max_keys = per_minute / 60.0, burst, max_keys
        self.clock, self.warn_window = clock, warn_window
        self.idle_seconds = max(burst / self.rate, warn_window)
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def __contains__(self, key: object) -> bool:
        return key in self._buckets

    def take(self, key: str) -> Verdict:
        """Takes one token from ``key``'s bucket (no await inside: atomic on the event loop)."""
        now = self.clock()
        self._drop_idle(now)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.rate)
            bucket.updated = now
            self._buckets.move_to_end(key)
        if bucket.tokens >= 1.0 - 1e-9:  # tolerate float sums (ten tenths of a token are one)
            bucket.tokens = max(0.0, bucket.tokens - 1.0)
            return Verdict(True)
        warn = now >= bucket.warn_after
        if warn:
            bucket.warn_after = now + self.warn_window
        return Verdict(False, (1.0 - bucket.tokens) / self.rate, warn)

    def _drop_idle(self, now: float) -> None:
        buckets = self._buckets
        while buckets:
            oldest = next(iter(buckets.values()))
            if now - oldest.updated < self.idle_seconds:
                return
            buckets.popitem(last=False)


@dataclass(frozen=True)
class RateLimits:
    """Limits of one service process (``ServiceSettings.rate_limit_*``); a rate of 0 turns that limit off."""

    #: Per officer (verified bearer token).
    per_minute: float = 600.0
    burst: int = 300
    #: Per client address, for requests without a verifiable token.
    anonymous_per_minute: float = 120.0
    anonymous_burst: int = 60
    #: Peers whose ``X-Forwarded-For`` is believed (the ingress, a load balancer).
    trusted_proxies: tuple[IPNetwork, ...] = ()
    max_keys: int = 100_000
    exempt_paths: frozenset[str] = EXEMPT_PATHS

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0 or self.anonymous_per_minute > 0


def parse_networks(entries: Iterable[str]) -> tuple[IPNetwork, ...]:
    """``"10.0.0.5"``, ``"10.0.0.0/8"``, ``"fd00::/8"`` -> networks (ValueError on anything else)."""
    return tuple(ipaddress.ip_network(e.strip(), strict=False) for e in entries if e.strip())


def _parse_ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def client_address(scope: Scope, trusted: Collection[IPNetwork]) -> IPAddress | None:
    """The caller's address: the peer, or, when the peer is a trusted proxy, the nearest untrusted hop
    of ``X-Forwarded-For`` (read right to left; the left end is whatever the client claimed)."""
    peer = scope.get("client")
    address = _parse_ip(str(peer[0])) if peer else None
    if address is None or not trusted or not any(address in net for net in trusted):
        return address
    forwarded = b",".join(v for k, v in scope.get("headers") or [] if k == b"x-forwarded-for")
    for hop in reversed(forwarded.decode("latin-1").split(",")) if forwarded else ():
        hop_address = _parse_ip(hop)
        if hop_address is None:
            break  # garbage: the last trusted hop is as far as the chain can be believed
        address = hop_address
        if not any(address in net for net in trusted):
            break
    return address


def _ip_key(address: IPAddress | None) -> str:
    """IPv4 by address; IPv6 by /64 (one subscriber's prefix: rotating within it gains nothing)."""
    if address is None:
        return "unknown"
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def masked_ip(address: IPAddress | None) -> str:
    """An address fit for a log: IPv4 truncated to /24, IPv6 to /48."""
    if address is None:
        return "unknown"
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


class _VerifiedTokens:
    """Officers of tokens verified recently, so a client's token is verified about once a minute rather
    than on every request. A hit holds until ``ttl`` has passed or the token has expired (its ``exp``,
    against the wall clock as ``verify_token`` checks it), whichever comes first."""

    def __init__(self, secret: str, clock: Clock, *, size: int = 10_000, ttl: float = 60.0) -> None:
        self.secret, self.clock, self.size, self.ttl = secret, clock, size, ttl
        self._cache: OrderedDict[str, tuple[Officer, float, float]] = OrderedDict()

    def officer(self, token: str) -> Officer | None:
        now = self.clock()
        hit = self._cache.get(token)
        if hit is not None and hit[1] > now and hit[2] > time.time():
            self._cache.move_to_end(token)
            return hit[0]
        try:
            officer, expires = verify_token_expiry(token, self.secret)
        except AuthError:
            self._cache.pop(token, None)
            return None
        self._cache[token] = (officer, now + self.ttl, expires)
        self._cache.move_to_end(token)
        if len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return officer


def _bearer(scope: Scope) -> str | None:
    for key, value in scope.get("headers") or []:
        if key == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            token = token.strip()
            return token if scheme.lower() == "bearer" and token else None
    return None


class RateLimiter:
    """Decides, per request, which bucket pays and whether it can."""

    def __init__(self, limits: RateLimits, *, auth_secret: str | None, clock: Clock = time.monotonic) -> None:
        self.limits = limits
        self.officers = (TokenBuckets(limits.per_minute, limits.burst, max_keys=limits.max_keys, clock=clock)
                         if limits.per_minute > 0 else None)
        self.clients = (TokenBuckets(limits.anonymous_per_minute, limits.anonymous_burst, max_keys=limits.max_keys,
                                     clock=clock) if limits.anonymous_per_minute > 0 else None)
        self._tokens = _VerifiedTokens(auth_secret, clock) if auth_secret else None

    def check(self, scope: Scope) -> tuple[Verdict, str, dict[str, str]]:
        """(verdict, kind, what to log about the key). Leaves the officer of a verified token in the
        scope (``auth.VERIFIED_OFFICER``) for the ``CurrentOfficer`` dependency."""
        token = _bearer(scope)
        officer = self._tokens.officer(token) if token and self._tokens else None
        if officer is not None:
            scope[VERIFIED_OFFICER] = officer
            if self.officers is None:
                return Verdict(True), "officer", {}
            return self.officers.take(officer.officer_id), "officer", {"officer_id": officer.officer_id}
        address = client_address(scope, self.limits.trusted_proxies)
        if self.clients is None:
            return Verdict(True), "ip", {}
        return self.clients.take(_ip_key(address)), "ip", {"client_network": masked_ip(address)}


class RateLimitMiddleware:
    """Answers 429 with ``Retry-After`` once a key's bucket is empty, before the body is read."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app, self.limiter = app, limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.limiter.limits.exempt_paths:
            await self.app(scope, receive, send)
            return
        verdict, kind, about = self.limiter.check(scope)
        if verdict.allowed:
            await self.app(scope, receive, send)
            return
        retry_after = max(1, math.ceil(verdict.retry_after))
        RATE_LIMITED.labels(kind).inc()
        if verdict.warn:
            log.warning("http_rate_limited", kind=kind, retry_after=retry_after, method=scope.get("method"), **about)
        await send_problem(send, "rate_limited", f"too many requests: retry after {retry_after} s",
                           headers={"Retry-After": str(retry_after)})


def install_http_defaults(app: FastAPI, *, max_body_bytes: int, rate_limits: RateLimits | None = None,
                          auth_secret: str | None = None, clock: Clock = time.monotonic) -> None:
    """Problem details for every error, the body limit, JSON bodies only, rate limits (when given;
    ``auth_secret`` keys them on officers) and security headers. ``app.state.rate_limiter`` is the
    limiter (None without limits)."""
    install_problem_handlers(app, outer_headers={k.decode(): v.decode() for k, v in SECURITY_HEADERS.items()})
    # Starlette runs the last added outermost: headers, then rate limit, then media type, then body limit.
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
    app.add_middleware(JsonBodyMiddleware)
    limiter = (RateLimiter(rate_limits, auth_secret=auth_secret, clock=clock)
               if rate_limits is not None and rate_limits.enabled else None)
    app.state.rate_limiter = limiter
    if limiter is not None:
        app.add_middleware(RateLimitMiddleware, limiter=limiter)
    app.add_middleware(SecurityHeadersMiddleware)
