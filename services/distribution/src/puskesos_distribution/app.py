"""App factory of the distribution service: the composition root. Nothing connects at import."""

from __future__ import annotations

import logging
import uuid

import structlog
from fastapi import FastAPI
from puskesos_shared.messaging import subscribe_events
from puskesos_shared.resident_export import serve_export
from puskesos_shared.service import ServiceRuntime, create_service_app

from . import dbmetrics
from .allocation import Allocator
from .api import router
from .commands import register_commands
from .context import Context, EventSink, Progress
from .disbursement import Disburser
from .gateway import HttpGateway, PaymentGateway
from .imports import Imports
from .presence import Presence
from .projection import PROJECTED_EVENTS, PROJECTION_CONSUMER, Projection
from .reservations import Reservations
from .resident_export import export_handler
from .rounds import RoundOperations
from .settings import DistributionSettings
from .store import ROUNDS, MongoStore
from .workqueue import ALLOCATE, DISBURSE, WorkPublisher, ensure_work_queue, run_worker

log = structlog.get_logger("puskesos.distribution")


def build_gateway(settings: DistributionSettings) -> PaymentGateway | None:
    if settings.gateway_url is None:
        return None
    return HttpGateway(settings.gateway_url, name=settings.gateway_name, timeout=settings.gateway_timeout_seconds,
                       batch_size=settings.gateway_batch_size,
                       max_connections=max(settings.disburse_in_flight, 10))


def make_configure(settings: DistributionSettings, gateway: PaymentGateway | None = None):  # type: ignore[no-untyped-def]
    """``configure`` for the kit's lifespan; ``gateway`` replaces the HTTP one (tests pass a fake)."""

    async def configure(runtime: ServiceRuntime) -> None:
        js = runtime.broker.config.connection_state.stream
        policies = {ALLOCATE: settings.work_policy(settings.allocate_in_flight),
                    DISBURSE: settings.work_policy(settings.disburse_in_flight)}
        await ensure_work_queue(js, runtime.topology, policies)
        store = MongoStore(runtime.db, linger=settings.batch_linger_seconds)
        await store.ensure_indexes()
        progress = Progress(store, uuid.uuid4().hex[:12])
        gateway_ = gateway if gateway is not None else build_gateway(settings)
        presence = Presence(runtime.broker, runtime.topology, progress.instance,
                            window_seconds=settings.presence_window_seconds)
        ctx = Context(settings=settings, topology=runtime.topology, js=js, store=store,
                      events=EventSink(js, runtime.topology), work=WorkPublisher(js, runtime.topology),
                      progress=progress, projection=Projection(store), reservations=Reservations(store),
                      gateway=gateway_, presence=presence)
        runtime.outbox_collections.append(runtime.db[ROUNDS])
        rounds, imports = RoundOperations(ctx, runtime.relay()), Imports(ctx)
        runtime.state.update(context=ctx, rounds=rounds, imports=imports)
        register_commands(runtime.broker, runtime.topology, settings, rounds, imports)
        presence.serve()
        serve_export(runtime.broker, runtime.topology, service="distribution", handler=export_handler(store))
        subscribe_events(runtime.broker, runtime.topology, runtime.dead_letters, consumer=PROJECTION_CONSUMER,
                         events=PROJECTED_EVENTS, handler=ctx.projection.handle)

        allocator = Allocator(ctx)

        async def allocate() -> None:
            await run_worker(js, runtime.topology, ALLOCATE, handler=allocator.handle,
                             dead_letters=runtime.dead_letters, policy=policies[ALLOCATE])

        runtime.add_background(allocate)
        runtime.add_background(progress.run)
        if gateway_ is not None:
            disburser = Disburser(ctx, gateway_)
            paying = gateway_

            async def disburse() -> None:
                try:
                    await run_worker(js, runtime.topology, DISBURSE, handler=disburser.handle,
                                     dead_letters=runtime.dead_letters, policy=policies[DISBURSE])
                finally:
                    await paying.close()

            runtime.add_background(disburse)
        else:
            log.warning("disbursement_disabled", reason="no PUSKESOS_GATEWAY_URL; allocations queue their payouts")

    return configure


def create_app(settings: DistributionSettings | None = None, *, gateway: PaymentGateway | None = None) -> FastAPI:
    settings = settings or DistributionSettings()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per payment is noise, not information
    dbmetrics.register()
    return create_service_app("distribution", settings, configure=make_configure(settings, gateway),
                              routers=[router])
