"""The composition root every service shares: connect, provision, health, metrics, stop.

A service supplies its settings, a ``configure`` coroutine (indexes, subscribers, the
outbox collections) and its HTTP routers; ``create_service_app`` returns a FastAPI app
whose lifespan owns every client. Nothing connects at import time.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import nats
import structlog
import uvicorn
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from faststream.nats import NatsBroker
from faststream.security import SASLPlaintext
from nats.aio.client import Client as NatsClient
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from .http import install_http_defaults
from .logging import configure_logging
from .messaging.dead_letter import DeadLetters
from .messaging.publisher import EventPublisher
from .messaging.redrive import RedriveRegistry
from .messaging.redrive_service import serve_redrive
from .messaging.streams import ensure_streams
from .mongo import Document, Mongo
from .outbox import OutboxRelay
from .settings import CONNECTION_OPTIONS, ServiceSettings
from .tasks import stop_tasks, supervised
from .topology import Topology

log = structlog.get_logger("puskesos.service")


@dataclass
class ServiceRuntime:
    """Everything a service's handlers need, built at start-up."""

    name: str
    settings: ServiceSettings
    topology: Topology
    broker: NatsBroker
    publisher: EventPublisher
    dead_letters: DeadLetters
    mongo: Mongo
    outbox_collections: list[AsyncCollection[Document]] = field(default_factory=list)
    outbox: OutboxRelay | None = None
    background: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)

    def relay(self) -> OutboxRelay:
        assert self.outbox is not None, "the outbox relay exists once the service has started"
        return self.outbox

    def add_background(self, loop: Callable[[], Awaitable[None]]) -> None:
        """Runs ``loop()`` as a task once the broker has started; it is cancelled at shutdown."""
        self.background.append(loop)

    @property
    def redrive(self) -> RedriveRegistry:
        """The consumers whose dead letters this process re-drives (the ``redrive`` command every service
        serves): each ``subscribe_events`` consumer, plus ``runtime.redrive.register(consumer, handler)``
        with ``async def handler(body: bytes, headers: Mapping[str, str]) -> None`` for others."""
        return self.dead_letters.redrive

    @property
    def db(self) -> AsyncDatabase[Document]:
        return self.mongo.db


Configure = Callable[[ServiceRuntime], Awaitable[None]]


async def connect_nats(settings: ServiceSettings, name: str) -> NatsClient:
    """A second NATS connection of a service process, with the broker's options: for bulk reading, whose
    deliveries would otherwise queue in front of the replies the broker's connection waits for."""
    return await nats.connect(settings.nats_servers, name=f"puskesos-{name}", user=settings.nats_user,
                              password=settings.nats_password, **CONNECTION_OPTIONS)


def build_broker(settings: ServiceSettings, name: str) -> NatsBroker:
    security = (
        SASLPlaintext(username=settings.nats_user, password=settings.nats_password or "")
        if settings.nats_user
        else None
    )
    return NatsBroker(
        settings.nats_servers,
        name=f"puskesos-{name}",
        security=security,
        # FastStream's default broker logger writes plain text to stdout past the masking
        # pipeline; a child of "faststream" goes through it (WARNING and up, see logging.py).
        logger=logging.getLogger("faststream.broker"),
        **CONNECTION_OPTIONS,
        graceful_timeout=15.0,
        # every JetStream API call and publish ack (a consumer looked up or created at start-up, an event
        # published): in a cluster it waits for the group's quorum, more than nats-py's 5 s on a loaded machine
        js_options={"timeout": settings.jetstream_timeout_seconds},
    )


