"""Unique indexes: one winner under racing inserts, E11000 from every write path, missing fields as MongoDB."""

from __future__ import annotations

import datetime as dt

import pytest
from pymongo import ASCENDING, DESCENDING, InsertOne, MongoClient, ReplaceOne, ReturnDocument, UpdateOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure

from tests.storage.support import Document, run_concurrently

DUPLICATE_KEY = 11000


def test_one_of_eight_concurrent_inserts_wins(db: Database[Document], mongo_url: str) -> None:
    """A unique key (not ``_id``: the referral case_version claim) raced by 8 clients, 150 times."""
    db.claims.create_index([("case_id", ASCENDING), ("version", DESCENDING)], unique=True, name="case_version")
    name = db.name
    trials = 150

    def work(client: MongoClient[Document], i: int) -> list[int]:
        coll = client[name].claims
        won = []
        for trial in range(trials):
            try:
                coll.insert_one({"case_id": f"case-{trial}", "version": 1, "by": i})
                won.append(trial)
            except DuplicateKeyError as exc:
                assert exc.code == DUPLICATE_KEY
        return won

    results = run_concurrently(mongo_url, 8, work)
    assert sorted(t for won in results for t in won) == list(range(trials))
    assert db.claims.count_documents({}) == trials


def test_one_of_eight_concurrent_id_inserts_wins(db: Database[Document], mongo_url: str) -> None:
    name = db.name
    trials = 150

    def work(client: MongoClient[Document], i: int) -> int:
        coll = client[name].numbers
        won = 0
        for trial in range(trials):
            try:
                coll.insert_one({"_id": f"RJK/01/2026/{trial:05d}", "by": i})
                won += 1
            except DuplicateKeyError:
                pass
        return won

    assert sum(run_concurrently(mongo_url, 8, work)) == trials
    assert db.numbers.count_documents({}) == trials


def _two_docs(db: Database[Document]) -> None:
    db.u.create_index("case_number", unique=True)
    db.u.insert_many([{"_id": 1, "case_number": "A"}, {"_id": 2, "case_number": "B"}])


def test_update_into_a_unique_conflict_raises_e11000(db: Database[Document]) -> None:
    _two_docs(db)
    with pytest.raises(DuplicateKeyError) as update_one:
        db.u.update_one({"_id": 2}, {"$set": {"case_number": "A"}})
    assert update_one.value.code == DUPLICATE_KEY
    with pytest.raises(DuplicateKeyError) as update_many:
        db.u.update_many({"_id": {"$gte": 2}}, {"$set": {"case_number": "A"}})
    assert update_many.value.code == DUPLICATE_KEY
    with pytest.raises(DuplicateKeyError) as replace:
        db.u.replace_one({"_id": 2}, {"case_number": "A"})
    assert replace.value.code == DUPLICATE_KEY
    with pytest.raises(DuplicateKeyError) as find_and_modify:
        db.u.find_one_and_update({"_id": 2}, {"$set": {"case_number": "A"}}, return_document=ReturnDocument.AFTER)
    assert find_and_modify.value.code == DUPLICATE_KEY
    with pytest.raises(DuplicateKeyError) as upsert:
        db.u.update_one({"_id": 3}, {"$set": {"case_number": "B"}}, upsert=True)
    assert upsert.value.code == DUPLICATE_KEY
    assert list(db.u.find().sort("_id", 1)) == [{"_id": 1, "case_number": "A"}, {"_id": 2, "case_number": "B"}]


def test_e11000_through_bulk_writes(db: Database[Document]) -> None:
    _two_docs(db)
    with pytest.raises(BulkWriteError) as caught:
        db.u.bulk_write([UpdateOne({"_id": 2}, {"$set": {"case_number": "A"}}),
                         InsertOne({"_id": 3, "case_number": "C"}),
                         ReplaceOne({"_id": 1}, {"case_number": "B"}),
                         InsertOne({"_id": 4, "case_number": "C"})], ordered=False)
    details = caught.value.details
    assert [(e["index"], e["code"]) for e in details["writeErrors"]] == [(0, 11000), (2, 11000), (3, 11000)]
    assert details["nInserted"] == 1
    assert details["nMatched"] == 0 and details["nModified"] == 0
    assert sorted(d["case_number"] for d in db.u.find()) == ["A", "B", "C"]


def test_stale_guarded_upsert_raises_e11000(db: Database[Document]) -> None:
    """``{_id, revision: {$lte: r}}`` upsert when a newer revision is stored: E11000 on ``_id`` (notification)."""
    db.households.insert_one({"_id": "kk", "revision": 5})
    with pytest.raises(DuplicateKeyError):
        db.households.update_one({"_id": "kk", "revision": {"$lte": 4}}, {"$set": {"revision": 4}}, upsert=True)
    db.households.update_one({"_id": "kk", "revision": {"$lte": 6}}, {"$set": {"revision": 6}}, upsert=True)
    assert db.households.find_one({"_id": "kk"}) == {"_id": "kk", "revision": 6}


