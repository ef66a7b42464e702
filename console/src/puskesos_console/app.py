"""The console's FastAPI application: pages, static assets, error pages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import structlog
from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from puskesos_shared.http import SecurityHeadersMiddleware
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, RedirectResponse, Response

from .audit_pages import router as audit_router
from .casework import router as casework_router
from .client import ApiError, ServiceUnavailable, new_http_client
from .pages import router
from .rounds import router as rounds_router
from .security import SECURITY_HEADERS, cache_control
from .settings import ConsoleSettings
from .web import (
    HERE,
    CsrfRejected,
    SessionExpired,
    SignInRequired,
    context,
    problem_message,
    redirect,
    render,
    sign_out,
)

log = structlog.get_logger("puskesos.console")


def _error_page(request: Request, status: int, title_key: str, message: str) -> Response:
    ctx = context(request, required=False)
    return render(ctx, "error.html", status=status, title_key=title_key, message=message)


def create_app(settings: ConsoleSettings, *, transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """``transport``: where the services' calls go instead of the network (tests)."""
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.http = new_http_client(settings, transport)
        try:
            yield
        finally:
            await app.state.http.aclose()

    app = FastAPI(title="Puskesos console", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.secret = settings.secret()
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.include_router(router)
    app.include_router(casework_router)
    app.include_router(rounds_router)
    app.include_router(audit_router)

    @app.get("/health/live", include_in_schema=False)
    @app.get("/health/ready", include_in_schema=False)
    @app.get("/health", include_in_schema=False)
    async def health() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def sign_in_required(request: Request, _: Exception) -> Response:
        return RedirectResponse("/login", status_code=303)

    async def session_expired(request: Request, _: Exception) -> Response:
        ctx = context(request, required=False)
        sign_out(ctx)
        ctx.session = None
        return render(ctx, "expired.html", status=401)

    async def csrf_rejected(request: Request, _: Exception) -> Response:
        ctx = context(request, required=False)
        return render(ctx, "error.html", status=403, title_key="error.csrf.title",
                      message=ctx.t("error.csrf.message"))

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        ctx = context(request, required=False)
        if exc.status == 401:
            sign_out(ctx)
            ctx.session = None
            return render(ctx, "expired.html", status=401)
        title = {403: "error.forbidden.title", 404: "error.not_found.title"}.get(exc.status, "error.refused.title")
        return render(ctx, "error.html", status=exc.status, title_key=title, message=problem_message(ctx.t, exc))

    async def unavailable(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ServiceUnavailable)
        ctx = context(request, required=False)
        return render(ctx, "error.html", status=503, title_key="error.unavailable.title",
                      message=ctx.t("error.unavailable.message", service=ctx.t(f"service.{exc.service}")))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        ctx = context(request, required=False)
        if exc.status_code == 404:
            return render(ctx, "error.html", status=404, title_key="error.not_found.title",
                          message=ctx.t("error.not_found.message"))
        if exc.status_code == 405:
            return redirect(ctx, request.url.path) if request.method == "HEAD" else render(
                ctx, "error.html", status=405, title_key="error.refused.title", message=ctx.t("error.method"))
        return render(ctx, "error.html", status=exc.status_code, title_key="error.refused.title",
                      message=ctx.t("problem.generic"))

    async def unhandled(request: Request, exc: Exception) -> Response:
        log.error("console_unhandled_error", method=request.method, path=request.url.path, error=type(exc).__name__)
        return _error_page(request, 500, "error.internal.title", _internal_message(request))

    app.add_exception_handler(SignInRequired, sign_in_required)
    app.add_exception_handler(SessionExpired, session_expired)
    app.add_exception_handler(CsrfRejected, csrf_rejected)
    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(ServiceUnavailable, unavailable)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unhandled)
    # Starlette sends a 500 from outside every middleware, so the headers go outermost and on the
    # error page as well (the page is rendered by the handler above).
    app.add_middleware(SecurityHeadersMiddleware, headers=SECURITY_HEADERS, cache_control=cache_control)
    return app


def _internal_message(request: Request) -> str:
    return context(request, required=False).t("error.internal.message")
