"""The services' HTTP APIs, called with the signed-in officer's token.

Every refusal comes back as RFC 9457 problem details (``puskesos_shared.problems``); ``ApiError`` carries
its status, stable ``code`` and field errors so that pages can show them next to their fields. A service
that does not answer (refused connection, timeout, 502/503/504) is ``ServiceUnavailable``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog

from .settings import ConsoleSettings

log = structlog.get_logger("puskesos.console.client")


@dataclass(frozen=True)
class FieldError:
    loc: tuple[str | int, ...]
    msg: str
    type: str

    @property
    def field(self) -> str:
        """The field as the forms name it: the location without its ``body``/``query`` part, dotted
        (``["body", "members", 1, "nik"]`` is ``members.1.nik``); empty for the body as a whole."""
        parts = self.loc[1:] if self.loc and self.loc[0] in ("body", "query", "path") else self.loc
        return ".".join(str(p) for p in parts)


@dataclass
class ApiError(Exception):
    """A service refused the request (problem details)."""

    service: str
    status: int
    code: str
    detail: str
    errors: list[FieldError] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.service}: {self.status} {self.code}"

    def field_errors(self) -> dict[str, list[FieldError]]:
        out: dict[str, list[FieldError]] = {}
        for error in self.errors:
            out.setdefault(error.field, []).append(error)
        return out


@dataclass
class ServiceUnavailable(Exception):
    service: str
    reason: str

    def __str__(self) -> str:
        return f"{self.service} unavailable ({self.reason})"


def _api_error(service: str, response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    errors = []
    for item in body.get("errors") or []:
        if isinstance(item, Mapping):
            loc = tuple(p if isinstance(p, int) else str(p) for p in item.get("loc") or ())
            errors.append(FieldError(loc=loc, msg=str(item.get("msg", "")), type=str(item.get("type", ""))))
    code = str(body.get("code") or {401: "unauthenticated", 403: "forbidden", 404: "not_found"}.get(
        response.status_code, "bad_request"))
    return ApiError(service, response.status_code, code, str(body.get("detail", "")), errors)


class Api:
    """One officer's view of the services: ``await api.call("intake", "POST", "/households", json=...)``."""

    def __init__(self, http: httpx.AsyncClient, settings: ConsoleSettings, token: str | None) -> None:
        self.http, self.settings, self.token = http, settings, token

    async def call(self, service: str, method: str, path: str, *, json: Any = None,
                   params: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None) -> Any:
        sent = dict(headers or {})
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        url = self.settings.service_url(service) + path
        try:
            response = await self.http.request(method, url, json=json, params=params, headers=sent)
        except httpx.TimeoutException:
            log.warning("console_api_timeout", service=service, method=method, path=path)
            raise ServiceUnavailable(service, "timeout") from None
        except httpx.TransportError as exc:
            log.warning("console_api_unreachable", service=service, method=method, path=path,
                        error=type(exc).__name__)
            raise ServiceUnavailable(service, "unreachable") from None
        if response.status_code >= 400:
            error = _api_error(service, response)
            log.info("console_api_refused", service=service, method=method, path=path, status=error.status,
                     code=error.code)
            if error.status >= 500:  # the service failed or is not ready: the page cannot be served now
                raise ServiceUnavailable(service, error.code)
            raise error
        if response.status_code == 204 or not response.content:
            return None
        return response.json()


def new_http_client(settings: ConsoleSettings, transport: httpx.AsyncBaseTransport | None = None
                    ) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=settings.console_api_timeout_seconds, transport=transport,
                             limits=httpx.Limits(max_connections=100, max_keepalive_connections=20))
