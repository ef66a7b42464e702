"""The audit database: chunks of the chain, its head, the trace index and the checkpoints.

Every document is written once (inserts only; an update scans its collection on FerretDB 1.24)
and is found by ``_id`` equality (the primary-key index on MongoDB; FerretDB 1.24's SQLite
backend scans the table for every query, ``_id`` included, so lookups there cost a scan). Whole-log
reads (verification, replays) scan the chunks once instead. Hence:

* ``chunks``: ``c:<number>``, consecutive runs of records (see ``chain``);
* ``meta``: ``head``, the last chunk written and indexed (a hint: the chunks are the truth);
* ``events``: one summary per message, ``e:<event id>`` (``s:<seq>`` for a message that is not
  an event or repeats an event id), with the raw body;
* ``postings``: ``p:<key>:<n>``, the n-th message that concerns an entity key (``case:<id>``,
  ``kk:<keyed hash>``, ``ch:<parent event id>`` for the children of an event...);
* ``origins``: ``o:<key>``, the event that defines an entity (the first ``AidAllocated`` of an
  allocation id...);
* ``checkpoints``: ``cp:<seq>``, signed heads of the chain.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping, Sequence
from contextlib import suppress
from typing import Any, Protocol

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from .chain import GENESIS, chunk_id

Document = dict[str, Any]

CHUNKS, META, EVENTS, POSTINGS, ORIGINS, CHECKPOINTS = (
    "chunks", "meta", "events", "postings", "origins", "checkpoints")
HEAD_ID = "head"
INDEX_ID = "index"


def posting_id(key: str, n: int) -> str:
    return f"p:{key}:{n}"


def origin_id(key: str) -> str:
    return f"o:{key}"


def checkpoint_id(seq: int) -> str:
    return f"cp:{seq:012d}"


class AuditStorePort(Protocol):
    async def insert_chunk(self, doc: Mapping[str, Any]) -> bool: ...
    async def get_chunk(self, number: int) -> Document | None: ...
    async def get_head(self) -> Document: ...
    async def advance_head(self, chunk: int, seq: int, hash_: str, now: dt.datetime) -> None: ...
    async def insert_many(self, collection: str, docs: Sequence[Mapping[str, Any]]) -> list[int]: ...
    async def get(self, collection: str, doc_id: str) -> Document | None: ...
    async def get_many(self, collection: str, ids: Sequence[str]) -> list[Document | None]: ...
    async def list_checkpoints(self) -> list[Document]: ...


class AuditStore:
    """The Mongo adapter (pymongo's async API); every write is an insert."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db

    async def ensure(self) -> None:
        """Creates the head document once (collections need no secondary index: see the module doc)."""
        with suppress(DuplicateKeyError):
            await self.db[META].insert_one({"_id": HEAD_ID, "chunk": -1, "seq": 0, "hash": GENESIS,
                                            "updated_at": None})
        with suppress(DuplicateKeyError):
            await self.db[META].insert_one({"_id": INDEX_ID, "chunk": -1})

    async def index_position(self) -> int:
        """The last chunk whose index is complete (-1: none)."""
        doc = await self.db[META].find_one({"_id": INDEX_ID})
        return int(doc["chunk"]) if doc else -1

    async def advance_index(self, chunk: int) -> None:
        await self.db[META].update_one({"_id": INDEX_ID, "chunk": {"$lt": chunk}}, {"$set": {"chunk": chunk}})

    # chunks and head ---------------------------------------------------------------------------
    async def insert_chunk(self, doc: Mapping[str, Any]) -> bool:
        """Inserts a chunk; False when that chunk number is already written (by us or a replica)."""
        try:
            await self.db[CHUNKS].insert_one(dict(doc))
        except DuplicateKeyError:
            return False
        return True

    async def get_chunk(self, number: int) -> Document | None:
        return await self.db[CHUNKS].find_one({"_id": chunk_id(number)})

    async def get_head(self) -> Document:
        head = await self.db[META].find_one({"_id": HEAD_ID})
        return head or {"_id": HEAD_ID, "chunk": -1, "seq": 0, "hash": GENESIS}

    async def advance_head(self, chunk: int, seq: int, hash_: str, now: dt.datetime) -> None:
        """Moves the head forward (never back: a slower replica cannot rewind it)."""
        await self.db[META].update_one({"_id": HEAD_ID, "chunk": {"$lt": chunk}},
                                       {"$set": {"chunk": chunk, "seq": seq, "hash": hash_, "updated_at": now}})

    async def last_chunk(self) -> tuple[int, Document | None]:
        """The last chunk written: the head's, then forward while the next one exists."""
        head = await self.get_head()
        number = int(head["chunk"])
        doc = await self.get_chunk(number) if number >= 0 else None
        while True:
            nxt = await self.get_chunk(number + 1)
            if nxt is None:
                return number, doc
            number, doc = number + 1, nxt

    # index ---------------------------------------------------------------------------------------
    async def insert_many(self, collection: str, docs: Sequence[Mapping[str, Any]]) -> list[int]:
        """Inserts documents; returns the positions refused as duplicates (any other error raises)."""
        if not docs:
            return []
        try:
            await self.db[collection].insert_many([dict(d) for d in docs], ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            other = [e for e in errors if e.get("code") != 11000]
            if other:
                raise
            return sorted(int(e["index"]) for e in errors)
        return []

    async def get(self, collection: str, doc_id: str) -> Document | None:
        return await self.db[collection].find_one({"_id": doc_id})

    async def get_many(self, collection: str, ids: Sequence[str]) -> list[Document | None]:
        """Point lookups, concurrently (``$in`` would scan the collection)."""
        return list(await asyncio.gather(*(self.get(collection, i) for i in ids)))

    async def exists(self, collection: str, doc_id: str) -> bool:
        return await self.db[collection].find_one({"_id": doc_id}, {"_id": 1}) is not None

    async def postings(self, key: str, *, limit: int = 10_000, window: int = 8) -> list[Document]:
        """Every posting of ``key`` (read n = 0, 1, 2... until one is missing), at most ``limit``."""
        out: list[Document] = []
        n = 0
        while n < limit:
            batch = await self.get_many(POSTINGS, [posting_id(key, i) for i in range(n, min(n + window, limit))])
            for doc in batch:
                if doc is None:
                    return out
                out.append(doc)
            n += window
            window = min(window * 2, 64)
        return out

    async def list_checkpoints(self) -> list[Document]:
        docs = [d async for d in self.db[CHECKPOINTS].find({})]
        return sorted(docs, key=lambda d: int(d["seq"]))

    async def insert_checkpoint(self, doc: Mapping[str, Any]) -> bool:
        try:
            await self.db[CHECKPOINTS].insert_one(dict(doc))
        except DuplicateKeyError:
            return False
        return True
