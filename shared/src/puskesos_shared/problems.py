"""One shape for every HTTP error: RFC 9457 problem details (``application/problem+json``).

``{"type": "urn:puskesos:problem:<code>", "title", "status", "detail", "code", "errors": [{"loc", "msg",
"type"}]}``. ``code`` is the stable code a NATS command reply carries for the same refusal; ``PROBLEMS``
names every code the services use (``docs/conventions.md``, section "Errors", has the same table and
a test keeps the three in step). ``detail`` is for people: it never carries an input value or an
exception's own text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from starlette.responses import JSONResponse
from starlette.types import Message, Send

MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:puskesos:problem:"


class ProblemType(NamedTuple):
    title: str
    status: int  # the usual HTTP status; a raise may give another


PROBLEMS: dict[str, ProblemType] = {
    # any service, from the HTTP edge
    "bad_request": ProblemType("Bad request", 400),
    "malformed_json": ProblemType("Malformed JSON", 400),
    "unauthenticated": ProblemType("Authentication required", 401),
    "invalid_token": ProblemType("Invalid token", 401),
    "token_expired": ProblemType("Token expired", 401),
    "forbidden": ProblemType("Forbidden", 403),
    "outside_scope": ProblemType("Outside the officer's scope", 403),
    "not_found": ProblemType("Not found", 404),
    "method_not_allowed": ProblemType("Method not allowed", 405),
    "conflict": ProblemType("Conflict", 409),
    "concurrent_update": ProblemType("Concurrent update", 409),
    "idempotency_key_reused": ProblemType("Idempotency key reused", 409),
    "payload_too_large": ProblemType("Payload too large", 413),
    "section_too_large": ProblemType("Export section too large", 413),
    "unsupported_media_type": ProblemType("Unsupported media type", 415),
    "invalid_request": ProblemType("Invalid request", 422),
    "rate_limited": ProblemType("Too many requests", 429),
    "internal_error": ProblemType("Internal error", 500),
    "service_unavailable": ProblemType("Service unavailable", 503),
    "storage_unavailable": ProblemType("Storage unavailable", 503),
    "auth_not_configured": ProblemType("Authentication not configured", 503),
    # any service: the redrive command (dead letters back to their consumer)
    "dead_letter_not_found": ProblemType("Dead letter not found", 404),
    "message_not_found": ProblemType("Message not found", 404),
    "unknown_consumer": ProblemType("Unknown consumer", 404),
    "dead_letter_of_other_service": ProblemType("Dead letter of another service", 409),
    "not_for_consumer": ProblemType("Not for this consumer", 409),
    "redrive_failed": ProblemType("Re-drive failed", 409),
    # intake
    "unknown_village": ProblemType("Unknown village", 422),
    "invalid_header": ProblemType("Invalid import header", 422),
    "same_household": ProblemType("Same household", 422),
    "household_not_found": ProblemType("Household not found", 404),
    "member_not_found": ProblemType("Member not found", 404),
    "complaint_not_found": ProblemType("Complaint not found", 404),
    "nik_in_other_household": ProblemType("NIK in another household", 409),
    "nik_in_transfer": ProblemType("NIK in transfer", 409),
    "transfer_refused": ProblemType("Transfer refused", 409),
    "transfer_aborted": ProblemType("Transfer aborted", 409),
    "open_complaint_elsewhere": ProblemType("Open complaint elsewhere", 409),
    "complaint_in_progress": ProblemType("Complaint being filed", 409),
    "access_log_unavailable": ProblemType("Access log unavailable", 503),
    # referral
    "case_not_found": ProblemType("Case not found", 404),
    "referral_not_found": ProblemType("Referral not found", 404),
    "rule_set_not_found": ProblemType("Rule set not found", 404),
    "household_unknown": ProblemType("Household unknown", 409),
    "unknown_target": ProblemType("Unknown referral target", 422),
    "unknown_rule_set": ProblemType("Unknown rule set", 422),
    "case_closed": ProblemType("Case closed", 409),
    "invalid_state": ProblemType("Invalid state", 409),
    "not_eligible": ProblemType("Not eligible", 409),
    "referral_pending": ProblemType("Referral pending", 409),
    "rule_set_exists": ProblemType("Rule set exists", 409),
    "version_not_newer": ProblemType("Version not newer", 409),
    "no_open_escalation": ProblemType("No open escalation", 409),
    "already_acknowledged": ProblemType("Escalation already acknowledged", 409),
    "no_rule_set": ProblemType("No rule set", 503),
    # distribution
    "unknown_round": ProblemType("Unknown round", 404),
    "round_not_open": ProblemType("Round not open", 409),
    "work_pending": ProblemType("Work pending", 409),
    "still_draining": ProblemType("Round still draining", 409),
    "no_gateway": ProblemType("No payment gateway", 503),
    # notification
    "officer_not_found": ProblemType("Officer not found", 404),
    "notification_not_found": ProblemType("Notification not found", 404),
    "subscriber_not_found": ProblemType("Subscriber not found", 404),
    # audit
    "trace_not_found": ProblemType("Nothing to trace", 404),
}

#: The code of an error that only has an HTTP status (Starlette's 404 and 405, say).
STATUS_CODES = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
                405: "method_not_allowed", 409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type",
                422: "invalid_request", 429: "rate_limited", 500: "internal_error", 503: "service_unavailable"}


def code_for_status(status: int) -> str:
    return STATUS_CODES.get(status, "internal_error" if status >= 500 else "bad_request")


def problem(code: str, detail: str, *, status: int | None = None,
            errors: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The body; ``status`` defaults to the code's usual one, ``errors`` are ``{"loc", "msg", "type"}``."""
    known = PROBLEMS.get(code) or PROBLEMS[code_for_status(status or 500)]
    return {"type": TYPE_PREFIX + code, "title": known.title, "status": status or known.status, "detail": detail,
            "code": code, "errors": [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")),
                                      "type": str(e.get("type", code))} for e in errors]}


def problem_response(code: str, detail: str, *, status: int | None = None,
                     errors: Iterable[Mapping[str, Any]] = (), headers: Mapping[str, str] | None = None
                     ) -> JSONResponse:
    body = problem(code, detail, status=status, errors=errors)
    extra = dict(headers or {})
    if body["status"] == 401:
        extra.setdefault("WWW-Authenticate", 'Bearer error="invalid_token"' if code in {"invalid_token",
                                                                                      "token_expired"} else "Bearer")
    return JSONResponse(body, status_code=body["status"], headers=extra, media_type=MEDIA_TYPE)


async def send_problem(send: Send, code: str, detail: str, *, status: int | None = None,
                       headers: Mapping[str, str] | None = None) -> None:
    """Answers from an ASGI middleware, before (or instead of) the app."""
    await problem_response(code, detail, status=status, headers=headers)({"type": "http"}, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.request", "body": b""}
