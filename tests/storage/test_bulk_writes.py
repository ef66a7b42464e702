"""Bulk writes with duplicates: which documents went in, the error indexes and the counts.

The audit indexer (``AuditStore.insert_many``: the positions refused as duplicates, from
``BulkWriteError.details["writeErrors"][i]["index"]`` with ``code`` 11000; any other code raises)
and the distribution store (``MongoStore._insert_many``: per position, inserted or duplicate) build
on exactly these answers.
"""

from __future__ import annotations

import pytest
from pymongo import AsyncMongoClient, InsertOne, UpdateOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from tests.storage.support import Document, Engine, observed

DUPLICATE_KEY = 11000


def _refused(exc: BulkWriteError) -> list[tuple[int, int]]:
    return [(int(e["index"]), int(e["code"])) for e in exc.details["writeErrors"]]


def test_unordered_insert_many_with_duplicates(db: Database[Document], engine: Engine) -> None:
    db.postings.create_index("key_n", unique=True)
    db.postings.insert_many([{"_id": "p:a:0", "key_n": "a0"}, {"_id": "p:b:0", "key_n": "b0"}])
    batch = [
        {"_id": "p:a:0", "key_n": "new"},  # 0: _id taken
        {"_id": "p:a:1", "key_n": "a1"},  # 1: goes in
        {"_id": "p:c:0", "key_n": "b0"},  # 2: unique key taken
        {"_id": "p:a:1", "key_n": "a1-again"},  # 3: _id taken by 1 in this batch
        {"_id": "p:d:0", "key_n": "d0"},  # 4: goes in
        {"_id": "p:e:0", "key_n": "d0"},  # 5: unique key taken by 4 in this batch
    ]
    with pytest.raises(BulkWriteError) as caught:
        db.postings.insert_many(batch, ordered=False)
    details = caught.value.details
    assert _refused(caught.value) == [(0, 11000), (2, 11000), (3, 11000), (5, 11000)]
    assert [e["op"]["_id"] for e in details["writeErrors"]] == ["p:a:0", "p:c:0", "p:a:1", "p:e:0"]
    assert details["nInserted"] == 2
    assert sorted(d["_id"] for d in db.postings.find()) == ["p:a:0", "p:a:1", "p:b:0", "p:d:0"]
    assert db.postings.find_one({"_id": "p:a:1"}) == {"_id": "p:a:1", "key_n": "a1"}
    assert db.postings.count_documents({}) == 4
    if engine.is_mongo_java_server:
        observed("insert-counts")  # stock 1.47 answers nInserted 6 here; the launcher corrects it


def test_ordered_insert_many_stops_at_first_duplicate(db: Database[Document], engine: Engine) -> None:
    db.c.insert_one({"_id": 2})
    with pytest.raises(BulkWriteError) as caught:
        db.c.insert_many([{"_id": 1}, {"_id": 2}, {"_id": 3}], ordered=True)
    assert _refused(caught.value) == [(1, 11000)]
    assert caught.value.details["nInserted"] == 1
    assert sorted(d["_id"] for d in db.c.find()) == [1, 2]
    if engine.is_mongo_java_server:
        observed("insert-counts")


def test_unordered_batches_larger_than_one_message(db: Database[Document]) -> None:
    """PyMongo splits a big insert_many (MongoDB: 100,000 per batch; mongo-java-server: 1,000); the error
    indexes are positions in the whole list and nInserted is the total."""
    existing = list(range(0, 5000, 7))
    db.big.insert_many([{"_id": i} for i in existing])
    batch = [{"_id": i} for i in range(5000)]
    with pytest.raises(BulkWriteError) as caught:
        db.big.insert_many(batch, ordered=False)
    assert [i for i, _ in _refused(caught.value)] == existing
    assert caught.value.details["nInserted"] == 5000 - len(existing)
    assert db.big.count_documents({}) == 5000


def test_ordered_bulk_stops_at_first_error(db: Database[Document], engine: Engine) -> None:
    db.u.create_index("k", unique=True)
    db.u.insert_many([{"_id": 1, "k": "a"}, {"_id": 2, "k": "b"}])
    with pytest.raises(BulkWriteError) as caught:
        db.u.bulk_write([UpdateOne({"_id": 1}, {"$set": {"x": 1}}),
                         UpdateOne({"_id": 2}, {"$set": {"k": "a"}}),  # E11000: the batch stops here
                         UpdateOne({"_id": 2}, {"$set": {"x": 2}}),
                         UpdateOne({"_id": 3}, {"$set": {"x": 3}}, upsert=True),
                         InsertOne({"_id": 4})], ordered=True)
    details = caught.value.details
    assert _refused(caught.value) == [(1, 11000)]
    assert (details["nMatched"], details["nModified"], details["nUpserted"], details["nInserted"]) == (1, 1, 0, 0)
    assert list(db.u.find().sort("_id", 1)) == [{"_id": 1, "k": "a", "x": 1}, {"_id": 2, "k": "b"}]
    if engine.is_mongo_java_server:
        observed("ordered-bulk-updates")


def test_bulk_upserts_report_their_positions(db: Database[Document]) -> None:
    db.u.insert_one({"_id": 1, "n": 0})
    result = db.u.bulk_write([UpdateOne({"_id": 1}, {"$inc": {"n": 1}}, upsert=True),
                              UpdateOne({"_id": 2}, {"$inc": {"n": 1}}, upsert=True),
                              UpdateOne({"_id": 3}, {"$setOnInsert": {"n": 7}}, upsert=True)], ordered=True)
    assert (result.matched_count, result.modified_count, result.upserted_count) == (1, 1, 2)
    assert result.upserted_ids == {1: 2, 2: 3}
    assert list(db.u.find().sort("_id", 1)) == [{"_id": 1, "n": 1}, {"_id": 2, "n": 1}, {"_id": 3, "n": 7}]


async def test_audit_store_insert_many_contract(mongo_client: AsyncMongoClient[Document], db_prefix: str) -> None:
    """The audit store's own adapter: the positions refused as duplicates, nothing else lost."""
    from puskesos_audit.store import AuditStore

    store = AuditStore(mongo_client[f"{db_prefix}_audit"])
    first = [{"_id": f"e:{i}", "seq": i} for i in range(10)]
    assert await store.insert_many("events", first) == []
    again = [{"_id": f"e:{i}", "seq": i} for i in range(5, 15)] + [{"_id": "e:20", "seq": 20}, {"_id": "e:7"}]
    assert await store.insert_many("events", again) == [0, 1, 2, 3, 4, 11]
    ids = {d["_id"] async for d in store.db["events"].find({}, {"_id": 1})}
    assert ids == {f"e:{i}" for i in [*range(15), 20]}
