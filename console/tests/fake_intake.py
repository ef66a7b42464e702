"""A stand-in for the intake API in the console's unit tests: the shapes the console reads, problem details
as the services send them. The browser tests run against the real services."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import FastAPI, Request
from puskesos_shared.problems import problem_response
from starlette.responses import JSONResponse, Response

NOW = "2026-12-05T03:00:00+00:00"


def fake_intake(calls: list[dict[str, Any]]) -> FastAPI:
    app = FastAPI()
    households: dict[str, dict[str, Any]] = {}

    def auth(request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer ") or header.endswith("bad"):
            return problem_response("invalid_token", "invalid token", status=401)
        return None

    @app.get("/complaints")
    async def complaints(request: Request) -> Response:
        calls.append({"path": "/complaints", "query": dict(request.query_params)})
        return auth(request) or JSONResponse({"items": [], "page": 1, "page_size": 5, "total": 0})

    @app.post("/households/search")
    async def search(request: Request) -> Response:
        body = await request.json()
        calls.append({"path": "/households/search", "body": body})
        if refused := auth(request):
            return refused
        kk = body.get("kk")
        if kk == "3573010502200099":
            return problem_response("outside_scope", "the village is outside this officer's scope", status=403)
        if kk not in households:
            return problem_response("household_not_found", "no household with this KK", status=404)
        return JSONResponse({"household_id": "x", "kk_number": kk, "revision": 1, "household": households[kk],
                             "warnings": [], "updated_at": NOW})

    @app.post("/households")
    async def register(request: Request) -> Response:
        body = await request.json()
        calls.append({"path": "/households", "body": body})
        if refused := auth(request):
            return refused
        if body["members"] and body["members"][0]["nik"].startswith("9"):
            return problem_response("invalid_request", "the request does not match the endpoint's schema",
                                    status=422, errors=[{"loc": ["body", "members", 0, "nik"],
                                                         "msg": "Value error, invalid NIK", "type": "value_error"}])
        households[body["kk_number"]] = body
        return JSONResponse({"household_id": "x", "kk_number": body["kk_number"], "revision": 1, "household": body,
                             "warnings": [], "updated_at": NOW, "outcome": "registered", "changed_fields": []},
                            status_code=201)

    @app.post("/complaints")
    async def file(request: Request) -> Response:
        body = await request.json()
        calls.append({"path": "/complaints", "body": body, "key": request.headers.get("idempotency-key")})
        if refused := auth(request):
            return refused
        complaint = {"case_number": "3573011001/2026/00001", "status": "filed", "filed_at": NOW, **body}
        return JSONResponse({"created": True, "complaint": complaint}, status_code=201)

    @app.post("/residents/complaints")
    async def resident(request: Request) -> Response:
        body = await request.json()
        calls.append({"path": "/residents/complaints", "body": body})
        return auth(request) or JSONResponse({"items": [
            {"case_number": "3573011001/2026/00001", "status": "filed", "category": "aid_not_received",
             "filed_at": (dt.datetime.now(dt.UTC) - dt.timedelta(days=3)).isoformat()}]})

    return app
