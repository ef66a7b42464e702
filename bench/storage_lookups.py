"""Lookups as a collection grows: 1k -> 10k -> 100k documents on the resolved Mongo engine.

    uv run python bench/storage_lookups.py [--sizes 1000,10000,100000] [--ops 2000] [--heap 2g]

Starts the local engine (or uses PUSKESOS_MONGO_URL) and grows one collection of case-like
documents (~600 bytes: a unique ``case_number``, a ``(village_code, status)`` index, a non-unique
``kk`` index with 2 documents per value, a multikey ``niks``). At each size it measures, one
request at a time with plain PyMongo, ``--ops`` random:

* ``find_one({_id})``, ``find_one({case_number})`` (unique index), ``find({kk})`` (secondary index,
  2 documents), ``update_one({_id}, {$inc})``, ``count_documents({village_code, status})`` (secondary
  index; the count grows with the collection: size / 200 documents);
* the floor: a ``ping`` command's round trip in the same run, on the same connection.

Prints p50/p95/p99 in milliseconds and each p50 as a multiple of the ping's, plus the machine's
load average. Lookups that stay flat from 1k to 100k are served by an index; one that grows with
the size scans. (Semantics are proven by tests/storage; this only measures.)
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from puskesos_shared.testing.servers import resolve_mongo
from pymongo import ASCENDING, MongoClient
from pymongo.collection import Collection

Document = dict[str, Any]
VILLAGES = [f"35.09.{d:02d}.{2000 + v}" for d in range(1, 11) for v in range(1, 6)]  # 50 villages
STATUSES = ["open", "assessed", "referred", "closed"]


def case(i: int) -> Document:
    return {"_id": f"case-{i:08d}", "case_number": f"{VILLAGES[i % 50].replace('.', '')}/2026/{i:06d}",
            "village_code": VILLAGES[i % 50], "status": STATUSES[i // 50 % 4], "kk": f"kk{i // 2:08d}",
            "niks": [f"35{i:014d}", f"36{i:014d}"], "sla_due_on": f"2026-03-{1 + i % 28:02d}", "version": 1,
            "summary": "x" * 400}


def grow(coll: Collection[Document], start: int, end: int) -> None:
    for lo in range(start, end, 5000):
        coll.insert_many([case(i) for i in range(lo, min(end, lo + 5000))], ordered=False)


def timed(op: Callable[[int], object], ops: int, size: int, rng: random.Random) -> list[float]:
    samples = []
    for _ in range(ops):
        i = rng.randrange(size)
        t0 = time.perf_counter()
        op(i)
        samples.append((time.perf_counter() - t0) * 1000)
    return samples


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(samples, n=100)
    return statistics.median(samples), q[94], q[98]


def measure(coll: Collection[Document], client: MongoClient[Document], size: int, ops: int
            ) -> dict[str, tuple[float, float, float]]:
    rng = random.Random(size)
    operations: dict[str, Callable[[int], object]] = {
        "ping (floor)": lambda i: client.admin.command("ping"),
        "find_one by _id": lambda i: coll.find_one({"_id": f"case-{i:08d}"}),
        "find_one by unique key": lambda i: coll.find_one({"case_number": case(i)["case_number"]}),
        "find by secondary index (2 docs)": lambda i: list(coll.find({"kk": f"kk{i // 2:08d}"})),
        "update_one by _id ($inc)": lambda i: coll.update_one({"_id": f"case-{i:08d}"}, {"$inc": {"version": 1}}),
        f"count by secondary index ({size // 200:,} docs)": lambda i: coll.count_documents(
            {"village_code": VILLAGES[i % 50], "status": STATUSES[i % 4]}),
    }
    for op in operations.values():  # warm-up: JIT and connection
        timed(op, 200, size, rng)
    return {name: percentiles(timed(op, ops, size, rng)) for name, op in operations.items()}


def report(size: int, figures: dict[str, tuple[float, float, float]]) -> None:
    floor = figures["ping (floor)"][0]
    print(f"\n{size:,} documents")
    print(f"  {'operation':<42} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'p50 / ping':>11}")
    for name, (p50, p95, p99) in figures.items():
        print(f"  {name:<42} {p50:8.3f} {p95:8.3f} {p99:8.3f} {p50 / floor:10.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--heap", default="2g")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    with tempfile.TemporaryDirectory(prefix="storage-bench-") as tmp:
        mongo = resolve_mongo(Path(tmp), heap=args.heap)
        client: MongoClient[Document] = MongoClient(mongo.url, maxPoolSize=1)
        try:
            info = client.admin.command("buildInfo")
            print(f"engine: {info.get('engine') or 'MongoDB ' + str(info.get('version'))} "
                  f"(buildInfo version {info.get('version')}; {mongo.origin} server)")
            db_name = f"storage_bench_{os.getpid()}"
            coll = client[db_name].cases
            coll.create_index("case_number", unique=True)
            coll.create_index([("village_code", ASCENDING), ("status", ASCENDING)])
            coll.create_index("kk")
            coll.create_index("niks")
            have = 0
            for size in sizes:
                t0 = time.perf_counter()
                grow(coll, have, size)
                print(f"\ngrew to {size:,} documents in {time.perf_counter() - t0:.1f} s")
                have = size
                report(size, measure(coll, client, size, args.ops))
            client.drop_database(db_name)
        finally:
            client.close()
            mongo.close()
    print("\nload average " + " / ".join(f"{v:.2f}" for v in os.getloadavg()) + " (1/5/15 min, 2 cores, shared)")


if __name__ == "__main__":
    main()
