"""Queries served by secondary indexes return exactly what a full scan returns, before and after writes.

Two collections hold the same documents: ``indexed`` has the kinds of indexes the services create
(equality prefixes, compound keys with a range after the prefix, multikey arrays, dotted paths,
a sparse index), ``plain`` has none, so every query on it scans. Each query must give the same
documents in the same order on both, and what MongoDB gives (``oracle``); then updates that change
indexed fields, deletes, re-inserts and concurrent writers change both, and the comparison repeats.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest
from pymongo import ASCENDING, DESCENDING, MongoClient
from pymongo.collection import Collection
from pymongo.database import Database

from tests.storage import oracle
from tests.storage.support import Document, Engine, observed, run_concurrently

VILLAGES = ["35.09.01.2001", "35.09.01.2002", "35.09.02.2001", "35.73.01.1001", "35.73.02.1002"]
STATUSES = ["open", "assessed", "referred", "closed"]
LEVELS = ["puskesos", "kecamatan", "dinas_sosial"]
CATEGORIES = ["bansos", "kesehatan", "anak", "lansia"]
NIKS = [f"35090112345600{i:02d}" for i in range(40)]
DAY0 = dt.date(2026, 1, 1)
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

INDEXES: list[tuple[list[tuple[str, int]], dict[str, Any]]] = [
    ([("village_code", ASCENDING), ("status", ASCENDING)], {}),
    ([("status", ASCENDING), ("level_due_on", ASCENDING)], {}),
    ([("village_code", ASCENDING), ("status", ASCENDING), ("category", ASCENDING), ("filed_at", DESCENDING)], {}),
    ([("niks", ASCENDING)], {}),
    ([("recipient.id", ASCENDING)], {}),
    ([("seq", ASCENDING)], {}),
    ([("round_id", ASCENDING), ("scope", ASCENDING), ("number", ASCENDING)], {}),
    ([("kk", ASCENDING)], {}),
    ([("tag", ASCENDING)], {"sparse": True}),
    ([("filed_at", DESCENDING)], {}),
]


def _maybe(rng: random.Random, value: Any, missing: float = 0.1, null: float = 0.05) -> Any:
    roll = rng.random()
    return oracle.MISSING if roll < missing else None if roll < missing + null else value


def make_document(rng: random.Random, i: int) -> Document:
    seq_value: Any = rng.choice([rng.randint(0, 9), float(rng.randint(0, 9)), rng.randint(0, 9) + 0.5,
                                 str(rng.randint(0, 9))])
    niks: Any = rng.sample(NIKS, rng.randint(0, 3))
    if rng.random() < 0.1:
        niks = rng.choice(NIKS)  # a scalar where others hold arrays
    fields = {
        "village_code": _maybe(rng, rng.choice(VILLAGES)),
        "status": rng.choice(STATUSES),
        "level": rng.choice(LEVELS),
        "category": _maybe(rng, rng.choice(CATEGORIES), 0.05, 0.0),
        "level_due_on": _maybe(rng, (DAY0 + dt.timedelta(days=rng.randint(0, 60))).isoformat()),
        "filed_at": T0 + dt.timedelta(minutes=rng.randint(0, 10_000)),
        "niks": _maybe(rng, niks, 0.1, 0.0),
        "recipient": _maybe(rng, {"id": rng.choice([*NIKS[:10], "kk:1", "kk:2"])}, 0.1, 0.0),
        "seq": _maybe(rng, seq_value),
        "round_id": rng.choice(["r1", "r2"]),
        "scope": rng.choice(["budget", "v:35.09.01.2001", "v:35.09.01.2002"]),
        "number": rng.randint(0, 50),
        "kk": f"kk{rng.randint(0, 120):04d}",
        "tag": _maybe(rng, rng.choice(["x", "y"]), 0.6, 0.1),
    }
    return {"_id": f"d{i:05d}", **{k: v for k, v in fields.items() if v is not oracle.MISSING}}


def queries(rng: random.Random) -> list[tuple[Document, list[tuple[str, int]], int, int]]:
    """(filter, sort, skip, limit) of the shapes the services send, with random values."""
    def day() -> str:
        return (DAY0 + dt.timedelta(days=rng.randint(0, 60))).isoformat()

    v, s = rng.choice(VILLAGES), rng.choice(STATUSES)
    by_due: list[tuple[str, int]] = [("level_due_on", 1), ("_id", 1)]
    by_filed: list[tuple[str, int]] = [("filed_at", -1), ("_id", 1)]
    lo, hi = sorted([day(), day()])
    when = T0 + dt.timedelta(minutes=rng.randint(0, 10_000))
    return [
        ({"village_code": v}, [], 0, 0),
        ({"village_code": v, "status": s}, by_due, 0, 0),
        ({"village_code": v, "status": {"$ne": "closed"}}, by_due, rng.randint(0, 5), 10),
        ({"village_code": {"$in": rng.sample(VILLAGES, 2)}, "status": {"$in": rng.sample(STATUSES, 2)}}, [], 0, 0),
        ({"status": s, "level_due_on": {"$lt": day()}}, by_due, 0, 0),
        ({"status": s, "level_due_on": {"$gte": lo, "$lte": hi}}, by_due, 0, 0),
        ({"status": {"$in": ["open", "assessed"]}, "level_due_on": {"$gt": lo}}, by_due, 0, 7),
        ({"status": {"$ne": "closed"}, "level": {"$ne": "dinas_sosial"}, "level_due_on": {"$lt": day()}},
         by_due, 0, 25),
        ({"village_code": v, "status": s, "category": rng.choice(CATEGORIES)}, by_filed, 0, 0),
        ({"village_code": v, "status": s, "category": rng.choice(CATEGORIES), "filed_at": {"$gte": when}},
         by_filed, 0, 0),
        ({"village_code": v, "filed_at": {"$gte": when}}, by_filed, 2, 5),
        ({"$or": [{"village_code": {"$in": [v]}}, {"kk": {"$in": ["kk0001", "kk0002"]}}], "status": s}, by_filed, 0, 0),
        ({"niks": rng.choice(NIKS)}, [("_id", 1)], 0, 0),
        ({"niks": {"$in": rng.sample(NIKS, 3)}}, [], 0, 0),
        ({"$or": [{"niks": rng.choice(NIKS)}, {"kk": {"$in": ["kk0003", "kk0004"]}}]}, [], 0, 0),
        ({"recipient.id": {"$in": rng.sample([*NIKS[:10], "kk:1", "kk:2"], 3)}}, [("filed_at", 1), ("_id", 1)], 0, 0),
        ({"seq": rng.randint(0, 9)}, [], 0, 0),
        ({"seq": float(rng.randint(0, 9))}, [], 0, 0),
        ({"seq": {"$gt": rng.randint(0, 9)}}, [("seq", 1), ("_id", 1)], 0, 0),
        ({"seq": {"$lte": rng.randint(0, 9) + 0.5}}, [("seq", -1), ("_id", 1)], 0, 0),
        ({"seq": {"$gte": str(rng.randint(0, 9))}}, [], 0, 0),
        ({"seq": {"$in": [3, "3", 4.5]}}, [], 0, 0),
        ({"round_id": rng.choice(["r1", "r2"]), "scope": "budget", "number": {"$gt": rng.randint(0, 50)}},
         [("number", 1), ("_id", 1)], 0, 0),
        ({"round_id": {"$in": ["r1", "r2"]}}, [], 0, 0),
        ({"kk": {"$in": [f"kk{rng.randint(0, 120):04d}" for _ in range(50)]}}, [], 0, 0),
        ({"filed_at": {"$gte": when}}, by_filed, 0, 0),
        ({"filed_at": {"$lt": when}}, [("filed_at", 1), ("_id", 1)], 0, 10),
        ({"filed_at": {"$gt": when, "$lte": when + dt.timedelta(minutes=2000)}}, [], 0, 0),
        ({"filed_at": T0 + dt.timedelta(minutes=rng.randint(0, 10_000))}, [], 0, 0),
        ({"seq": {"$gt": 2, "$lt": 6}}, [], 0, 0),
        ({"status": s, "level_due_on": {"$gt": 5}}, [], 0, 0),  # type bracketing: no string is > 5
        ({"village_code": {"$in": [None, v]}}, [], 0, 0),
        ({"village_code": None}, [], 0, 0),
        ({"village_code": {"$exists": False}}, [], 0, 0),
        ({"village_code": v, "status": {"$exists": True}, "seq": {"$ne": None}}, [], 0, 0),
        ({"tag": "x"}, [], 0, 0),
        ({"tag": None}, [], 0, 0),
        ({"tag": {"$in": [None, "y"]}}, [], 0, 0),
        ({"tag": {"$exists": True}}, [], 0, 0),  # the sparse index's entries (the outbox sweep's shape)
        ({"tag": {"$exists": True}, "seq": {"$lt": rng.randint(0, 9)}}, [], 0, 0),
        ({"_id": f"d{rng.randint(0, 700):05d}", "seq": {"$lt": rng.randint(0, 9)}}, [], 0, 0),  # a guarded update
        ({"_id": {"$in": [f"d{rng.randint(0, 700):05d}" for _ in range(20)]}, "status": s}, [], 0, 0),
        ({"_id": {"$in": [f"d{rng.randint(0, 700):05d}" for _ in range(20)]}}, [], 0, 0),
        ({"_id": {"$regex": "7$"}, "village_code": v}, [], 0, 0),
    ]


def _ids(collection: Collection[Document], query: Document, sort: list[tuple[str, int]], skip: int,
         limit: int) -> list[str]:
    cursor = collection.find(query, {"_id": 1})
    if sort:
        cursor = cursor.sort(sort)
    return [d["_id"] for d in cursor.skip(skip).limit(limit)]


def _unordered(ids: list[str], sort: list[tuple[str, int]], skip: int, limit: int) -> list[str] | set[str]:
    return ids if sort or skip or limit else set(ids)


def compare_everything(db: Database[Document], rng: random.Random, rounds: int) -> int:
    """Every query shape, ``rounds`` times with fresh values: indexed == scan == MongoDB. Returns queries run."""
    truth = list(db.plain.find())
    assert sorted(truth, key=lambda d: d["_id"]) == list(db.indexed.find().sort("_id", 1)), "collections diverged"
    ran = 0
    for _ in range(rounds):
        for query, sort, skip, limit in queries(rng):
            expected = [d["_id"] for d in oracle.find(truth, query, sort, skip, limit)]
            scanned = _ids(db.plain, query, sort, skip, limit)
            served = _ids(db.indexed, query, sort, skip, limit)
            assert _unordered(scanned, sort, skip, limit) == _unordered(expected, sort, skip, limit), \
                f"scan differs from MongoDB for {query} sort {sort}"
            assert _unordered(served, sort, skip, limit) == _unordered(expected, sort, skip, limit), \
                f"index-served query differs from a scan for {query} sort {sort}"
            count = len(oracle.find(truth, query))
            assert db.indexed.count_documents(query) == count == db.plain.count_documents(query), query
            ran += 1
    return ran


def _both(db: Database[Document], method: str, *args: Any, **kwargs: Any) -> None:
    for name in ("indexed", "plain"):
        getattr(db[name], method)(*args, **kwargs)


@pytest.fixture
def seeded(db: Database[Document]) -> Database[Document]:
    rng = random.Random(14)
    for keys, options in INDEXES:
        db.indexed.create_index(keys, **options)
    docs = [make_document(rng, i) for i in range(700)]
    db.indexed.insert_many(docs[:350])  # half before the indexes were built ...
    db.plain.insert_many(docs[:350])
    db.indexed.drop_indexes()
    db.indexed.insert_many(docs[350:])
    db.plain.insert_many(docs[350:])
    for keys, options in INDEXES:  # ... indexes built over existing documents, then maintained
        db.indexed.create_index(keys, **options)
    return db


def test_queries_match_a_full_scan(seeded: Database[Document], engine: Engine) -> None:
    assert compare_everything(seeded, random.Random(1), rounds=6) > 150
    if engine.is_mongo_java_server:
        observed("index-shapes")
        observed("sorts-in-memory")


def test_after_updates_that_move_index_keys(seeded: Database[Document]) -> None:
    db, rng = seeded, random.Random(2)
    for step in range(120):
        doc_id = f"d{rng.randint(0, 699):05d}"
        choice = step % 8
        current = db.plain.find_one({"_id": doc_id}) or {}
        if choice in (2, 7) and not isinstance(current.get("niks"), list):
            choice = 0  # $push and $pullAll need an array (a scalar is an error on MongoDB too)
        if choice == 0:
            _both(db, "update_one", {"_id": doc_id}, {"$set": {"village_code": rng.choice(VILLAGES),
                                                                "status": rng.choice(STATUSES)}})
        elif choice == 1:
            _both(db, "update_one", {"_id": doc_id}, {"$unset": {"village_code": "", "level_due_on": ""}})
        elif choice == 2:
            _both(db, "update_one", {"_id": doc_id}, {"$push": {"niks": rng.choice(NIKS)}})
        elif choice == 3:
            _both(db, "update_many", {"village_code": rng.choice(VILLAGES), "status": "open"},
                  {"$set": {"status": "assessed", "level_due_on": (DAY0 + dt.timedelta(days=step % 60)).isoformat()}})
        elif choice == 4:
            _both(db, "update_one", {"_id": doc_id}, {"$set": {"recipient.id": rng.choice(NIKS[:10]), "seq": step % 7}})
        elif choice == 5:
            replacement = make_document(rng, int(doc_id[1:]))
            _both(db, "replace_one", {"_id": doc_id}, replacement, upsert=True)
        elif choice == 6:
            _both(db, "update_one", {"_id": doc_id}, {"$inc": {"number": 3}, "$set": {"tag": rng.choice(["x", None])}})
        else:
            _both(db, "update_one", {"_id": doc_id}, {"$pullAll": {"niks": NIKS[:20]}})
    compare_everything(db, rng, rounds=3)


def test_after_deletes_and_reinserts(seeded: Database[Document]) -> None:
    db, rng = seeded, random.Random(3)
    _both(db, "delete_many", {"village_code": VILLAGES[0], "status": {"$in": ["closed", "open"]}})
    _both(db, "delete_many", {"niks": NIKS[5]})
    for i in range(0, 700, 9):
        _both(db, "delete_one", {"_id": f"d{i:05d}"})
    compare_everything(db, rng, rounds=2)
    fresh = [make_document(rng, i) for i in range(0, 700, 9)] + [make_document(rng, i) for i in range(700, 800)]
    _both(db, "insert_many", fresh)
    compare_everything(db, rng, rounds=2)


def test_under_concurrent_writers(seeded: Database[Document], mongo_url: str) -> None:
    """Writers on their own clients move index keys of disjoint documents at once; then the indexes still agree."""
    name = seeded.name

    def work(client: MongoClient[Document], i: int) -> None:
        rng = random.Random(100 + i)
        database = client[name]
        for step in range(150):
            doc_id = f"d{rng.randrange(i, 700, 6):05d}"  # writer i owns ids = i mod 6
            update = {"$set": {"village_code": rng.choice(VILLAGES), "status": rng.choice(STATUSES),
                               "level_due_on": (DAY0 + dt.timedelta(days=rng.randint(0, 60))).isoformat(),
                               "niks": rng.sample(NIKS, 2)}}
            if step % 10 == 0:
                replacement = make_document(rng, int(doc_id[1:]))
                for coll in ("indexed", "plain"):
                    database[coll].delete_one({"_id": doc_id})
                    database[coll].insert_one(dict(replacement))
                continue
            for coll in ("indexed", "plain"):
                database[coll].update_one({"_id": doc_id}, update)
            database.indexed.count_documents({"village_code": update["$set"]["village_code"]})

    run_concurrently(mongo_url, 6, work)
    compare_everything(seeded, random.Random(4), rounds=3)


def test_aggregations_and_distinct_match_a_scan(seeded: Database[Document]) -> None:
    db = seeded
    truth = list(db.plain.find())
    for village in VILLAGES:
        pipeline: list[Document] = [{"$match": {"village_code": village}},
                                    {"$group": {"_id": "$status", "n": {"$sum": 1}}}, {"$sort": {"_id": 1}}]
        served, scanned = list(db.indexed.aggregate(pipeline)), list(db.plain.aggregate(pipeline))
        expected: dict[str, int] = {}
        for d in oracle.find(truth, {"village_code": village}):
            expected[d["status"]] = expected.get(d["status"], 0) + 1
        assert served == scanned == [{"_id": k, "n": expected[k]} for k in sorted(expected)]
        assert (sorted(db.indexed.distinct("status", {"village_code": village}))
                == sorted(db.plain.distinct("status", {"village_code": village})) == sorted(expected))
    in_village = len(oracle.find(truth, {"village_code": VILLAGES[1]}))
    for skip, limit in ((3, 5), (3, None), (None, 5), (in_village, None), (in_village + 2, 4)):
        options: dict[str, Any] = {k: v for k, v in (("skip", skip), ("limit", limit)) if v is not None}
        assert db.indexed.count_documents({"village_code": VILLAGES[1]}, **options) == \
            min(limit or in_village, max(0, in_village - (skip or 0)))
    assert db.indexed.count_documents({"village_code": "none"}) == 0
    assert db.never_created.count_documents({}) == db.never_created.count_documents({"x": 1}) == 0
