"""App factory of the intake service: the composition root. Nothing connects at import."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from fastapi import FastAPI
from nats.js import JetStreamContext
from puskesos_shared.commands import CommandReply, send_command
from puskesos_shared.messaging import subscribe_events
from puskesos_shared.resident_export import ExportResident
from puskesos_shared.service import ServiceRuntime, create_service_app

from .api import ROUTERS, Intake
from .commands import register_commands
from .context import Context, log, utc_now
from .domain.progress import CASE_EVENTS
from .exports import ResidentExports
from .faults import Faults
from .filing import ComplaintDesk
from .handlers import CONSUMER, CaseProgress
from .niks import NikOwnership
from .recovery import run_recovery
from .registry import HouseholdRegistry
from .registry_import import RegistryImport
from .resident_data import ResidentData
from .reveals import HouseholdLookup
from .settings import IntakeSettings
from .status import ComplaintViews
from .store import IntakeStore
from .transfers import Transfers


def jetstream_of(runtime: ServiceRuntime, in_flight: int) -> Callable[[], JetStreamContext]:
    """One JetStream context for async publishes, made on first use (the broker is connected by then)."""
    made: list[JetStreamContext] = []

    def get() -> JetStreamContext:
        if not made:
            made.append(runtime.broker.config.connection_state.connection.jetstream(
                publish_async_max_pending=in_flight))
        return made[0]

    return get


async def configure(runtime: ServiceRuntime) -> None:
    """Indexes, the NIK key check, consumers, commands, outbox collections and the recovery loop."""
    settings = runtime.settings
    assert isinstance(settings, IntakeSettings)
    store = IntakeStore(runtime.db)
    await store.create_indexes()
    secret = settings.nik_hash_key()
    await store.check_nik_key(secret)
    if not settings.nik_hash_key_configured:
        log.warning("nik_hash_key_derived", hint="set PUSKESOS_INTAKE_NIK_HASH_KEY in production")
    grace = dt.timedelta(seconds=settings.intake_claim_grace_seconds)
    niks = NikOwnership(owners=store.nik_owners, households=store.households, transfers=store.transfers,
                        secret=secret, grace=grace, clock=utc_now)
    ctx = Context(store=store, niks=niks, topology=runtime.topology, relay=runtime.relay,
                  faults=Faults(settings.intake_fault), clock=utc_now, grace=grace,
                  jetstream=jetstream_of(runtime, settings.intake_import_publish_in_flight))
    registry = HouseholdRegistry(ctx)
    views = ComplaintViews(ctx)
    desk = ComplaintDesk(ctx, views)

    async def request(subject: str, body: ExportResident, timeout: float) -> CommandReply:
        return await send_command(runtime.broker.config.connection_state.connection, subject, body, timeout=timeout)

    exports = ResidentExports(ctx, ResidentData(ctx, views), request, settings.intake_export_timeout_seconds)
    svc = Intake(registry=registry, transfers=Transfers(ctx, registry), desk=desk, views=views, exports=exports,
                 imports=RegistryImport(ctx, registry), lookup=HouseholdLookup(ctx, registry))
    runtime.state["intake"] = svc
    subscribe_events(runtime.broker, runtime.topology, runtime.dead_letters, consumer=CONSUMER,
                     events=CASE_EVENTS, handler=CaseProgress(views, desk).handle)
    register_commands(runtime.broker, runtime.topology, svc)
    interval = settings.intake_recovery_interval_seconds
    runtime.outbox_collections.extend([store.households.collection, store.complaints])
    runtime.add_background(lambda: run_recovery(svc, interval))


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    return create_service_app("intake", settings or IntakeSettings(), configure=configure, routers=ROUTERS,
                              title="Puskesos intake service (households and complaints)")
