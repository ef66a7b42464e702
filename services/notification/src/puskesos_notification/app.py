"""App factory of the notification service: the composition root. Nothing connects at import."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import cast

import structlog
from fastapi import FastAPI
from puskesos_shared.messaging import ConsumerPolicy, subscribe_events
from puskesos_shared.resident_export import serve_export
from puskesos_shared.service import ServiceRuntime, connect_nats, create_service_app

from .api import router
from .channels import Channel, LocalFileChannel, TokenBucket, WebhookChannel
from .commands import register_commands
from .contacts import MongoContactBook
from .delivery import Deliverer
from .directory import DirectoryService
from .domain import ContactKeys, DeliveryRecord
from .feeds.commands import register_feed_commands
from .feeds.copier import WorkerConnection
from .feeds.supervisor import Feeds, FeedSettings
from .handlers import CONTACT_EVENTS, ContactProjection, Notifier
from .resident_export import export_handler
from .routing import NOTIFYING_EVENTS, Router
from .settings import NotificationSettings
from .store import MongoNotificationStore

log = structlog.get_logger("puskesos.notification")


def build_channel(settings: NotificationSettings) -> Channel:
    if settings.notify_channel == "webhook":
        assert settings.notify_webhook_url is not None  # checked by the settings
        token = settings.notify_webhook_token.get_secret_value() if settings.notify_webhook_token else None
        return WebhookChannel(
            settings.notify_webhook_url, kind=settings.notify_webhook_kind, token=token,
            timeout_seconds=settings.notify_webhook_timeout_seconds,
            max_attempts=settings.notify_webhook_max_attempts,
            backoff_initial_seconds=settings.notify_webhook_backoff_initial_seconds,
            backoff_max_seconds=settings.notify_webhook_backoff_max_seconds,
            bucket=TokenBucket(settings.notify_rate_per_second, settings.notify_rate_burst),
        )
    return LocalFileChannel(settings.notify_local_path)


def _close_at_shutdown(channel: Channel) -> Callable[[], Awaitable[None]]:
    async def wait_then_close() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await channel.close()

    return wait_then_close


def feed_settings(settings: NotificationSettings) -> FeedSettings:
    return FeedSettings(
        subscribers_file=settings.subscribers_file, secrets_file=settings.subscriber_secrets_file,
        batch=settings.feed_batch, webhook_batch=settings.feed_webhook_batch, ack_wait=settings.feed_ack_wait_seconds,
        webhook_timeout=settings.feed_webhook_timeout_seconds,
        webhook_backoff_initial=settings.feed_webhook_backoff_initial_seconds,
        webhook_backoff_max=settings.feed_webhook_backoff_max_seconds,
        webhook_give_up_after=settings.feed_webhook_give_up_seconds,
        jetstream_timeout=settings.jetstream_timeout_seconds,
        worker=WorkerConnection(tuple(settings.nats_servers), settings.nats_user, settings.nats_password,
                                "puskesos-notification-feeds-worker") if settings.feed_worker_process else None)


async def configure(runtime: ServiceRuntime) -> None:
    settings = cast(NotificationSettings, runtime.settings)
    if settings.notify_hash_secret is None:
        log.warning("hash_secret_not_set", hint="set PUSKESOS_NOTIFY_HASH_SECRET (>= 32 chars) outside development")
    keys = ContactKeys(settings.hash_secret())
    store = MongoNotificationStore(runtime.db)
    book = MongoContactBook(runtime.db)
    await store.create_indexes()
    await book.create_indexes()
    runtime.outbox_collections.append(store.deliveries)

    async def flush(record: DeliveryRecord) -> None:
        await runtime.relay().flush(store.deliveries, str(record.notification.notification_id), record.outbox)

    channel = build_channel(settings)
    deliverer = Deliverer(store, store, channel, keys, runtime.topology, flush)
    notifier = Notifier(Router(book, store, keys), deliverer, settings.notify_contact_wait_attempts)
    projection = ContactProjection(book, keys)
    policy = ConsumerPolicy(
        max_attempts=settings.notify_consumer_max_attempts,
        backoff_initial_seconds=settings.notify_consumer_backoff_seconds,
        ack_wait_seconds=settings.notify_consumer_ack_wait_seconds,
        concurrency=settings.notify_consumer_concurrency,
    )
    subscribe_events(runtime.broker, runtime.topology, runtime.dead_letters, consumer="notification_contacts",
                     events=CONTACT_EVENTS, handler=projection.handle, policy=policy)
    subscribe_events(runtime.broker, runtime.topology, runtime.dead_letters, consumer="notification",
                     events=NOTIFYING_EVENTS, handler=notifier.handle, policy=policy)
    directory = DirectoryService(store, keys)
    register_commands(runtime.broker, runtime.topology, directory)
    serve_export(runtime.broker, runtime.topology, service="notification", handler=export_handler(store, book, keys))
    feeds = Feeds(runtime.broker.config.connection_state.connection, await connect_nats(settings, "notification-feeds"),
                  runtime.db, runtime.topology, runtime.dead_letters, feed_settings(settings), settings.hash_secret())
    await feeds.create_indexes()
    register_feed_commands(runtime.broker, runtime.topology, feeds)
    runtime.state.update(store=store, contacts=book, directory=directory, channel=channel, deliverer=deliverer,
                         keys=keys, feeds=feeds)
    runtime.add_background(_close_at_shutdown(channel))
    runtime.add_background(feeds.run)
    log.info("notification_configured", channel=channel.kind.value)


def create_app(settings: NotificationSettings | None = None) -> FastAPI:
    return create_service_app("notification", settings or NotificationSettings(), configure=configure,
                              routers=[router])
