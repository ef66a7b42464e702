"""Audit benchmark: verify the hash chain of 1,000,000 logged events.

    uv run python bench/audit_verify.py [--events 1000000] [--chunk 512]

Writes the log straight into an audit database with the appender's own pure functions
(``make_record`` / ``chunk_document``, the same chunking the appender does under load: a fetch of
up to 1,024 messages becomes one chunk), with realistic bodies (the sample flow's contract events,
each with its own event id) and a signed checkpoint every 10,000 records. Then runs the
verification an auditor runs (``audit verify``: every chunk fetched by point lookup, every
record re-hashed and chained, checkpoints compared), twice, and once more after one record
was altered, to show it is pinpointed. Uses PUSKESOS_MONGO_URL or starts FerretDB locally.
Target (BRIEF §6): 100,000 events/s or better.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import itertools
import json
import os
import random
import re
import tempfile
import time
import uuid
from pathlib import Path

from puskesos_audit.chain import (
    GENESIS,
    Record,
    canonical_headers,
    chunk_document,
    chunk_records,
    make_record,
    rebuild_chunk,
)
from puskesos_audit.checkpoints import new_checkpoint, to_document
from puskesos_audit.reader import LogReader, verify_log
from puskesos_audit.samples import build_flow
from puskesos_audit.verify import ChainVerifier
from puskesos_shared.messaging import event_headers
from puskesos_shared.testing.servers import resolve_mongo
from pymongo import MongoClient

ROOT = Path(__file__).resolve().parents[1]
RULE_SET = json.loads((ROOT / "services/audit/tests/data/rules/assessment@1.json").read_text())
KEY = b"bench-audit-checkpoint-key-0123456789abcdef"
UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def templates(flows: int = 50) -> list[tuple[str, bytes, dict[str, str], str]]:
    out = []
    for seed in range(flows):
        for event in build_flow(seed, RULE_SET).events:
            producer, name, version = event.subject_parts()
            out.append((f"puskesos.events.{producer}.{name}.v{version}", event.model_dump_json().encode(),
                        event_headers(event), str(event.event_id)))
    return out


def generate(db: object, events: int, chunk: int) -> float:
    started = time.perf_counter()
    tpl = templates()
    rng = random.Random(7)
    prev, pending, number, seq0 = GENESIS, [], 0, time.time_ns()
    records: list[Record] = []
    fresh: dict[bytes, bytes] = {}
    for seq in range(1, events + 1):
        subject, body, headers, _ = tpl[seq % len(tpl)]
        if seq % len(tpl) == 0:
            fresh.clear()  # every id of the next copy of the sample flows is new: no unrealistic repetition

        def new(match: re.Match[bytes]) -> bytes:
            return fresh.setdefault(match.group(0), str(uuid.UUID(int=rng.getrandbits(128))).encode())

        r = make_record(seq=seq, ts=seq0 + seq * 1000 + rng.randrange(1000), subject=subject,
                        headers=UUID.sub(new, canonical_headers(headers)), body=UUID.sub(new, body), prev=prev)
        prev = r.hash
        records.append(r)
        if len(records) == chunk or seq == events:
            doc = chunk_document(number, records, written_at=dt.datetime.now(dt.UTC))
            doc["total"] = seq
            pending.append(doc)
            number += 1
            records = []
        if seq % 10_000 == 0 or seq == events:
            cp = new_checkpoint(seq=seq, hash_=prev, chunk=number - 1 if not records else number, records=seq,
                                stream="PUSKESOS_EVENTS", now=dt.datetime.now(dt.UTC), key=KEY)
            db["checkpoints"].insert_one(to_document(cp))  # type: ignore[index]
        if len(pending) == 8 or seq == events:
            db["chunks"].insert_many(pending)  # type: ignore[index]
            pending = []
    db["meta"].insert_one({"_id": "head", "chunk": number - 1, "seq": events, "hash": prev})  # type: ignore[index]
    return time.perf_counter() - started


def main() -> None:
    print(f"load average before the run: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (2 cores, shared)")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=1024, help="records per chunk (the appender's fetch size)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        mongo = resolve_mongo(Path(tmp))
        client: MongoClient[dict[str, object]] = MongoClient(mongo.url, tz_aware=True)
        name = f"bench_audit_verify_{uuid.uuid4().hex[:8]}"
        try:
            db = client[name]
            seconds = generate(db, args.events, args.chunk)
            chunks = db["chunks"].estimated_document_count()
            print(f"generated {args.events:,} events in {chunks:,} chunks in {seconds:.1f} s "
                  f"({args.events / seconds:,.0f} events/s; mongo: {mongo.origin} {mongo.url})")
            reader = LogReader(db)
            for run in (1, 2):
                report = verify_log(reader, key=KEY)
                assert report.ok, report.findings[:5]
                print(f"verify run {run}: {report.records:,} events in {report.seconds:.2f} s = "
                      f"{report.records_per_second:,.0f} events/s ({report.checkpoints_checked} checkpoints matched)")
            # where the time goes: the storage's read rate alone, and the verifier alone (chunks in memory)
            started = time.perf_counter()
            read = sum(int(d["count"]) for _, d in reader.chunks() if d is not None)
            fetch_rate = read / (time.perf_counter() - started)
            docs = [doc for _, doc in itertools.islice(reader.chunks(), 200)]
            fetched = sum(int(d["count"]) for d in docs if d is not None)
            started = time.perf_counter()
            engine = ChainVerifier(from_start=True)
            for doc in docs:
                engine.feed(doc)  # type: ignore[arg-type]
            engine_rate = fetched / (time.perf_counter() - started)
            size = sum(len(d["blob"]) for d in docs if d is not None) / fetched
            print(f"read only: {fetch_rate:,.0f} events/s from the database ({size:.0f} stored bytes per event); "
                  f"verifier only (chunks in memory): {engine_rate:,.0f} events/s")
            middle = db["chunks"].find_one({"_id": f"c:{chunks // 2:010d}"})
            assert middle is not None
            records = chunk_records(middle)
            victim = records[100]
            records[100] = dataclasses.replace(victim, body=victim.body + b" ")  # stored hashes left as they were
            db["chunks"].replace_one({"_id": middle["_id"]}, {**rebuild_chunk(middle, records),
                                                              "total": middle.get("total")})
            ranged = verify_log(reader, from_seq=victim.seq - 5000, to_seq=victim.seq + 5000, key=KEY)
            failures = [f"{f.kind} at {f.seq}" for f in ranged.findings if f.failure]
            print(f"after altering record {victim.seq} (stored hashes kept): range verify "
                  f"{victim.seq - 5000}..{victim.seq + 5000} checked {ranged.records:,} records in "
                  f"{ranged.seconds * 1000:.0f} ms, ok={ranged.ok}, findings={failures}")
        finally:
            client.drop_database(name)
            client.close()
            mongo.close()


if __name__ == "__main__":
    main()