def test_non_sparse_unique_admits_one_missing(db: Database[Document]) -> None:
    """MongoDB indexes a missing field as null: one document without it (or with null), never two."""
    db.m.create_index("referral_id", unique=True)
    db.m.insert_one({"_id": 1})
    with pytest.raises(DuplicateKeyError):
        db.m.insert_one({"_id": 2})
    with pytest.raises(DuplicateKeyError):
        db.m.insert_one({"_id": 3, "referral_id": None})
    db.m.insert_one({"_id": 4, "referral_id": "r1"})
    with pytest.raises(DuplicateKeyError):  # unsetting the field into a second "missing"
        db.m.update_one({"_id": 4}, {"$unset": {"referral_id": ""}})
    assert db.m.count_documents({"referral_id": None}) == 1
    assert db.m.count_documents({"referral_id": {"$exists": False}}) == 1


def test_sparse_unique_admits_many_missing(db: Database[Document]) -> None:
    db.s.create_index("referral_id", unique=True, sparse=True)
    db.s.insert_many([{"_id": 1}, {"_id": 2}, {"_id": 3}])
    db.s.insert_one({"_id": 4, "referral_id": "r1"})
    with pytest.raises(DuplicateKeyError):
        db.s.insert_one({"_id": 5, "referral_id": "r1"})
    db.s.insert_one({"_id": 6, "referral_id": None})  # null is indexed: one null
    with pytest.raises(DuplicateKeyError):
        db.s.insert_one({"_id": 7, "referral_id": None})
    db.s.update_one({"_id": 4}, {"$unset": {"referral_id": ""}})
    db.s.insert_one({"_id": 8, "referral_id": "r1"})
    assert db.s.count_documents({"referral_id": {"$exists": False}}) == 4


def test_compound_unique_missing_parts(db: Database[Document]) -> None:
    """A compound unique index: documents missing one part still collide on the whole key (as null)."""
    db.c.create_index([("round_id", ASCENDING), ("scope", ASCENDING), ("number", ASCENDING)], unique=True)
    db.c.insert_many([{"_id": 1, "round_id": "r", "scope": "s", "number": 1},
                      {"_id": 2, "round_id": "r", "scope": "s", "number": 2},
                      {"_id": 3, "round_id": "r", "scope": "s"}])
    with pytest.raises(DuplicateKeyError):
        db.c.insert_one({"_id": 4, "round_id": "r", "scope": "s", "number": None})
    db.c.insert_one({"_id": 5, "round_id": "r", "scope": "t"})
    with pytest.raises(DuplicateKeyError):
        db.c.insert_one({"_id": 6, "round_id": "r", "scope": "s", "number": 1})


def test_unique_keys_compare_numbers_by_value(db: Database[Document]) -> None:
    """1, 1.0 (and Int64 1) are one key in MongoDB; distinct types of other values are distinct keys."""
    db.n.create_index("seq", unique=True)
    db.n.insert_one({"_id": 1, "seq": 1})
    with pytest.raises(DuplicateKeyError):
        db.n.insert_one({"_id": 2, "seq": 1.0})
    db.n.insert_one({"_id": 3, "seq": "1"})
    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    db.n.insert_one({"_id": 4, "seq": when})
    with pytest.raises(DuplicateKeyError):
        db.n.insert_one({"_id": 5, "seq": when})
    assert db.n.count_documents({}) == 3


def test_unique_index_on_duplicates_fails_to_build(db: Database[Document]) -> None:
    db.d.insert_many([{"_id": 1, "k": "x"}, {"_id": 2, "k": "x"}])
    with pytest.raises(OperationFailure) as caught:
        db.d.create_index("k", unique=True)
    assert caught.value.code == DUPLICATE_KEY
    assert "k_1" not in db.d.index_information()


def test_array_values_are_unique_keys_each(db: Database[Document]) -> None:
    """A unique index on an array field indexes each element: two documents cannot share one element."""
    db.a.create_index("niks", unique=True)
    db.a.insert_one({"_id": 1, "niks": ["n1", "n2"]})
    with pytest.raises(DuplicateKeyError):
        db.a.insert_one({"_id": 2, "niks": ["n3", "n2"]})
    db.a.insert_one({"_id": 3, "niks": ["n3"]})
    assert db.a.find_one({"niks": "n2"}, {"_id": 1}) == {"_id": 1}
