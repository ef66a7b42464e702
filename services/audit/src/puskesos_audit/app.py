"""App factory of the audit service: the composition root. Nothing connects at import."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from puskesos_shared.commands import subscribe_command
from puskesos_shared.contracts.envelope import utc_now
from puskesos_shared.resident_export import serve_export
from puskesos_shared.service import ServiceRuntime, create_service_app
from pymongo import MongoClient

from .api import router
from .appender import Appender
from .commands import ReplayCommand, replay_command_handler
from .indexer import Indexer, IndexFollower
from .reader import LogReader
from .resident_export import export_handler
from .settings import AuditSettings
from .store import AuditStore


def _close_at_shutdown(client: MongoClient[Any]) -> Callable[[], Awaitable[None]]:
    async def wait_then_close() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.to_thread(client.close)

    return wait_then_close


def _configure(settings: AuditSettings) -> Callable[[ServiceRuntime], Awaitable[None]]:
    index_key, checkpoint_key = settings.index_key(), settings.checkpoint_key()  # fail fast without keys

    async def configure(runtime: ServiceRuntime) -> None:
        store = AuditStore(runtime.db)
        await store.ensure()
        # one synchronous client for the whole-log reads of the API and of replays (not one per request)
        reader, client = await asyncio.to_thread(LogReader.connect, settings.mongo_url, settings.database_name)
        runtime.add_background(_close_at_shutdown(client))
        runtime.state.update(store=store, index_key=index_key, checkpoint_key=checkpoint_key,
                             settings=settings, reader=reader)
        subscribe_command(runtime.broker, runtime.topology, service="audit", name="replay", request=ReplayCommand,
                          handler=replay_command_handler(runtime))
        serve_export(runtime.broker, runtime.topology, service="audit", handler=export_handler(store, index_key))
        if settings.audit_appender:
            js = runtime.broker.config.connection_state.stream
            appender = Appender(
                js=js, store=store, topology=runtime.topology,
                checkpoint_key=checkpoint_key, clock=utc_now, max_records=settings.audit_chunk_max_records,
                max_bytes=settings.audit_chunk_max_bytes, fetch_timeout=settings.audit_fetch_timeout_seconds,
                checkpoint_every_records=settings.audit_checkpoint_every_records,
                checkpoint_every_seconds=settings.audit_checkpoint_every_seconds,
            )
            runtime.state["appender"] = appender
            runtime.add_background(appender.run)
            follower = IndexFollower(store, Indexer(store, index_key), wake=appender.committed)
            runtime.state["index_follower"] = follower
            runtime.add_background(follower.run)

    return configure


def create_app(settings: AuditSettings | None = None) -> FastAPI:
    settings = settings or AuditSettings()
    return create_service_app("audit", settings, configure=_configure(settings), routers=[router],
                              title="Puskesos audit service (read-only query API for auditors)")
