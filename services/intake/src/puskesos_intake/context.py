"""What the use cases share: the store, the NIK ownership, the outbox relay, JetStream, the clock, the caller."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from nats.js import JetStreamContext
from puskesos_shared.auth import outside_scope
from puskesos_shared.contracts.envelope import Actor, Event
from puskesos_shared.messaging import PublishError
from puskesos_shared.mongo import Document
from puskesos_shared.outbox import OutboxRelay, outbox_entries
from puskesos_shared.topology import Topology
from pymongo.asynchronous.collection import AsyncCollection

from .faults import Faults
from .niks import NikOwnership
from .store import IntakeStore

log = structlog.get_logger("puskesos.intake")
Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    """Now, to the millisecond: what BSON stores, so a value read back equals the one written."""
    now = dt.datetime.now(dt.UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


@dataclass(frozen=True)
class Caller:
    """Who asks: an officer (scope-checked) or a system on the bus (trusted by NATS permissions)."""

    actor: Actor
    covers: Callable[[str], bool]
    scope: tuple[str, ...] | None = None  # village/kecamatan/regency codes; None: everywhere

    @classmethod
    def system(cls, actor: Actor) -> Caller:
        return cls(actor=actor, covers=lambda _village: True)

    def require(self, village_code: str) -> None:
        if not self.covers(village_code):
            raise outside_scope()


@dataclass
class Context:
    store: IntakeStore
    niks: NikOwnership
    topology: Topology
    relay: Callable[[], OutboxRelay]
    faults: Faults
    clock: Clock
    grace: dt.timedelta
    jetstream: Callable[[], JetStreamContext]  # for batched async publishes (the bulk import)

    def entries(self, events: Iterable[Event]) -> list[dict[str, Any]]:
        return outbox_entries(events, self.topology)

    async def flush(self, collection: AsyncCollection[Document], doc_id: str,
                    entries: Sequence[dict[str, Any]]) -> None:
        """Publishes a write's events now; if the broker is away the kit's outbox sweep publishes them later."""
        try:
            await self.relay().flush(collection, doc_id, entries)
        except PublishError as exc:
            log.warning("outbox_flush_deferred", collection=collection.name, error=str(exc))
