"""The audit database: chunks of the chain, its head, the trace index and the checkpoints.

The log and the index are insert-only (the head and the index position are the only documents
updated, each by a guarded ``$set`` that only moves forward). Every lookup is served by an index
(the whole-log reads of verification and replays read the chunks in ``_id`` order, see ``reader``):

* ``chunks``: ``c:<number>``, consecutive runs of records (see ``chain``), read by ``_id``;
* ``meta``: ``head``, the last chunk written (a hint: the chunks are the truth), and ``index``,
  the last chunk whose trace index is complete;
* ``events``: one summary per message, ``e:<event id>`` (``s:<seq>`` for a message that is not
  an event or repeats an event id), with the raw body and ``index_keys``: the keys a trace finds it
  by (``case:<id>``, ``kk:<keyed hash>``, ``ch:<parent event id>`` for the children of an event...),
  served by the multikey index ``index_keys_1``;
* ``origins``: ``o:<key>``, the event that defines an entity (the first ``AidAllocated`` of an
  allocation id...), read by ``_id``;
* ``checkpoints``: ``cp:<seq>``, signed heads of the chain.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from contextlib import suppress
from typing import Any, Protocol

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from .chain import GENESIS, chunk_id

Document = dict[str, Any]

CHUNKS, META, EVENTS, ORIGINS, CHECKPOINTS = ("chunks", "meta", "events", "origins", "checkpoints")
HEAD_ID = "head"
INDEX_ID = "index"
INDEX_KEYS = "index_keys"
LEGACY_POSTINGS = "postings"  # the trace index of earlier versions (numbered postings per key)


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
    async def listed(self, key: str, *, limit: int) -> list[Document]: ...
    async def list_checkpoints(self) -> list[Document]: ...


class AuditStore:
    """The Mongo adapter (pymongo's async API)."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db

    async def ensure(self) -> None:
        """Creates the head and index position documents once, and the index of ``events.index_keys``."""
        await self.db[EVENTS].create_index(INDEX_KEYS)
        with suppress(DuplicateKeyError):
            await self.db[META].insert_one({"_id": HEAD_ID, "chunk": -1, "seq": 0, "hash": GENESIS,
                                            "updated_at": None})
        with suppress(DuplicateKeyError):
            await self.db[META].insert_one({"_id": INDEX_ID, "chunk": -1})

    async def reset_index(self) -> None:
        """Drops the trace index (and an earlier version's postings) and rewinds its position: the follower
        then rebuilds it from the chunks. Only while no follower runs (it would race the rewind)."""
        for name in (EVENTS, ORIGINS, LEGACY_POSTINGS):
            await self.db[name].drop()
        await self.db[META].update_one({"_id": INDEX_ID}, {"$set": {"chunk": -1}}, upsert=True)
        await self.ensure()

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
        """The documents with these ids, in the order asked (None where missing): one ``$in`` on ``_id``."""
        if not ids:
            return []
        found = {d["_id"]: d async for d in self.db[collection].find({"_id": {"$in": list(dict.fromkeys(ids))}})}
        return [found.get(i) for i in ids]

    async def listed(self, key: str, *, limit: int) -> list[Document]:
        """The event summaries listed under ``key`` (``index_keys``), oldest first, at most ``limit``."""
        cursor = self.db[EVENTS].find({INDEX_KEYS: key}).sort("seq", 1).limit(limit)
        return [d async for d in cursor]

    async def list_checkpoints(self) -> list[Document]:
        docs = [d async for d in self.db[CHECKPOINTS].find({})]
        return sorted(docs, key=lambda d: int(d["seq"]))

    async def insert_checkpoint(self, doc: Mapping[str, Any]) -> bool:
        try:
            await self.db[CHECKPOINTS].insert_one(dict(doc))
        except DuplicateKeyError:
            return False
        return True
