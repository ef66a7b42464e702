"""Helpers of the storage conformance suite: engine detection, concurrency, known differences.

The suite runs against whatever server the fixtures resolve (``PUSKESOS_MONGO_URL``, else the
local engine). Where the engine is known to differ from MongoDB, a test detects the engine and
asserts the engine's actual behaviour, and records the difference as observed here; the
terminal summary (``conftest.py``) lists every known difference of the engine with that mark.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from pymongo import MongoClient

Document = dict[str, Any]
T = TypeVar("T")

MONGO_JAVA_SERVER = "mongo-java-server"
MONGODB = "mongodb"
FERRETDB = "ferretdb"


@dataclass(frozen=True)
class Engine:
    kind: str  # MONGO_JAVA_SERVER, MONGODB, FERRETDB
    version: str  # buildInfo's version (what the engine reports)
    detail: str  # buildInfo's engine field (our launcher) or gitVersion

    @property
    def is_mongo_java_server(self) -> bool:
        return self.kind == MONGO_JAVA_SERVER

    def describe(self) -> str:
        return f"{self.kind} (buildInfo version {self.version}{'; ' + self.detail if self.detail else ''})"


def detect_engine(client: MongoClient[Document]) -> Engine:
    """Which engine answers: our launcher names itself in buildInfo; MongoDB has a gitVersion."""
    info = client.admin.command("buildInfo")
    version = str(info.get("version", "?"))
    if "ferretdb" in " ".join(str(k).lower() for k in info) or "ferretdb" in str(info.get("version", "")).lower():
        return Engine(FERRETDB, version, "")
    if engine := info.get("engine"):
        return Engine(MONGO_JAVA_SERVER, version, str(engine))
    if git := info.get("gitVersion"):
        return Engine(MONGODB, version, f"gitVersion {git}")
    return Engine(MONGO_JAVA_SERVER, version, "no gitVersion: mongo-java-server without the launcher")


# -- known differences ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Difference:
    key: str
    title: str
    mongodb: str
    engine: str
    where: str  # what in the project it touches, and which test holds it
    fixed_by_launcher: bool = False  # stock mongo-java-server differs; our launcher makes it behave as MongoDB


KNOWN_DIFFERENCES: tuple[Difference, ...] = (
    Difference(
        "no-sessions",
        "No sessions, so no multi-document transactions",
        "start_session() and with_transaction() work on a replica set",
        "isMaster carries no logicalSessionTimeoutMinutes: PyMongo raises ConfigurationError "
        "'Sessions are not supported by this MongoDB deployment' on the first operation in a session",
        "no service uses them (guarantees rest on unique claims and idempotency); "
        "test_engine_differences.py::test_sessions_and_transactions",
    ),
    Difference(
        "no-change-streams",
        "No change streams",
        "collection.watch() opens a change stream on a replica set",
        "the aggregate with $changeStream fails with OperationFailure 'Unknown error: null'",
        "no service watches collections (events travel on NATS JetStream); "
        "test_engine_differences.py::test_change_streams",
    ),
    Difference(
        "memory-only",
        "Data lives in memory only",
        "data is durable on disk and survives a restart",
        "a restart of the engine starts empty (puskesos stack ties NATS's data to it)",
        "local stack and fixtures only; test_engine_differences.py::test_restart_starts_empty",
    ),
    Difference(
        "sorts-in-memory",
        "Sorts never use an index",
        "a sort on an index prefix is read in index order (and can stop at skip+limit)",
        "the documents the filter selects (by an index where one serves it) are sorted in memory; "
        "results and order are the same, the cost grows with the matched set",
        "referral case lists (sort sla_due_on, _id + skip/limit), intake listings (filed_at desc), "
        "the SLA sweep; not observable in results (test_query_shapes.py checks the order)",
    ),
    Difference(
        "index-shapes",
        "Secondary indexes serve equality/$in prefixes plus one range only",
        "the planner uses indexes for $ne/$nin ranges, $or branches, $exists, regex prefixes, sort-only",
        "other predicates are applied to the candidates of the best equality/$in/range prefix, "
        "or to every document when no index key has one (a scan); results are identical",
        "intake listings by scope ($or of $in) and a few rare distribution reads scan; "
        "test_secondary_indexes.py compares every shape with a scan",
    ),
    Difference(
        "wire-version",
        "Reports MongoDB 4.4 (wire version 9)",
        "a real server reports its own version",
        "the launcher reports 4.4.0 / wire 9 (the lowest PyMongo 4.x accepts); features newer "
        "than 4.4 cannot be detected from the version; the 'hello' command is unknown (drivers fall back "
        "to isMaster, as for MongoDB < 4.4.2)",
        "test_engine_differences.py::test_reported_version",
    ),
    Difference(
        "field-order",
        "$pullAll matches embedded documents without field order",
        "embedded documents are equal only with the same fields in the same order ({a, b} != {b, a}), "
        "in filters and in $pullAll's element matching",
        "filters agree with MongoDB, but $pullAll removes an element whose fields are in another order",
        "the outbox's $pullAll removes entries written with another key order too (harmless: MongoDB would "
        "leave them to be republished, deduplicated by Nats-Msg-Id); "
        "test_query_shapes.py::test_outbox_scan_push_and_pull_all",
    ),
    Difference(
        "ordered-bulk-updates",
        "Ordered bulk updates stop at the first error",
        "an ordered bulk write stops at the first write error; later operations are not applied",
        "mongo-java-server 1.47 applies every update of an ordered batch after an error; "
        "fixed in our launcher (IndexedMemoryDatabase splits ordered update batches)",
        "no service sends multi-update batches; test_bulk_writes.py::test_ordered_bulk_stops_at_first_error",
        fixed_by_launcher=True,
    ),
    Difference(
        "insert-counts",
        "nInserted after duplicate-key errors",
        "n (nInserted) counts the documents inserted; an ordered insert stops at the first error",
        "mongo-java-server 1.47 answers n = the number of documents sent, errors included; "
        "fixed in our launcher (IndexedMemoryDatabase corrects n)",
        "audit indexer and distribution store read writeErrors of unordered insert_many; "
        "test_bulk_writes.py::test_unordered_insert_many_with_duplicates",
        fixed_by_launcher=True,
    ),
    Difference(
        "torn-reads",
        "Reads see whole document states",
        "a read returns a document as one write left it, never half of a concurrent update",
        "mongo-java-server 1.47 encodes the stored documents (query results, findAndModify's value) after "
        "releasing the collection's lock, so a concurrent in-place update shows through (a reader saw "
        "a != b after {$inc: {a: 1, b: 1}}; two $inc callers got the same post-image); fixed in our "
        "launcher (IndexedMemoryCollection copies them under the lock)",
        "every read and every find_one_and_update return value; test_atomic_updates.py::"
        "test_reads_never_see_half_an_update and ::test_find_one_and_update_inc_loses_nothing",
        fixed_by_launcher=True,
    ),
)

_observed: set[str] = set()


def observed(key: str) -> None:
    """Marks a known difference as seen in this run (called where a test asserts the engine's behaviour)."""
    if key not in {d.key for d in KNOWN_DIFFERENCES}:
        raise KeyError(f"unknown difference {key!r}: add it to KNOWN_DIFFERENCES and docs/storage-conformance.md")
    _observed.add(key)


def observed_keys() -> frozenset[str]:
    return frozenset(_observed)


# -- concurrency ----------------------------------------------------------------------------------
def new_client(url: str, *, pool: int = 4) -> MongoClient[Document]:
    return MongoClient(url, tz_aware=True, uuidRepresentation="standard", serverSelectionTimeoutMS=5000,
                       maxPoolSize=pool)


@contextmanager
def clients(url: str, n: int) -> Iterator[list[MongoClient[Document]]]:
    """``n`` separate clients (each its own connection pool), connected before use."""
    made = [new_client(url) for _ in range(n)]
    try:
        for client in made:
            client.admin.command("ping")
        yield made
    finally:
        for client in made:
            client.close()


def run_concurrently(url: str, workers: int, work: Callable[[MongoClient[Document], int], T]) -> list[T]:
    """Runs ``work(client, i)`` on ``workers`` threads with a client each, released together by a barrier."""
    barrier = threading.Barrier(workers)

    def start(client: MongoClient[Document], i: int) -> T:
        barrier.wait()
        return work(client, i)

    with clients(url, workers) as made, ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(start, client, i) for i, client in enumerate(made)]
        return [f.result() for f in futures]
