"""Single-document atomicity under real concurrency: counters, guarded updates, upserts, whole-document reads.

Eight writers on their own clients (threads released together by a barrier, or asyncio tasks on
the async client) hit one document; every lost update or double win shows in the final state.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from pymongo import AsyncMongoClient, MongoClient, ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from tests.storage.support import Document, observed, run_concurrently

WRITERS = 8
ROUNDS = 200


def test_find_one_and_update_inc_loses_nothing(db: Database[Document], mongo_url: str) -> None:
    db.counters.insert_one({"_id": "c", "n": 0})
    name = db.name

    def work(client: MongoClient[Document], _: int) -> list[int]:
        coll = client[name].counters
        seen = []
        for _ in range(ROUNDS):
            doc = coll.find_one_and_update({"_id": "c"}, {"$inc": {"n": 1}}, return_document=ReturnDocument.AFTER)
            assert doc is not None
            seen.append(int(doc["n"]))
        return seen

    results = run_concurrently(mongo_url, WRITERS, work)
    assert db.counters.find_one({"_id": "c"}) == {"_id": "c", "n": WRITERS * ROUNDS}
    every = sorted(n for seen in results for n in seen)
    assert every == list(range(1, WRITERS * ROUNDS + 1)), "each increment returns its own value"


def test_update_one_inc_loses_nothing(db: Database[Document], mongo_url: str) -> None:
    db.counters.insert_one({"_id": "c", "n": 0, "m": 0})
    name = db.name

    def work(client: MongoClient[Document], _: int) -> int:
        coll = client[name].counters
        modified = 0
        for _ in range(ROUNDS):
            modified += coll.update_one({"_id": "c"}, {"$inc": {"n": 1, "m": 2}}).modified_count
        return modified

    assert sum(run_concurrently(mongo_url, WRITERS, work)) == WRITERS * ROUNDS
    assert db.counters.find_one({"_id": "c"}) == {"_id": "c", "n": WRITERS * ROUNDS, "m": 2 * WRITERS * ROUNDS}


async def test_inc_from_asyncio_tasks(mongo_client: AsyncMongoClient[Document], db_prefix: str) -> None:
    """The services' path: PyMongo's async client, many tasks on one pool."""
    coll = mongo_client[f"{db_prefix}_async"].counters
    await coll.insert_one({"_id": "c", "n": 0})

    async def writer() -> None:
        for _ in range(ROUNDS):
            await coll.find_one_and_update({"_id": "c"}, {"$inc": {"n": 1}})

    await asyncio.gather(*(writer() for _ in range(WRITERS)))
    assert await coll.find_one({"_id": "c"}) == {"_id": "c", "n": WRITERS * ROUNDS}


def test_upserted_counter_hands_out_each_value_once(db: Database[Document], mongo_url: str) -> None:
    """Distribution's range leases: ``find_one_and_update({_id}, {$inc, $setOnInsert}, upsert, AFTER)`` from
    8 clients on a counter that does not exist yet; each caller's returned value is its own lease."""
    name = db.name

    def work(client: MongoClient[Document], _: int) -> list[int]:
        coll = client[name].leases
        leased: list[int] = []
        while len(leased) < ROUNDS // 2:
            try:
                doc = coll.find_one_and_update({"_id": "round:budget"},
                                               {"$inc": {"leased": 1}, "$setOnInsert": {"scope": "budget"}},
                                               upsert=True, return_document=ReturnDocument.AFTER)
            except DuplicateKeyError:  # two first leases raced to create the counter
                continue
            assert doc is not None and doc["scope"] == "budget"
            leased.append(int(doc["leased"]))
        return leased

    every = sorted(n for leased in run_concurrently(mongo_url, WRITERS, work) for n in leased)
    assert every == list(range(1, WRITERS * ROUNDS // 2 + 1)), "two callers got the same lease"


def test_version_guard_has_one_winner_per_version(db: Database[Document], mongo_url: str) -> None:
    """``{_id, ver: v} -> v + 1``: of the writers that read v, exactly one moves it on."""
    db.guarded.insert_one({"_id": "g", "ver": 0, "log": []})
    name = db.name
    target = 300

    def work(client: MongoClient[Document], i: int) -> list[int]:
        coll = client[name].guarded
        won: list[int] = []
        while True:
            doc = coll.find_one({"_id": "g"})
            assert doc is not None
            v = int(doc["ver"])
            if v >= target:
                return won
            result = coll.update_one({"_id": "g", "ver": v}, {"$set": {"ver": v + 1}, "$push": {"log": [v, i]}})
            if result.modified_count == 1:
                won.append(v)

    results = run_concurrently(mongo_url, WRITERS, work)
    wins = Counter(v for won in results for v in won)
    assert sorted(wins) == list(range(target))
    assert set(wins.values()) == {1}, "two writers won one version"
    final = db.guarded.find_one({"_id": "g"})
    assert final is not None and final["ver"] == target
    assert [entry[0] for entry in final["log"]] == list(range(target))


def test_guarded_find_one_and_update_has_one_winner(db: Database[Document], mongo_url: str) -> None:
    """The notification shape: ``{_id, state: pending} -> done``, returning the new document to its one winner."""
    n_docs = 100
    db.deliveries.insert_many([{"_id": i, "state": "pending"} for i in range(n_docs)])
    name = db.name

    def work(client: MongoClient[Document], i: int) -> list[int]:
        coll = client[name].deliveries
        won = []
        for doc_id in range(n_docs):
            doc = coll.find_one_and_update({"_id": doc_id, "state": "pending"}, {"$set": {"state": "done", "by": i}},
                                           return_document=ReturnDocument.AFTER)
            if doc is not None:
                assert doc["state"] == "done" and doc["by"] == i
                won.append(doc_id)
        return won

    results = run_concurrently(mongo_url, WRITERS, work)
    assert sorted(d for won in results for d in won) == list(range(n_docs))
    for i, won in enumerate(results):
        assert db.deliveries.count_documents({"_id": {"$in": won}, "by": i}) == len(won)


def test_monotonic_guards_never_go_back(db: Database[Document], mongo_url: str) -> None:
    """``{_id, chunk: {$lt: c}} -> c`` (audit head) and ``$max`` (intake case counters) under races."""
    db.meta.insert_one({"_id": "head", "chunk": -1})
    name = db.name

    def work(client: MongoClient[Document], i: int) -> None:
        database = client[name]
        for c in range(i, 400, 3):
            database.meta.update_one({"_id": "head", "chunk": {"$lt": c}}, {"$set": {"chunk": c, "by": i}})
            database.counters.update_one({"_id": "vy"}, {"$max": {"last": c}}, upsert=True)

    run_concurrently(mongo_url, WRITERS, work)
    head = db.meta.find_one({"_id": "head"})
    assert head is not None and head["chunk"] == 399
    assert db.counters.find_one({"_id": "vy"}) == {"_id": "vy", "last": 399}


def test_concurrent_upserts_of_one_id(db: Database[Document], mongo_url: str) -> None:
    """8 upserts of one ``_id`` with ``$inc``: n = 8. MongoDB documents that two upserts may race on the
    unique ``_id`` and one then fails with a duplicate key; the client retries it (as MongoDB advises)."""
    name = db.name
    trials = 40

    def work(client: MongoClient[Document], _: int) -> int:
        coll = client[name].upserts
        retries = 0
        for trial in range(trials):
            while True:
                try:
                    coll.update_one({"_id": trial}, {"$inc": {"n": 1}}, upsert=True)
                    break
                except DuplicateKeyError:
                    retries += 1
        return retries

    run_concurrently(mongo_url, WRITERS, work)
    docs = list(db.upserts.find().sort("_id", 1))
    assert docs == [{"_id": t, "n": WRITERS} for t in range(trials)]


def test_upsert_with_guard_never_duplicates(db: Database[Document], mongo_url: str) -> None:
    """The notification contacts shape: ``{_id, revision: {$lte: r}}`` upsert; a stale revision gets E11000
    (the guard does not match, so the upsert tries to insert the existing ``_id``)."""
    name = db.name

    def work(client: MongoClient[Document], i: int) -> list[tuple[int, str]]:
        coll = client[name].households
        outcomes = []
        for revision in range(1, 60):
            try:
                coll.update_one({"_id": "kk", "revision": {"$lte": revision}},
                                {"$set": {"revision": revision, "by": i}}, upsert=True)
                outcomes.append((revision, "stored"))
            except DuplicateKeyError as exc:
                assert exc.code == 11000
                outcomes.append((revision, "stale"))
        return outcomes

    run_concurrently(mongo_url, WRITERS, work)
    docs = list(db.households.find())
    assert len(docs) == 1 and docs[0]["revision"] == 59


def test_reads_never_see_half_an_update(db: Database[Document], mongo_url: str) -> None:
    """Readers racing writers see each document as one write left it: one ``$inc`` of 60 fields moves all
    of them, so every read shows 60 equal counters.

    (Stock mongo-java-server 1.47 encodes a result after releasing the collection's lock; our launcher
    copies results under the lock: see docs/storage-conformance.md, torn-reads.)
    """
    fields = [f"f{k:02d}" for k in range(60)]
    db.torn.insert_many([{"_id": i, **dict.fromkeys(fields, 0)} for i in range(2)])
    name = db.name
    writes = 1500

    def work(client: MongoClient[Document], i: int) -> int:
        coll = client[name].torn
        torn = 0
        if i < 2:  # writers
            for k in range(writes):
                coll.update_one({"_id": k % 2}, {"$inc": dict.fromkeys(fields, 1)})
            return 0
        for k in range(writes):
            docs = [coll.find_one({"_id": k % 2})] if i % 2 else list(coll.find({"f00": {"$gte": 0}}))
            for doc in docs:
                assert doc is not None
                torn += len({doc[f] for f in fields}) != 1
        return torn

    assert sum(run_concurrently(mongo_url, 6, work)) == 0
    observed("torn-reads")
