"""The service's MongoDB storage: decisions as inserts with deterministic ids, in bulk.

Every contended decision (which candidate decides a family, which slot of a budget or quota an
allocation holds, what a candidate or a payout came to) is an insert that a unique index accepts
or refuses: the first writer wins, a retry or a concurrent run of the same work item finds the
winner's document, and a crash at any point leaves nothing half-done (see ``reservations``). So
the hot path only inserts (plus one atomic counter increment per leased range of budget slots),
and the many small inserts and point reads of the work items a replica handles at once are
gathered into one ``insert_many`` or one ``_id: {$in}`` read by ``Coalescer``. Lists (a round's
decisions at close, status counters) are served by the secondary indexes below.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Mapping
from typing import Any

from puskesos_shared.mongo import Document
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from .batching import Coalescer

ROUNDS = "rounds"
CLAIMS = "claims"  # _id: allocation id (round, KK); which candidate decides the family's case
LEASES = "leases"  # _id: {round}:{scope}; how many ranges of the scope's slot numbers are leased
BUDGET_SLOTS = "budget_slots"  # _id: {allocation}:budget; unique (round, scope, number)
QUOTA_SLOTS = "quota_slots"  # _id: {allocation}:v:{village}; unique (round, scope, number)
DECISIONS = "decisions"  # _id: {round}:{candidate}; allocated (with the allocation id) or rejected
DISBURSEMENTS = "disbursements"  # _id: allocation id; the final outcome and its event
IMPORT_ROWS = "import_rows"  # _id: {batch}:{KK}; duplicate detection within a recipient list
IMPORTS = "imports"  # _id: batch id (or assess:{round}:{n}); candidates enqueued per batch
HOUSEHOLDS = "household_revisions"  # _id: {KK}:{revision:06d}
ASSESSMENTS = "assessments"  # _id: CaseAssessed event id
PROGRESS = "progress"  # _id: {round}:{instance}; one writer each, live counters for status

DUPLICATE_KEY = 11000

_SLOT_NUMBER = [("round_id", ASCENDING), ("scope", ASCENDING), ("number", ASCENDING)]
_UNIQUE: dict[str, list[list[tuple[str, int]]]] = {BUDGET_SLOTS: [_SLOT_NUMBER], QUOTA_SLOTS: [_SLOT_NUMBER]}
_INDEXES: dict[str, list[list[tuple[str, int]]]] = {
    DECISIONS: [[("round_id", ASCENDING)]],
    DISBURSEMENTS: [[("round_id", ASCENDING)]],
    HOUSEHOLDS: [[("kk", ASCENDING)]],
    ASSESSMENTS: [[("kk", ASCENDING)]],
    PROGRESS: [[("round_id", ASCENDING)]],
    IMPORTS: [[("round_id", ASCENDING)]],
}

_BATCHED = (CLAIMS, BUDGET_SLOTS, QUOTA_SLOTS, DECISIONS, DISBURSEMENTS, IMPORT_ROWS,
            HOUSEHOLDS, ASSESSMENTS, ROUNDS)


class MongoStore:
    """Bulk inserts and batched reads over the service's database."""

    def __init__(self, db: AsyncDatabase[Document], *, linger: float = 0.002, max_batch: int = 256) -> None:
        self.db = db
        self._inserters = {name: Coalescer[Document, bool](functools.partial(self._insert_many, name),
                                                           max_batch=max_batch, linger=linger)
                           for name in _BATCHED}
        self._getters = {name: Coalescer[str, Document | None](functools.partial(self._get_many, name),
                                                               max_batch=max_batch, linger=linger)
                         for name in _BATCHED}
        self._by_field = {(name, field): Coalescer[str, list[Document]](
            functools.partial(self._by_field_many, name, field), max_batch=max_batch, linger=linger)
            for name, field in ((HOUSEHOLDS, "kk"), (ASSESSMENTS, "kk"))}
        self._snapshots: dict[tuple[str, str], tuple[float, dict[str, set[int]]]] = {}
        self._slot_numbers = {name: Coalescer[str, None](
            functools.partial(self._slot_numbers_many, name), max_batch=max_batch, linger=linger)
            for name in (BUDGET_SLOTS, QUOTA_SLOTS)}

    async def ensure_indexes(self) -> None:
        for name, indexes in _UNIQUE.items():
            for keys in indexes:
                await self.db[name].create_index(keys, unique=True)
        for name, indexes in _INDEXES.items():
            for keys in indexes:
                await self.db[name].create_index(keys)

    # writes ---------------------------------------------------------------------------------
    async def insert(self, collection: str, doc: Document) -> bool:
        """Inserts ``doc``; False when its ``_id`` (or another unique key) is already there."""
        return await self._inserters[collection](doc)

    async def _insert_many(self, collection: str, docs: list[Document]) -> list[bool | BaseException]:
        results: list[bool | BaseException] = [True] * len(docs)
        try:
            await self.db[collection].insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            for error in exc.details.get("writeErrors", []):
                index = int(error["index"])
                if error.get("code") == DUPLICATE_KEY:
                    results[index] = False
                else:
                    results[index] = RuntimeError(f"insert into {collection} failed: {error.get('errmsg')}")
        return results

    async def delete(self, collection: str, doc_id: str) -> None:
        await self.db[collection].delete_one({"_id": doc_id})

    # reads ----------------------------------------------------------------------------------
    async def get(self, collection: str, doc_id: str) -> Document | None:
        return await self._getters[collection](doc_id)

    async def _get_many(self, collection: str, ids: list[str]) -> list[Document | None]:
        found = {doc["_id"]: doc async for doc in self.db[collection].find({"_id": {"$in": list(set(ids))}})}
        return [found.get(i) for i in ids]

    async def by_field(self, collection: str, field: str, value: str) -> list[Document]:
        """Documents whose ``field`` equals ``value`` (concurrent look-ups share one indexed ``$in`` query)."""
        return await self._by_field[(collection, field)](value)

    async def _by_field_many(self, collection: str, field: str, values: list[str]) -> list[list[Document]]:
        grouped: dict[str, list[Document]] = {v: [] for v in values}
        async for doc in self.db[collection].find({field: {"$in": list(grouped)}}):
            grouped[doc[field]].append(doc)
        return [grouped[v] for v in values]

    async def find_all(self, collection: str, query: Mapping[str, Any],
                       projection: Mapping[str, Any] | None = None) -> list[Document]:
        return [doc async for doc in self.db[collection].find(dict(query), projection)]

    async def count(self, collection: str, query: Mapping[str, Any]) -> int:
        return await self.db[collection].count_documents(dict(query))

    async def slot_numbers(self, collection: str, round_id: uuid.UUID, scope: str, *, not_before: float = 0.0
                           ) -> set[int]:
        """Slot numbers taken in one scope, as read at ``not_before`` (``time.monotonic()``) or later.

        One query reads every scope of the round, and a read is reused while it is recent enough:
        slots are only ever added, so an older read can show a hole that is gone, never hide one.
        """
        key = (collection, str(round_id))
        cached = self._snapshots.get(key)
        if cached is None or cached[0] < not_before:
            await self._slot_numbers[collection](str(round_id))
            cached = self._snapshots[key]
        return cached[1].get(scope, set())

    async def _slot_numbers_many(self, collection: str, rounds: list[str]) -> list[None]:
        started = time.monotonic()
        taken: dict[str, dict[str, set[int]]] = {r: {} for r in rounds}
        async for doc in self.db[collection].find({"round_id": {"$in": list(taken)}},
                                                  {"round_id": 1, "scope": 1, "number": 1}):
            taken[doc["round_id"]].setdefault(doc["scope"], set()).add(int(doc["number"]))
        for round_id, scopes in taken.items():
            self._snapshots[(collection, round_id)] = (started, scopes)
        return [None for _ in rounds]
