"""A local SMS/WhatsApp provider stand-in, served over real HTTP from a background thread.

Like a real provider with idempotency keys, it creates one message per ``Idempotency-Key``: a
repeated key is answered with the first answer (``Idempotent-Replayed: true``) and creates
nothing. It counts, per key, the requests it received and the messages it created
(``accepted``): "delivered once" means ``accepted[key] == 1`` for every key.

Behaviours for failure tests (set ``mode`` at any time):
``ok``; ``error`` (answer ``error_status``, creating nothing); ``hang`` (hold the request for
``hang_seconds``, then 503, creating nothing); ``accept_then_hang`` (create the message, then hold
the answer: the client times out although the message exists); ``reject`` (400).
``fail_first[key] = n`` answers the first n requests of a key with ``error_status``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import Counter
from typing import Any, Literal

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

Mode = Literal["ok", "error", "hang", "accept_then_hang", "reject"]


class ProviderSink:
    def __init__(self, *, latency_seconds: float = 0.0) -> None:
        self.mode: Mode = "ok"
        self.error_status = 500
        self.hang_seconds = 2.0
        self.latency_seconds = latency_seconds
        self.fail_first: dict[str, int] = {}
        self.requests: Counter[str] = Counter()
        self.accepted: Counter[str] = Counter()
        self.messages: dict[str, dict[str, Any]] = {}
        self.conflicts: Counter[str] = Counter()  # same key, different body
        self.without_key = 0
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    # HTTP ------------------------------------------------------------------------------
    async def _receive(self, request: Request) -> JSONResponse:
        key = request.headers.get("idempotency-key")
        body = await request.json()
        if self.latency_seconds:
            await asyncio.sleep(self.latency_seconds)
        if not key:
            with self._lock:
                self.without_key += 1
            return JSONResponse({"error": "Idempotency-Key required"}, status_code=400)
        with self._lock:
            self.requests[key] += 1
            scripted = self.fail_first.get(key, 0)
            if scripted:
                self.fail_first[key] = scripted - 1
            mode = self.mode
        if scripted or mode == "error":
            return JSONResponse({"error": "provider failure"}, status_code=self.error_status)
        if mode == "reject":
            return JSONResponse({"error": "invalid recipient"}, status_code=400)
        if mode == "hang":
            await asyncio.sleep(self.hang_seconds)
            return JSONResponse({"error": "too slow"}, status_code=503)
        with self._lock:
            first = self.messages.get(key)
            if first is None:
                self.messages[key] = body
                self.accepted[key] += 1
            elif json.dumps(first, sort_keys=True) != json.dumps(body, sort_keys=True):
                self.conflicts[key] += 1
                return JSONResponse({"error": "key reused with another message"}, status_code=422)
        if mode == "accept_then_hang" and first is None:
            await asyncio.sleep(self.hang_seconds)
        headers = {"Idempotent-Replayed": "true"} if first is not None else {}
        return JSONResponse({"message_id": f"msg-{key}", "status": "queued"}, headers=headers)

    # lifecycle -------------------------------------------------------------------------
    def start(self) -> ProviderSink:
        app = Starlette(routes=[Route("/messages", self._receive, methods=["POST"])])
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self._socket = sock
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=lambda: asyncio.run(self._server_serve(sock)), daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the provider sink did not start")
            time.sleep(0.01)
        return self

    async def _server_serve(self, sock: socket.socket) -> None:
        assert self._server is not None
        await self._server.serve(sockets=[sock])

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()

    @property
    def url(self) -> str:
        assert self._socket is not None, "start the sink first"
        host, port = self._socket.getsockname()[:2]
        return f"http://{host}:{port}/messages"

    # counts ----------------------------------------------------------------------------
    def snapshot(self) -> tuple[Counter[str], Counter[str]]:
        """(requests per key, messages created per key), copied under the lock."""
        with self._lock:
            return Counter(self.requests), Counter(self.accepted)

    def text_for(self, key: str) -> str | None:
        with self._lock:
            message = self.messages.get(key)
        return None if message is None else str(message.get("text"))

    def to_for(self, key: str) -> str | None:
        with self._lock:
            message = self.messages.get(key)
        return None if message is None else str(message.get("to"))
