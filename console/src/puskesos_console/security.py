"""Session, CSRF and response headers.

The session is the officer's token in a cookie (``HttpOnly``, ``SameSite=Strict``, ``Secure`` over TLS,
``Path=/``, expiring with the token). The console does not verify the token: the services do, on every
call. Its claims (officer id, role, scope, expiry) are read only to decide what to show; a forged claim
gets nothing the services would not give the token anyway.

CSRF: every form carries ``HMAC-SHA256(console secret, session token)``; before sign-in, the basis is a
random pre-session cookie, so the sign-in and language forms are protected as well.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import secrets
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import jwt
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.http import IPNetwork
from starlette.requests import Request
from starlette.responses import Response

SESSION_COOKIE = "puskesos_session"
#: Set with the session and kept a day longer: when it is present and the session is not, the session
#: expired (the clear "sesi berakhir" page); it carries nothing but "1".
SIGNED_IN_COOKIE = "puskesos_signed_in"
PRE_SESSION_COOKIE = "puskesos_pre"
LANG_COOKIE = "lang"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = {
    b"content-security-policy": CSP.encode(),
    b"x-content-type-options": b"nosniff",
    b"x-frame-options": b"DENY",
    b"referrer-policy": b"no-referrer",
    b"cross-origin-opener-policy": b"same-origin",
    b"cross-origin-resource-policy": b"same-origin",
    b"permissions-policy": b"camera=(), microphone=(), geolocation=(), payment=()",
}


class TokenUnreadable(ValueError):
    """Not a token of the expected shape (the services would refuse it too)."""


@dataclass(frozen=True)
class Session:
    """What the token's claims say, for display only (the services verify the token itself)."""

    token: str
    officer_id: str
    role: OfficerRole
    scope: tuple[str, ...]
    expires_at: float

    @property
    def expired(self) -> bool:
        return self.expires_at <= time.time()

    @property
    def expires(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.expires_at, dt.UTC)


def read_claims(token: str) -> Session:
    """The claims of an officer token, unverified (``TokenUnreadable`` when they do not describe one)."""
    token = token.strip()
    try:
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        raise TokenUnreadable("not a token") from None
    exp, sub, role, scope = claims.get("exp"), claims.get("sub"), claims.get("role"), claims.get("scope")
    if isinstance(exp, bool) or not isinstance(exp, int | float) or not isinstance(sub, str) or not sub:
        raise TokenUnreadable("claims")
    if not isinstance(scope, list) or not all(isinstance(s, str) for s in scope):
        raise TokenUnreadable("scope")
    try:
        officer_role = OfficerRole(str(role))
    except ValueError:
        raise TokenUnreadable("role") from None
    return Session(token=token, officer_id=sub, role=officer_role, scope=tuple(scope), expires_at=float(exp))


def csrf_token(secret: bytes, basis: str) -> str:
    return hmac.new(secret, b"csrf\x00" + basis.encode(), hashlib.sha256).hexdigest()


def csrf_valid(secret: bytes, basis: str | None, presented: str | None) -> bool:
    if not basis or not presented:
        return False
    return hmac.compare_digest(csrf_token(secret, basis), presented)


def new_pre_session() -> str:
    return secrets.token_urlsafe(32)


def is_tls(request: Request, trusted: Collection[IPNetwork]) -> bool:
    """Whether the browser reached us over TLS: the scheme, or ``X-Forwarded-Proto`` from a trusted proxy."""
    if request.url.scheme == "https":
        return True
    peer = request.client.host if request.client else None
    if not peer or not trusted:
        return False
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    if not any(address in network for network in trusted):
        return False
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[-1].strip().lower()
    return forwarded == "https"


def set_cookie(response: Response, request: Request, trusted: Collection[IPNetwork], name: str, value: str,
               max_age: int) -> None:
    response.set_cookie(name, value, max_age=max(max_age, 0), path="/", httponly=True, samesite="strict",
                        secure=is_tls(request, trusted))


def clear_cookie(response: Response, request: Request, trusted: Collection[IPNetwork], name: str) -> None:
    response.delete_cookie(name, path="/", httponly=True, samesite="strict", secure=is_tls(request, trusted))


def cache_control(path: str) -> bytes:
    """Cache-Control by path: static assets for an hour, pages never (they hold personal data)."""
    return b"public, max-age=3600" if path.startswith("/static/") else b"no-store"
