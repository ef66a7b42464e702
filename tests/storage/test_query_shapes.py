"""Each query and update shape the services send, with its results and order (as MongoDB gives them).

The shapes come from ``services/*/src`` and ``shared/src`` (listed in docs/storage-conformance.md);
filters over secondary indexes are compared with a full scan in ``test_secondary_indexes.py``.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid

from bson import Binary
from puskesos_shared.outbox import PENDING_KEY
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.database import Database

from tests.storage import oracle
from tests.storage.support import Document, Engine, observed

LIST_PROJECTION = {"assessments": 0, "commands": 0}
OUTBOX = "_outbox"


def _cases(db: Database[Document]) -> list[Document]:
    """Referral's read model: cases with the service's indexes."""
    db.cases.create_index([("village_code", ASCENDING), ("status", ASCENDING)], name="village_status")
    db.cases.create_index([("kecamatan_code", ASCENDING), ("status", ASCENDING)], name="kecamatan_status")
    db.cases.create_index([("status", ASCENDING), ("level_due_on", ASCENDING)], name="escalation")
    db.cases.create_index([("subject_nik", ASCENDING)], name="subject_nik")
    db.cases.create_index([("kk_number", ASCENDING)], name="kk_number")
    docs = []
    for i in range(240):
        closed = i % 5 == 0
        docs.append({
            "_id": str(uuid.UUID(int=i)), "village_code": f"35.09.01.200{i % 3}", "kecamatan_code": "35.09.01",
            "status": "closed" if closed else ["open", "assessed", "referred"][i % 3],
            "level": ["puskesos", "kecamatan", "dinas_sosial"][i % 4 % 3],
            "sla_due_on": (dt.date(2026, 3, 1) + dt.timedelta(days=i % 17)).isoformat(),
            "level_due_on": (dt.date(2026, 3, 1) + dt.timedelta(days=i % 23)).isoformat(),
            "filed_on": (dt.date(2026, 1, 1) + dt.timedelta(days=i % 90)).isoformat(),
            **({"closure": {"closed_on": (dt.date(2026, 2, 1) + dt.timedelta(days=i % 40)).isoformat()}}
               if closed else {}),
            "subject_nik": f"35090112345600{i % 30:02d}", "kk_number": f"35090100000000{i % 40:02d}",
            "assessments": [{"n": i}], "commands": ["c"], "version": 1 + i % 4,
        })
    db.cases.insert_many(docs)
    return docs


def test_referral_case_list_pages(db: Database[Document]) -> None:
    """count + find(projection).sort(sla_due_on, _id).skip.limit: pages concatenate to the whole list."""
    docs = _cases(db)
    for query in ({"village_code": "35.09.01.2001", "status": {"$ne": "closed"}},
                  {"kecamatan_code": "35.09.01", "status": "closed"},
                  {"village_code": "35.09.01.2002", "status": {"$ne": "closed"}, "sla_due_on": {"$lt": "2026-03-05"}},
                  {"kecamatan_code": "35.09.01", "status": {"$ne": "closed"},
                   "sla_due_on": {"$gte": "2026-03-05", "$lte": "2026-03-09"}},
                  {"village_code": "35.09.01.2000", "status": {"$ne": "closed"}, "sla_due_on": {"$gt": "2026-03-09"}}):
        expected = oracle.find(docs, query, [("sla_due_on", 1), ("_id", 1)])
        assert db.cases.count_documents(query) == len(expected)
        pages = []
        for skip in range(0, len(expected) + 7, 7):
            page = list(db.cases.find(query, LIST_PROJECTION).sort([("sla_due_on", ASCENDING), ("_id", ASCENDING)])
                        .skip(skip).limit(7))
            assert all("assessments" not in d and "commands" not in d and "status" in d for d in page)
            pages.extend(page)
        assert [d["_id"] for d in pages] == [d["_id"] for d in expected]


def test_referral_summary_or_with_dotted_window(db: Database[Document]) -> None:
    docs = _cases(db)
    window = {"$gte": "2026-02-01", "$lt": "2026-03-01"}
    query = {"village_code": "35.09.01.2001", "$or": [{"status": {"$ne": "closed"}}, {"filed_on": window},
                                                      {"closure.closed_on": window}]}
    found = sorted(d["_id"] for d in db.cases.find(query, LIST_PROJECTION))
    assert found == sorted(d["_id"] for d in oracle.find(docs, query))
    assert any(d["status"] == "closed" for d in oracle.find(docs, query))


def test_escalation_sweep(db: Database[Document]) -> None:
    docs = _cases(db)
    query = {"status": {"$ne": "closed"}, "level": {"$ne": "dinas_sosial"}, "level_due_on": {"$lt": "2026-03-10"}}
    found = [d["_id"] for d in db.cases.find(query).sort("level_due_on", ASCENDING).limit(25)]
    expected = oracle.find(docs, query, [("level_due_on", 1)])
    assert len(found) == 25
    # ties on level_due_on may come in any order (as on MongoDB): compare the due dates and membership
    due = {d["_id"]: d["level_due_on"] for d in docs}
    assert [due[i] for i in found] == [d["level_due_on"] for d in expected[:25]]
    cutoff = expected[24]["level_due_on"]
    assert {d["_id"] for d in expected if d["level_due_on"] < cutoff} <= set(found)


def test_cases_concerning_a_resident(db: Database[Document]) -> None:
    docs = _cases(db)
    query = {"$or": [{"subject_nik": "3509011234560007"},
                     {"kk_number": {"$in": ["3509010000000003", "3509010000000011"]}}]}
    assert sorted(d["_id"] for d in db.cases.find(query)) == sorted(d["_id"] for d in oracle.find(docs, query))


def test_households_by_member_nik_multikey(db: Database[Document]) -> None:
    db.households.create_index([("niks", ASCENDING)], name="member_niks")
    db.households.insert_many([{"_id": "kk3", "niks": ["n1", "n2"]}, {"_id": "kk1", "niks": ["n2"]},
                               {"_id": "kk2", "niks": []}, {"_id": "kk4", "niks": "n2"}, {"_id": "kk5"}])
    assert [d["_id"] for d in db.households.find({"niks": "n2"}).sort("_id", ASCENDING)] == ["kk1", "kk3", "kk4"]
    assert list(db.households.find({"niks": "n1"}, {"_id": 1})) == [{"_id": "kk3"}]
    assert [d["_id"] for d in db.households.find({"niks": []})] == ["kk2"]
    db.households.update_one({"_id": "kk3"}, {"$set": {"niks": ["n1"]}})
    assert [d["_id"] for d in db.households.find({"niks": "n2"}).sort("_id", ASCENDING)] == ["kk1", "kk4"]


def test_latest_by_sorted_find_one(db: Database[Document]) -> None:
    """Rule sets (name, version desc) and referral numbers (village, year, seq desc): find_one with a sort."""
    db.rule_sets.create_index([("name", ASCENDING), ("version", DESCENDING)], unique=True, name="name_version")
    db.rule_sets.insert_many([{"_id": f"r@{v}", "name": "r", "version": v, "document": {"v": v}}
                              for v in (3, 10, 1, 2)] + [{"_id": "s@99", "name": "s", "version": 99, "document": {}}])
    latest = db.rule_sets.find_one({"name": "r"}, sort=[("version", DESCENDING)])
    assert latest is not None and latest["_id"] == "r@10"
    index = list(db.rule_sets.find({"name": "r"}, {"document": 0}).sort("version", DESCENDING))
    assert index == [{"_id": f"r@{v}", "name": "r", "version": v} for v in (10, 3, 2, 1)]
    db.numbers.create_index([("village_code", 1), ("year", 1), ("seq", -1)], name="village_year_seq")
    db.numbers.insert_many([{"_id": f"RJK/01/{y}/{s:05d}", "village_code": "v", "year": y, "seq": s}
                            for y in (2025, 2026) for s in (1, 2, 9, 3)])
    assert db.numbers.find_one({"village_code": "v", "year": 2026}, {"seq": 1}, sort=[("seq", DESCENDING)]) == \
        {"_id": "RJK/01/2026/00009", "seq": 9}
    assert db.numbers.find_one({"village_code": "w", "year": 2026}, sort=[("seq", DESCENDING)]) is None


def _outbox(db: Database[Document], doc_id: str) -> list[Document]:
    doc = db.rounds.find_one({"_id": doc_id})
    assert doc is not None
    return list(doc[OUTBOX])


def test_outbox_scan_push_and_pull_all(db: Database[Document], engine: Engine) -> None:
    """shared.outbox: documents with entries waiting ({_outbox.0.event_id: {$exists}}, served by the relay's
    sparse index), $push under a guard, $pullAll of exactly the published entries (whole-element match,
    key order included)."""
    db.rounds.create_index([(PENDING_KEY, ASCENDING)], sparse=True, name="outbox_pending")  # OutboxRelay's
    e1 = {"event_id": "1", "subject": "a", "body": "{}", "headers": {"Nats-Msg-Id": "1"}, "event_type": "X"}
    e2 = {"event_id": "2", "subject": "b", "body": "{}", "headers": {"Nats-Msg-Id": "2"}, "event_type": "Y"}
    db.rounds.insert_many([{"_id": "r1", "status": "open", OUTBOX: [e1, e2]}, {"_id": "r2", "status": "open",
                                                                                 OUTBOX: []},
                           {"_id": "r3", "status": "closed"}])
    waiting = list(db.rounds.find({PENDING_KEY: {"$exists": True}}, {OUTBOX: 1}))
    assert waiting == [{"_id": "r1", OUTBOX: [e1, e2]}]
    reordered = {"event_id": "1", "body": "{}", "subject": "a", "headers": {"Nats-Msg-Id": "1"}, "event_type": "X"}
    db.rounds.update_one({"_id": "r1"}, {"$pullAll": {OUTBOX: [reordered]}})  # other key order: not equal in BSON
    if engine.is_mongo_java_server:  # compares embedded documents regardless of field order
        assert _outbox(db, "r1") == [e2]
        observed("field-order")
    else:
        assert _outbox(db, "r1") == [e1, e2]
    db.rounds.update_one({"_id": "r1"}, {"$pullAll": {OUTBOX: [e1]}})
    assert _outbox(db, "r1") == [e2]
    result = db.rounds.update_one({"_id": "r2", "status": {"$ne": "closed"}},
                                  {"$set": {"status": "closed", "closed": {"n": 1}}, "$push": {OUTBOX: e1}})
    assert result.modified_count == 1
    assert db.rounds.update_one({"_id": "r3", "status": {"$ne": "closed"}},
                                {"$set": {"status": "closed"}, "$push": {OUTBOX: e1}}).matched_count == 0
    assert sorted(d["_id"] for d in db.rounds.find({PENDING_KEY: {"$exists": True}})) == ["r1", "r2"]
    db.rounds.update_one({"_id": "r1"}, {"$pullAll": {OUTBOX: [e2]}})
    assert [d["_id"] for d in db.rounds.find({PENDING_KEY: {"$exists": True}})] == ["r2"]
    db.rounds.update_one({"_id": "r2"}, {"$set": {OUTBOX: []}})  # intake's bulk import clears a confirmed outbox
    assert list(db.rounds.find({PENDING_KEY: {"$exists": True}})) == []


def test_upsert_operators(db: Database[Document]) -> None:
    """$max upsert (case counters), $setOnInsert, $set upsert, replace_one upsert, guarded delete."""
    for last in (3, 7, 5):
        db.counters.update_one({"_id": "vy"}, {"$max": {"last": last}}, upsert=True)
    assert db.counters.find_one({"_id": "vy"}) == {"_id": "vy", "last": 7}
    for n in (1, 2):
        db.counters.update_one({"_id": "s"}, {"$setOnInsert": {"first": n}, "$inc": {"n": 1}}, upsert=True)
    assert db.counters.find_one({"_id": "s"}) == {"_id": "s", "first": 1, "n": 2}
    db.views.replace_one({"_id": "0001/2026/00001"}, {"status": "filed", "n": 1}, upsert=True)
    db.views.replace_one({"_id": "0001/2026/00001"}, {"status": "closed", "n": 2}, upsert=True)
    assert db.views.find_one({"_id": "0001/2026/00001"}) == {"_id": "0001/2026/00001", "status": "closed", "n": 2}
    db.members.insert_many([{"_id": "m1", "kk": "a"}, {"_id": "m2", "kk": "b"}])
    assert db.members.delete_one({"_id": "m1", "kk": "b"}).deleted_count == 0
    assert db.members.delete_one({"_id": "m1", "kk": "a"}).deleted_count == 1
    db.members.update_one({"_id": "m3"}, {"$set": {"kk": "c", "revision": 2}}, upsert=True)
    assert db.members.find_one({"_id": "m3"}) == {"_id": "m3", "kk": "c", "revision": 2}


def test_find_one_and_update_returns_before_and_after(db: Database[Document]) -> None:
    db.deliveries.insert_one({"_id": "n1", "state": "pending", OUTBOX: []})
    after = db.deliveries.find_one_and_update({"_id": "n1", "state": "pending"},
                                              {"$set": {"state": "sent", OUTBOX: [{"e": 1}]}},
                                              return_document=ReturnDocument.AFTER)
    assert after == {"_id": "n1", "state": "sent", OUTBOX: [{"e": 1}]}
    assert db.deliveries.find_one_and_update({"_id": "n1", "state": "pending"}, {"$set": {"state": "x"}}) is None
    before = db.deliveries.find_one_and_update({"_id": "n1"}, {"$set": {"state": "failed"}}, {"state": 1})
    assert before == {"_id": "n1", "state": "sent"}


def test_point_reads_in_and_regex(db: Database[Document]) -> None:
    """Distribution: _id $in batches, a field $in with projection, _id suffix regex; audit: find_one projections."""
    db.slots.create_index([("round_id", 1), ("scope", 1), ("number", 1)], unique=True)
    db.slots.insert_many([{"_id": f"a{i}:budget", "round_id": f"r{i % 3}", "scope": "budget", "number": i,
                           "extra": "x"} for i in range(300)])
    ids = [f"a{i}:budget" for i in range(0, 300, 11)] + ["missing"]
    assert sorted(d["_id"] for d in db.slots.find({"_id": {"$in": ids}})) == sorted(ids[:-1])
    found = list(db.slots.find({"round_id": {"$in": ["r1", "r2"]}}, {"round_id": 1, "scope": 1, "number": 1}))
    assert len(found) == 200 and all(set(d) == {"_id", "round_id", "scope", "number"} for d in found)
    db.rows.insert_many([{"_id": f"b{i}:kk{i % 4}"} for i in range(12)] + [{"_id": "b1:kk1x"}])
    kk = "kk1"
    assert sorted(d["_id"] for d in db.rows.find({"_id": {"$regex": f":{re.escape(kk)}$"}})) == \
        ["b1:kk1", "b5:kk1", "b9:kk1"]
    assert db.slots.find_one({"_id": "a7:budget"}, {"_id": 1}) == {"_id": "a7:budget"}
    assert db.slots.find_one({"_id": "nope"}, {"_id": 1}) is None


def test_dotted_projection_and_nested_filters(db: Database[Document]) -> None:
    db.rounds.insert_many([{"_id": "r1", "config": {"name": "BLT", "program": "blt", "budget": 9}, "status": "open"},
                           {"_id": "r2", "status": "draft"}])
    found = list(db.rounds.find({}, {"config.name": 1, "config.program": 1, "status": 1}).sort("_id", 1))
    assert found == [{"_id": "r1", "config": {"name": "BLT", "program": "blt"}, "status": "open"},
                     {"_id": "r2", "status": "draft"}]
    db.deliveries.create_index([("recipient.id", 1)], name="by_recipient")
    db.deliveries.insert_many([{"_id": i, "recipient": {"id": f"kk:{i % 3}"}, "created_at": 100 - i}
                               for i in range(9)])
    got = [d["_id"] for d in db.deliveries.find({"recipient.id": {"$in": ["kk:1", "kk:2"]}}).sort("created_at", 1)]
    assert got == [8, 7, 5, 4, 2, 1]


def test_embedded_document_equality_and_field_order(db: Database[Document]) -> None:
    """MongoDB compares embedded documents as BSON: the same fields in another order are another value
    (the engine agrees in filters; for $pullAll see test_outbox_scan_push_and_pull_all)."""
    db.e.insert_many([{"_id": 1, "closed": {"n": 1, "on": "2026-01-02"}}, {"_id": 2, "closed": {"on": "2026-01-02",
                                                                                              "n": 1}}])
    assert [d["_id"] for d in db.e.find({"closed": {"n": 1, "on": "2026-01-02"}})] == [1]
    assert [d["_id"] for d in db.e.find({"closed": {"$in": [{"on": "2026-01-02", "n": 1}]}})] == [2]
    assert [d["_id"] for d in db.e.find({"closed.n": 1}).sort("_id", 1)] == [1, 2]


def test_values_round_trip(db: Database[Document]) -> None:
    """tz-aware datetimes (milliseconds), Binary bodies, UUIDs (standard), nested arrays, large ints."""
    when = dt.datetime(2026, 12, 5, 10, 30, 15, 123456, tzinfo=dt.UTC)
    doc = {"_id": uuid.UUID(int=5), "at": when, "body": Binary(b"\x00\x01raw"), "n": 2**40,
           "f": 0.1, "nested": [{"a": [1, 2]}, None], "s": "ñ€"}
    db.values.insert_one(doc)
    back = db.values.find_one({"_id": uuid.UUID(int=5)})
    assert back is not None
    assert back["at"] == when.replace(microsecond=123000)
    assert back["body"] == b"\x00\x01raw" and back["n"] == 2**40 and back["f"] == 0.1
    assert back["nested"] == [{"a": [1, 2]}, None] and back["s"] == "ñ€"
    assert db.values.count_documents({"at": {"$gte": when.replace(microsecond=123000)}}) == 1
    assert db.values.count_documents({"at": {"$gt": when}}) == 0


def test_cursors_beyond_the_first_batch(db: Database[Document]) -> None:
    """The audit reader scans chunks with batch_size; sorted listings read past the 101-document first batch."""
    db.chunks.insert_many([{"_id": f"c:{i:08d}", "n": i, "pad": "x" * 200} for i in range(2500)])
    assert [d["n"] for d in db.chunks.find({}, batch_size=300)] == list(range(2500))
    assert [d["n"] for d in db.chunks.find({"n": {"$gte": 1000}}).sort("n", DESCENDING)] == \
        list(range(2499, 999, -1))
    markers = list(db.chunks.find({}).sort("n", ASCENDING).limit(5))
    assert [d["n"] for d in markers] == [0, 1, 2, 3, 4]
