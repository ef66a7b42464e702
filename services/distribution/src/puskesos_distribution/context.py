"""What the handlers and operations share: storage, publishing, the gateway, live counters."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import structlog
from nats.js import JetStreamContext
from puskesos_shared.contracts.distribution import AidRoundOpenedData
from puskesos_shared.contracts.envelope import Event, utc_now
from puskesos_shared.contracts.registry import subject_for
from puskesos_shared.messaging import encode_event, event_headers
from puskesos_shared.metrics import EVENTS_PUBLISHED
from puskesos_shared.outbox import outbox_entries
from puskesos_shared.topology import Topology

from .domain import RoundStatus, RoundView
from .gateway import PaymentGateway
from .presence import Presence
from .projection import Projection
from .reservations import Reservations
from .settings import DistributionSettings
from .store import PROGRESS, ROUNDS, MongoStore
from .workqueue import WorkPublisher

log = structlog.get_logger("puskesos.distribution")


class EventSink:
    """Publishes events to the events stream with ``Nats-Msg-Id`` = the event id.

    A decision's event is rebuilt from its document, so a retried work item republishes exactly
    the same bytes; the broker's duplicate window keeps one copy.
    """

    def __init__(self, js: JetStreamContext, topology: Topology, *, timeout: float = 10.0) -> None:
        self._js, self._topology, self._timeout = js, topology, timeout
        self._gate = asyncio.Semaphore(512)

    def entry(self, event: Event) -> dict[str, Any]:
        return outbox_entries([event], self._topology)[0]

    async def publish(self, event: Event) -> None:
        async with self._gate:
            await self._js.publish(subject_for(event, self._topology), encode_event(event),
                                   headers=event_headers(event), stream=self._topology.events_stream,
                                   timeout=self._timeout)
        EVENTS_PUBLISHED.labels(event_type=event.event_type).inc()


VILLAGE_SEPARATOR = "|"
#: The per-village counts a round's status shows (rejections of every reason are summed).
VILLAGE_COUNTS = ("allocated", "rejected", "disbursed", "failed")


def split_counts(counts: dict[str, int]) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """A round's summed counters: (the round's own, one row per village with ``VILLAGE_COUNTS``)."""
    own: dict[str, int] = {}
    villages: dict[str, dict[str, Any]] = {}
    for key, n in counts.items():
        name, _, digits = key.partition(VILLAGE_SEPARATOR)
        if not digits:
            own[key] = n
            continue
        code = f"{digits[:2]}.{digits[2:4]}.{digits[4:6]}.{digits[6:]}"
        row = villages.setdefault(code, {"village_code": code, **dict.fromkeys(VILLAGE_COUNTS, 0)})
        column = "rejected" if name.startswith("rejected_") else name
        if column in VILLAGE_COUNTS:
            row[column] += n
    return own, [villages[code] for code in sorted(villages)]


class Progress:
    """Live counters of this process, written to its own ``progress`` document once a second.

    One writer per document, so a plain ``$set`` is safe. The counts are for watching a round
    (a kill loses at most the last second of a replica's counts); the totals at close come from
    the records themselves.
    """

    def __init__(self, store: MongoStore, instance: str) -> None:
        self._store, self.instance = store, instance
        self._counts: dict[str, Counter[str]] = defaultdict(Counter)
        self._dirty: set[str] = set()

    def add(self, round_id: uuid.UUID | str, key: str, n: int = 1, *, village: str | None = None) -> None:
        """Counts ``key`` for the round and, with ``village``, for that village too (``key|3573011001``: a
        village code without its dots, as a field name may not hold one); ``split_counts`` separates them."""
        counts = self._counts[str(round_id)]
        counts[key] += n
        if village:
            counts[f"{key}{VILLAGE_SEPARATOR}{village.replace('.', '')}"] += n
        self._dirty.add(str(round_id))

    async def flush(self) -> None:
        dirty, self._dirty = self._dirty, set()
        for round_id in dirty:
            counts = dict(self._counts[round_id])
            try:
                await self._store.db[PROGRESS].update_one(
                    {"_id": f"{round_id}:{self.instance}"},
                    {"$set": {"round_id": round_id, "instance": self.instance, "counts": counts,
                              "updated_at": utc_now()}}, upsert=True)
            except Exception:
                self._dirty.add(round_id)
                raise

    async def run(self, every: float = 1.0) -> None:
        try:
            while True:
                await asyncio.sleep(every)
                with suppress(Exception):
                    await self.flush()
        finally:
            with suppress(Exception):
                await self.flush()


@dataclass
class Context:
    settings: DistributionSettings
    topology: Topology
    js: JetStreamContext
    store: MongoStore
    events: EventSink
    work: WorkPublisher
    progress: Progress
    projection: Projection
    reservations: Reservations
    gateway: PaymentGateway | None = None
    presence: Presence | None = None
    clock: Callable[[], dt.datetime] = utc_now
    _round_views: dict[tuple[uuid.UUID, str], RoundView] = field(default_factory=dict, init=False, repr=False)

    async def round_view(self, round_id: uuid.UUID) -> RoundView | None:
        """The round's configuration (parsed once; it never changes) and its current status (read fresh)."""
        doc = await self.store.get(ROUNDS, str(round_id))
        if doc is None:
            return None
        key = (round_id, doc["status"])
        if key not in self._round_views:
            config = AidRoundOpenedData.model_validate(doc["config"])
            self._round_views[key] = RoundView.of(config, RoundStatus(doc["status"]))
        return self._round_views[key]