def create_service_app(
    name: str,
    settings: ServiceSettings,
    *,
    configure: Configure | None = None,
    routers: Sequence[APIRouter] = (),
    title: str | None = None,
) -> FastAPI:
    configure_logging(settings.log_level, settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        topology = settings.topology()
        broker = build_broker(settings, name)
        mongo = Mongo(settings.mongo_url, settings.database_name, app_name=f"puskesos-{name}")
        publisher = EventPublisher(broker, topology)
        runtime = ServiceRuntime(
            name=name, settings=settings, topology=topology, broker=broker, publisher=publisher,
            dead_letters=DeadLetters(publisher, name), mongo=mongo,
        )
        runtime.outbox = OutboxRelay(publisher, runtime.outbox_collections)
        app.state.runtime = runtime
        tasks: list[asyncio.Task[None]] = []
        try:
            await mongo.ping()
            try:
                await asyncio.wait_for(broker.connect(), timeout=settings.connect_timeout_seconds)
            except TimeoutError:
                raise RuntimeError(
                    f"NATS at {settings.nats_url} did not answer within {settings.connect_timeout_seconds:.0f}s"
                ) from None
            await ensure_streams(broker.config.connection_state.stream, topology)
            if configure is not None:
                await configure(runtime)
            serve_redrive(runtime)  # {ns}.commands.{name}.redrive.v1: dead letters back to their consumer
            await broker.start()
            if runtime.outbox_collections:
                await runtime.outbox.ensure_indexes()
                await runtime.outbox.republish_pending()
                tasks.append(asyncio.create_task(runtime.outbox.run_sweeper()))
            tasks.extend(asyncio.create_task(supervised(loop, name=getattr(loop, "__qualname__", repr(loop))))
                         for loop in runtime.background)
            log.info("service_started", service=name, database=settings.database_name,
                     namespace=topology.namespace)
            yield
        finally:
            await stop_tasks(tasks)
            with suppress(Exception):
                await broker.stop()
            await mongo.close()
            log.info("service_stopped", service=name)

    app = FastAPI(title=title or f"Puskesos {name} service", lifespan=lifespan)
    secret = settings.auth_secret.get_secret_value() if settings.auth_secret else None
    install_http_defaults(app, max_body_bytes=settings.max_body_bytes, rate_limits=settings.rate_limits(),
                          auth_secret=secret)

    @app.get("/health/live", tags=["health"])
    async def live() -> dict[str, str]:
        return {"status": "ok", "service": name}

    @app.get("/health/ready", tags=["health"])
    async def ready(request: Request) -> JSONResponse:
        runtime: ServiceRuntime | None = getattr(request.app.state, "runtime", None)
        checks = {"nats": False, "mongo": False}
        if runtime is not None:
            conn = runtime.broker.config.connection_state
            checks["nats"] = bool(conn and conn.connection and conn.connection.is_connected)
            with suppress(Exception):
                checks["mongo"] = await asyncio.wait_for(runtime.mongo.ping(), timeout=2)
        ok = all(checks.values())
        return JSONResponse({"status": "ok" if ok else "unavailable", "service": name, "checks": checks},
                            status_code=200 if ok else 503)

    @app.get("/metrics", tags=["health"])
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    for router in routers:
        app.include_router(router)
    return app


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


class IdleFriendlyServer(uvicorn.Server):
    """uvicorn's main loop wakes ten times a second (to refresh the Date header and look for a stop
    request); this one wakes once a second, which keeps an idle service near zero CPU. A stop
    request is noticed within a second; the Date header still changes every second."""

    async def main_loop(self) -> None:
        ticks = 0
        should_exit = await self.on_tick(ticks)
        while not should_exit:
            ticks = (ticks + 10) % 864000  # uvicorn counts tenths of a second
            await asyncio.sleep(1.0)
            should_exit = await self.on_tick(ticks)


def run_service(app_factory: Callable[[ServiceSettings], FastAPI], settings: ServiceSettings) -> None:
    """Runs a service in the foreground until SIGINT/SIGTERM (graceful stop).

    uvicorn re-raises the stop signal after its graceful shutdown, which would end the process
    "killed by SIGTERM" (status -15/143); a graceful stop is a success, so SIGTERM's own
    handler (restored by uvicorn before it re-raises) exits with status 0 instead.
    """
    app = app_factory(settings)
    signal.signal(signal.SIGTERM, _exit_cleanly)
    config = uvicorn.Config(app, host=settings.http_host, port=settings.port, log_config=None, access_log=False,
                            timeout_graceful_shutdown=20)
    server = IdleFriendlyServer(config)
    with suppress(KeyboardInterrupt):
        server.run()
    if not server.started:  # as uvicorn.run: a service that could not start fails
        raise SystemExit(3)
