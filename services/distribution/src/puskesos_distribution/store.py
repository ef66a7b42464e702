"""The service's MongoDB storage: insert-only records, bulk writes, few reads.

FerretDB 1.24 (SQLite) is what the tests and benchmarks run on; two of its traits shape this
module (measured; see ``reservations`` for the third, non-atomic updates):

* unique indexes are enforced, and bulk inserts stay fast as a collection grows (~17k docs/s);
* no index is used for reading: every query scans its collection (a point read by ``_id`` in a
  63k-document collection takes ~0.1 s, a query on another field ~1 s).

So the hot path only inserts (gathered into ``insert_many`` by ``Coalescer``), and reads happen
where they must: a retried work item looking for what an earlier run did, projection look-ups
(batched), status and close. Every state change is a new document with a deterministic ``_id``;
nothing on the hot path is updated in place.
"""

from __future__ import annotations

import asyncio
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
LEASES = "leases"  # _id: {round}:{scope}:{k}; a replica's range of slot numbers
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

_BATCHED = (CLAIMS, LEASES, BUDGET_SLOTS, QUOTA_SLOTS, DECISIONS, DISBURSEMENTS, IMPORT_ROWS,
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
        coll, unique = self.db[collection], list(dict.fromkeys(ids))
        if len(unique) <= 64:  # FerretDB pushes a lone ``_id`` equality down to SQLite; ``$in`` it decodes all
            docs = await asyncio.gather(*(coll.find_one({"_id": i}) for i in unique))
            found = {i: doc for i, doc in zip(unique, docs, strict=True) if doc is not None}
        else:
            found = {doc["_id"]: doc async for doc in coll.find({"_id": {"$in": unique}})}
        return [found.get(i) for i in ids]

    async def by_field(self, collection: str, field: str, value: str) -> list[Document]:
        """Documents whose ``field`` equals ``value`` (concurrent look-ups share one ``$in`` scan)."""
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

        One scan reads every scope of the round, and a read is reused while it is recent enough:
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

    async def exists(self, collection: str, doc_id: str) -> bool:
        return await self.db[collection].find_one({"_id": doc_id}, {"_id": 1}) is not None
