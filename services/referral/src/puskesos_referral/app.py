"""App factory of the referral service: the composition root. Nothing connects at import.

``create_app(settings, clock=...)`` takes the clock every decision reads (SLA dates, escalation,
event times); tests pass a controllable one to make a case overdue without waiting for days.
"""

from __future__ import annotations

from functools import partial

import structlog
from fastapi import FastAPI
from puskesos_shared.messaging import ConsumerPolicy, PublishError, subscribe_events
from puskesos_shared.metrics import EVENTS_PUBLISHED
from puskesos_shared.resident_export import serve_export
from puskesos_shared.service import ServiceRuntime, create_service_app

from .api import router
from .commands import register_commands
from .domain import sla
from .escalation import run_escalation_loop, run_pending_loop
from .handlers import CONSUMED, CONSUMER, intake_events_handler
from .queries import CaseQueries
from .resident_export import export_handler
from .service import Clock, ReferralService, utc_now
from .settings import ReferralSettings
from .store import Entries, MongoCaseStore

log = structlog.get_logger("puskesos.referral")


async def configure(runtime: ServiceRuntime, clock: Clock = utc_now) -> None:
    """Indexes, packaged rule sets, the intake consumer, the commands and the escalation loop."""
    settings = runtime.settings
    assert isinstance(settings, ReferralSettings)
    store = MongoCaseStore(runtime.db, runtime.topology)
    await store.create_indexes()

    async def flush(change: str, entries: Entries) -> bool:
        """Publishes a change's events in order (Nats-Msg-Id = event id); False if the broker did not confirm."""
        try:
            for entry in entries:
                await runtime.publisher.publish_raw(entry["subject"], entry["body"].encode(), entry["headers"])
                EVENTS_PUBLISHED.labels(event_type=entry["event_type"]).inc()
        except PublishError as exc:  # the change stays unpublished; redelivery or finish_pending retries
            log.warning("publish_deferred", change=change, error=str(exc))
            return False
        return True

    service = ReferralService(store, flush, clock)
    queries = CaseQueries(store, clock)
    await service.rules.seed()
    runtime.state.update(service=service, queries=queries, store=store, escalation={})

    subscribe_events(runtime.broker, runtime.topology, runtime.dead_letters, consumer=CONSUMER, events=CONSUMED,
                     handler=intake_events_handler(service),
                     policy=ConsumerPolicy(ack_wait_seconds=settings.consumer_ack_wait_seconds))
    register_commands(runtime, service, queries, settings.auth_secret)
    serve_export(runtime.broker, runtime.topology, service="referral", handler=export_handler(store, clock))
    runtime.add_background(partial(run_pending_loop, service, settings.pending_sweep_seconds))
    if settings.escalation_enabled:
        runtime.add_background(partial(run_escalation_loop, service, settings.escalation_interval_seconds,
                                       settings.escalation_batch, runtime.state["escalation"]))
    year = clock().year
    missing = [y for y in (year, year + 1) if not sla.has_holiday_data(y)]
    if missing:
        log.warning("holiday_data_missing", years=missing,
                    detail="SLA deadlines in these years count Monday-Friday only; update lokal-id")


def create_app(settings: ReferralSettings | None = None, *, clock: Clock | None = None) -> FastAPI:
    chosen = clock or utc_now
    return create_service_app("referral", settings or ReferralSettings(), configure=partial(configure, clock=chosen),
                              routers=[router])
