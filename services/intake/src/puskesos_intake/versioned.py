"""Records that change by appending versions: the only compare-and-set FerretDB 1.24 gives us.

FerretDB 1.24 (SQLite) runs an update as "read the matching documents, then write them back
whole" in separate steps, so two concurrent updates of one document lose one of them and a
guard in the filter (``{"revision": 3}``) guarantees nothing; only unique indexes hold under
concurrency. A record that several writers may change is therefore a series of documents
``{_id: "<key>#<n>"}``: writing version n+1 is an insert, and the unique ``_id`` lets exactly one
writer win; the loser reads the new latest version and decides again.

``<name>_heads`` keeps a copy of a recent version per key so that reading the latest costs two
point reads (the head, and a probe for the next number); records with few versions (NIK owners,
open complaints) go without heads and probe from the first version, which saves a write.
Heads are hints written after the insert, by plain updates that may be lost or overtaken; a
head only ever names a version that exists, so probing forward from it always ends at the true
latest one. Every query here is a point read by ``_id`` (FerretDB pushes down only those;
anything else scans the collection).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Protocol

from puskesos_shared.mongo import Document
from puskesos_shared.outbox import OUTBOX_FIELD
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError


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
    def __init__(self, db: AsyncDatabase[Document], name: str, *, heads: bool = True) -> None:
        self.collection: AsyncCollection[Document] = db[name]
        self.heads: AsyncCollection[Document] | None = db[f"{name}_heads"] if heads else None

    async def create_indexes(self) -> None:
        await self.collection.create_index([("key", 1), ("n", 1)], name="key_n")

    async def latest(self, key: str) -> Version | None:
        head = await self.heads.find_one({"_id": key}) if self.heads is not None else None
        number, data = (int(head["n"]), dict(head["data"])) if head else (0, None)
        while True:
            following = await self.collection.find_one({"_id": version_id(key, number + 1)})
            if following is None:
                break
            number, data = int(following["n"]), dict(following["data"])
        if data is None:
            return None
        return Version(key=key, number=number, data=data)

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
        if self.heads is None:
            return True
        with suppress(DuplicateKeyError):  # two first heads racing: either is a valid hint
            await self.heads.update_one({"_id": key}, {"$set": {"n": number, "data": data}}, upsert=True)
        return True
