"""Records that change by appending versions: a compare-and-set that also keeps the history.

A record that several writers may change (a household, a NIK's owner, the open complaint of a
resident and category, a complaint's progress) is a series of documents ``{_id: "<key>#<n>"}``.
Writing version n+1 is an insert: the unique ``_id`` lets exactly one writer win, and the loser
reads the new latest version and decides again. MongoDB could do the compare-and-set alone with a
guarded update (``{_id: key, n: v}``), but the versions themselves are kept on purpose: they are the
history the resident's data export reads (every household a NIK belonged to, every complaint filed
under it, each household revision with who changed what) and each version carries the outbox of
the change that made it, written once and never overwritten.

The latest version of a key, and its whole history, are one query each on the ``key_n`` index
(``key`` equal, sorted by ``n``); a version by number is a point read by ``_id``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from puskesos_shared.mongo import Document
from puskesos_shared.outbox import OUTBOX_FIELD
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

DUPLICATE_KEY = 11000


@dataclass(frozen=True, slots=True)
class Version:
    key: str
    number: int
    data: dict[str, Any]


def version_id(key: str, number: int) -> str:
    return f"{key}#{number}"


class Versions(Protocol):
    """The port: read the latest version of a key; append the next one (False when another writer won)."""

    async def latest(self, key: str) -> Version | None: ...

    async def append(self, key: str, after: int, data: dict[str, Any], *,
                     outbox: Sequence[dict[str, Any]] = (), at: dt.datetime | None = None) -> bool: ...


class MongoVersions:
    def __init__(self, db: AsyncDatabase[Document], name: str) -> None:
        self.collection: AsyncCollection[Document] = db[name]

    async def create_indexes(self) -> None:
        await self.collection.create_index([("key", 1), ("n", 1)], name="key_n")

    async def latest(self, key: str) -> Version | None:
        doc = await self.collection.find_one({"key": key}, {"n": 1, "data": 1}, sort=[("n", -1)])
        return Version(key=key, number=int(doc["n"]), data=dict(doc["data"])) if doc else None

    async def history(self, key: str) -> list[Version]:
        """Every version of a key, oldest first (one query on the ``key_n`` index)."""
        cursor = self.collection.find({"key": key}, {"n": 1, "data": 1}).sort("n", 1)
        return [Version(key=key, number=int(doc["n"]), data=dict(doc["data"])) async for doc in cursor]

    async def get(self, key: str, number: int) -> Version | None:
        doc = await self.collection.find_one({"_id": version_id(key, number)})
        return Version(key=key, number=number, data=dict(doc["data"])) if doc else None

    async def append(self, key: str, after: int, data: dict[str, Any], *,
                     outbox: Sequence[dict[str, Any]] = (), at: dt.datetime | None = None) -> bool:
        number = after + 1
        doc: Document = {"_id": version_id(key, number), "key": key, "n": number, "data": data,
                         "at": at or dt.datetime.now(dt.UTC), OUTBOX_FIELD: list(outbox)}
        try:
            await self.collection.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def append_first_many(self, items: Sequence[tuple[str, dict[str, Any], Sequence[dict[str, Any]]]], *,
                                at: dt.datetime) -> set[int]:
        """Writes version 1 of many keys in one unordered insert: ``(key, data, outbox)`` each.

        Returns the positions refused because that key already has a version 1 (another writer, an
        earlier run, or the same key earlier in ``items``); each went in or not, as ``append`` would.
        """
        docs: list[Document] = [{"_id": version_id(key, 1), "key": key, "n": 1, "data": data, "at": at,
                                 OUTBOX_FIELD: list(outbox)} for key, data, outbox in items]
        if not docs:
            return set()
        try:
            await self.collection.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            others = [e for e in errors if e.get("code") != DUPLICATE_KEY]
            if others:
                raise
            return {int(e["index"]) for e in errors}
        return set()
