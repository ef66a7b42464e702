"""MongoDB lifecycle through PyMongo's native async API; one database per service.

Code here and in the services sticks to what both MongoDB and the local engine (mongo-java-server,
``tools/mongo-server``) support: no multi-document transactions, sessions, change streams, TTL or
partial indexes. Guarantees rest on deterministic ids, unique indexes and atomic single-document
writes (docs/conventions.md, "Storage rules"; proven by tests/storage).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

Document = dict[str, Any]


class Mongo:
    """Owns one ``AsyncMongoClient`` and the service's database. Create it at start-up, not at import."""

    def __init__(self, url: str, database: str, *, app_name: str = "puskesos") -> None:
        self.url = url
        self.client: AsyncMongoClient[Document] = AsyncMongoClient(
            url, appname=app_name, tz_aware=True, uuidRepresentation="standard", serverSelectionTimeoutMS=5000
        )
        self.db: AsyncDatabase[Document] = self.client[database]

    async def ping(self) -> bool:
        await self.client.admin.command("ping")
        return True

    async def close(self) -> None:
        await self.client.close()


def is_duplicate_key(exc: BaseException) -> bool:
    if isinstance(exc, DuplicateKeyError):
        return True
    if isinstance(exc, BulkWriteError):
        errors = exc.details.get("writeErrors", [])
        return bool(errors) and all(e.get("code") == 11000 for e in errors)
    return False


async def insert_once(collection: AsyncCollection[Document], document: Mapping[str, Any]) -> bool:
    """Inserts ``document``; returns False when its unique key is already there ("already done")."""
    try:
        await collection.insert_one(dict(document))
    except DuplicateKeyError:
        return False
    return True
