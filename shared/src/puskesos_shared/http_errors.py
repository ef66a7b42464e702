"""Exception handlers that answer every HTTP error as problem details (``problems``)."""

from __future__ import annotations

from collections.abc import Mapping

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pymongo.errors import ConnectionFailure
from starlette.exceptions import HTTPException
from starlette.responses import Response

from .commands import CommandError
from .problems import PROBLEMS, code_for_status, problem_response

log = structlog.get_logger("puskesos.http")


async def _validation(_: Request, exc: RequestValidationError) -> Response:
    # FastAPI's default echoes the offending input (possibly a NIK); only where and what is kept.
    errors = [{"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
              for err in exc.errors()]
    return problem_response("invalid_request", "the request does not match the endpoint's schema", status=422,
                            errors=errors)


async def _command_error(_: Request, exc: CommandError) -> Response:
    return problem_response(exc.code, exc.message, status=exc.status, errors=exc.fields)


async def _http_exception(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = code_for_status(exc.status_code)
    # Starlette's 404 and 405 and the body limit's 413 say nothing about the input; anything else
    # (raised with who knows what text) gets the title.
    shown = isinstance(exc.detail, str) and exc.status_code in (404, 405, 413)
    detail = exc.detail if shown else PROBLEMS[code].title
    return problem_response(code, detail, status=exc.status_code, headers=exc.headers)


async def _storage_unavailable(request: Request, exc: ConnectionFailure) -> Response:
    # The database did not answer (down, restarting, unreachable). Every decision is one
    # single-document write, so nothing was half-written: the request can be sent again.
    log.error("http_storage_unavailable", method=request.method, path=request.url.path, error=type(exc).__name__)
    return problem_response("storage_unavailable", "the database is not available; the request was not completed "
                            "and can be sent again", headers={"Retry-After": "5"})


def install_problem_handlers(app: FastAPI, *, outer_headers: Mapping[str, str]) -> None:
    """``outer_headers`` go on a 500, which Starlette sends outside every middleware."""

    async def unhandled(request: Request, exc: Exception) -> Response:
        # Starlette sends this, then re-raises to the server (which logs the traceback).
        log.error("http_unhandled_error", method=request.method, path=request.url.path, error=type(exc).__name__)
        return problem_response("internal_error", "the request failed; it may be sent again", status=500,
                                headers=outer_headers)

    app.add_exception_handler(RequestValidationError, _validation)  # type: ignore[arg-type]
    app.add_exception_handler(CommandError, _command_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_exception)
    app.add_exception_handler(ConnectionFailure, _storage_unavailable)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, unhandled)
