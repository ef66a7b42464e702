"""Runs the feeds of the declared external subscribers in this replica, and keeps them in step with
the declarations file (``PUSKESOS_SUBSCRIBERS_FILE``, see ``puskesos_shared.subscribers``).

``reconcile`` (at start, every 30 seconds, and at once on the ``subscribers_changed``
command the CLI sends after ``subscribers add / revoke``) starts a feed for each new subscriber, stops
and retires a revoked one (its consumer deleted, its NATS feed purged), and restarts a changed one where
it stopped (its feed purged first when its account now allows less personal data). ``replay`` restarts a
feed from a stream sequence or a time, as a new generation.

Pseudonyms are keyed per subscriber: the key is HMAC-SHA256(the service's hash secret,
``feed-pseudonym:<name>``), so two subscribers cannot join their copies, and a subscriber's pseudonyms
stay stable across restarts and replays.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from nats.aio.client import Client as NatsClient
from nats.js.errors import NotFoundError
from puskesos_shared.contracts.pseudonymous import PiiLevel
from puskesos_shared.contracts.registry import InvalidMessage
from puskesos_shared.messaging.dead_letter import DeadLetters
from puskesos_shared.subscribers import DeliveryKind, Subscriber, SubscriberBook, SubscriberSecrets
from puskesos_shared.tasks import stop_tasks, supervised
from puskesos_shared.topology import Topology
from pymongo.asynchronous.database import AsyncDatabase

from .copier import Copier, WorkerConnection
from .nats_sink import NatsFeedSink
from .transform import FeedTransform
from .webhook import DeliveryLog, WebhookSink
from .worker import FeedStart, FeedStates, FeedWorker, delete_consumer

log = structlog.get_logger("puskesos.notification.feeds")
Document = dict[str, Any]

#: Rank of each level: a change to a lower rank purges what the feed holds.
_RANK = {PiiLevel.NONE: 0, PiiLevel.PSEUDONYMOUS: 1, PiiLevel.FULL: 2}


@dataclass(frozen=True, slots=True)
class FeedSettings:
    subscribers_file: Path | None
    secrets_file: Path | None
    batch: int = 10000
    webhook_batch: int = 50
    ack_wait: float = 60.0
    webhook_timeout: float = 10.0
    webhook_backoff_initial: float = 0.5
    webhook_backoff_max: float = 10.0
    webhook_give_up_after: float = 24 * 3600.0
    jetstream_timeout: float = 5.0
    #: How the NATS feeds' worker process connects (``copier``); ``None``: everything in this process.
    worker: WorkerConnection | None = None


class Feeds:
    """Every feed of this replica. ``nc`` is the service's connection (JetStream API, publishing,
    acknowledgements); ``reader`` a connection of the feeds' own that receives the events they relay
    (thousands at a time during a replay), closed with them."""

    def __init__(self, nc: NatsClient, reader: NatsClient, db: AsyncDatabase[Document], topology: Topology,
                 dead_letters: DeadLetters, settings: FeedSettings, hash_secret: bytes) -> None:
        self.nc, self.reader, self.js = nc, reader, nc.jetstream(timeout=settings.jetstream_timeout)
        self.topology, self.dead_letters, self.settings = topology, dead_letters, settings
        self.hash_secret = hash_secret
        self.book = SubscriberBook(settings.subscribers_file) if settings.subscribers_file else None
        self.secrets = SubscriberSecrets(settings.secrets_file) if settings.secrets_file else None
        self.states = FeedStates(db["feeds"])
        self.deliveries = DeliveryLog(db["feed_deliveries"])
        self.webhooks = WebhookSink(topology, self.deliveries, dead_letters, self._secret_of,
                                    timeout=settings.webhook_timeout, backoff_initial=settings.webhook_backoff_initial,
                                    backoff_max=settings.webhook_backoff_max,
                                    give_up_after=settings.webhook_give_up_after)
        self.nats = NatsFeedSink(nc, topology)
        self.copier = Copier(settings.worker) if settings.worker else None
        self.running: dict[str, tuple[Subscriber, asyncio.Task[None]]] = {}
        self._lock = asyncio.Lock()

    def _secret_of(self, name: str) -> bytes | None:
        return self.secrets.webhook_secret(name) if self.secrets else None

    def declared(self) -> list[Subscriber]:
        return self.book.load() if self.book else []

    def subscriber(self, name: str) -> Subscriber | None:
        return next((s for s in self.declared() if s.name == name), None)

    async def create_indexes(self) -> None:
        await self.deliveries.create_indexes()

    def _start(self, subscriber: Subscriber) -> None:
        webhook = subscriber.delivery is DeliveryKind.WEBHOOK
        # a NATS feed reads its next batch while it publishes one; a webhook's batch may be retried for hours
        worker = FeedWorker(self.nc, self.reader, self.topology, subscriber,
                            transform=FeedTransform.of(subscriber.name, subscriber.pii, self.hash_secret),
                            copier=None if webhook else self.copier, sink=self.webhooks if webhook else self.nats,
                            states=self.states,
                            dead_letters=self.dead_letters,
                            batch=self.settings.webhook_batch if webhook else self.settings.batch,
                            depth=1 if webhook else 3, ack_wait=self.settings.ack_wait)
        if not webhook and self.copier is not None:
            self.copier.warm()
        task = asyncio.create_task(supervised(worker.run, name=f"feed {subscriber.name}"))
        self.running[subscriber.name] = (subscriber, task)
        if webhook:  # ``puskesos dlq redrive`` of its dead letters: POSTed again, same id
            transform = worker.transform

            async def deliver_again(body: bytes, headers: Mapping[str, str]) -> None:
                current = self.subscriber(subscriber.name)
                if current is None or current.webhook_url != subscriber.webhook_url:
                    raise InvalidMessage(f"subscriber {subscriber.name} was revoked or changed its webhook since")
                await self.webhooks.redrive(current, body, headers, transform)

            self.dead_letters.redrive.register(subscriber.relay_consumer, deliver_again)

    async def _stop(self, name: str) -> None:
        entry = self.running.pop(name, None)
        if entry is not None:
            self.dead_letters.redrive.unregister(entry[0].relay_consumer)
            await stop_tasks([entry[1]])

    async def _purge_feed(self, subscriber: Subscriber) -> None:
        if subscriber.delivery is DeliveryKind.NATS:
            with suppress(NotFoundError):
                await self.js.purge_stream(self.topology.feeds_stream, subject=subscriber.feed_filter(self.topology))

    async def reconcile(self) -> dict[str, Any]:
        """Brings the running feeds in line with the declarations; returns what runs."""
        async with self._lock:
            try:
                declared = {s.name: s for s in self.declared()}
            except (OSError, ValueError) as exc:  # a half-written or broken file: keep what runs
                log.error("subscribers_file_unreadable", error=type(exc).__name__)
                return {"running": sorted(self.running), "error": "the subscribers file could not be read"}
            for name, (old, _) in list(self.running.items()):
                new = declared.get(name)
                if new == old:
                    continue
                await self._stop(name)
                if new is None or new.delivery != old.delivery:
                    await self._retire(old)
                else:
                    await self._changed(old, new)
            for name, subscriber in declared.items():
                if name not in self.running:
                    self._start(subscriber)
                    log.info("feed_running", subscriber=name, delivery=subscriber.delivery.value,
                             pii=subscriber.pii.value)
            return {"running": sorted(self.running)}

    async def _retire(self, subscriber: Subscriber) -> None:
        await delete_consumer(self.js, self.topology, subscriber.relay_consumer)
        await self._purge_feed(subscriber)
        await self.states.forget(subscriber.name)
        log.info("feed_retired", subscriber=subscriber.name)

    async def _changed(self, old: Subscriber, new: Subscriber) -> None:
        """Events or account changed: the feed goes on after what it relayed, with the new rules."""
        state = await self.states.get(old.name)
        last = state.get("last_seq") if state else None
        await delete_consumer(self.js, self.topology, old.relay_consumer)
        if _RANK[new.pii] < _RANK[old.pii]:
            await self._purge_feed(old)
        start = FeedStart(from_seq=int(last) + 1) if last else FeedStart.from_document(state["start"]) if state \
            else FeedStart()
        await self.states.restart(old.name, start)
        log.info("feed_changed", subscriber=old.name, start=start.describe())

    async def replay(self, name: str, start: FeedStart) -> dict[str, Any]:
        """Restarts one feed from ``start`` as a new generation (the subscriber receives the events again)."""
        async with self._lock:
            subscriber = self.subscriber(name)
            if subscriber is None:
                raise LookupError(name)
            await self._stop(name)
            generation = await self.states.restart(name, start)
            await delete_consumer(self.js, self.topology, subscriber.relay_consumer)
            self._start(subscriber)
            log.info("feed_replay", subscriber=name, start=start.describe(), generation=generation)
            return {"subscriber": name, "generation": generation, "start": start.describe()}

    async def status(self) -> list[dict[str, Any]]:
        out = []
        for subscriber in self.declared():
            state = await self.states.get(subscriber.name) or {}
            pending: int | None = None
            with suppress(NotFoundError):
                info = await self.js.consumer_info(self.topology.events_stream, subscriber.relay_consumer)
                pending = int(info.num_pending or 0) + int(info.num_ack_pending or 0)
            row: dict[str, Any] = {
                "subscriber": subscriber.name, "delivery": subscriber.delivery.value, "pii": subscriber.pii.value,
                "events": list(subscriber.events), "generation": state.get("generation"),
                "start": FeedStart.from_document(state["start"]).describe() if "start" in state else None,
                "relayed": state.get("relayed", 0), "dead_lettered": state.get("dead_lettered", 0),
                "last_seq": state.get("last_seq"), "pending": pending,
            }
            if subscriber.delivery is DeliveryKind.WEBHOOK:
                row["deliveries"] = await self.deliveries.counts(subscriber.name)
            out.append(row)
        return out

    async def run(self) -> None:
        """Reconciles at start and then every 30 s (the ``subscribers_changed`` command does it at once)."""
        try:
            while True:
                await self.reconcile()
                await asyncio.sleep(30)
        finally:
            await self.close()

    async def close(self) -> None:
        """Stops every feed, then the worker process, the webhooks' HTTP client and the reading connection."""
        await stop_tasks([task for _, task in self.running.values()])
        self.running.clear()
        if self.copier is not None:
            self.copier.close()
        await self.webhooks.close()
        with suppress(Exception):
            await self.reader.drain()


def parse_since(value: str) -> dt.datetime:
    """``2026-11-01`` (midnight WIB, the platform's day) or an ISO timestamp with a zone."""
    try:
        if len(value) == 10:
            day = dt.date.fromisoformat(value)
            return dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone(dt.timedelta(hours=7)))
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("since: give a date (2026-11-01) or an ISO time with a zone") from None
    if parsed.tzinfo is None:
        raise ValueError("since: give the time zone (for example 2026-11-01T08:00:00+07:00)")
    return parsed
