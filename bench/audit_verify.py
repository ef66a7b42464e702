"""Audit benchmark: verify the hash chain of 1,000,000 logged events, against a floor.

    uv run python bench/audit_verify.py [--events 1000000] [--chunk 1024] [--heap 2g]

Writes the log straight into an audit database with the appender's own pure functions
(``make_record`` / ``chunk_document``, the same chunking the appender does under load: a fetch of
up to 1,024 messages becomes one chunk), with realistic bodies (the sample flow's contract events,
each copy with ids of its own) and a signed checkpoint every 10,000 records: the chain only, no
trace index (``bench/audit_trace.py`` builds a whole 1M-event log through the service and runs
this measurement on it too). Then runs the verification an auditor runs (``audit verify``: the
chunks read in ``_id`` order, every record re-hashed and chained, checkpoints compared), twice,
against the floor measured in the same run on the same engine: the same chunk documents read with
plain PyMongo (the same query, nothing decompressed or hashed). Once more after one record was
altered, to show it is pinpointed. Uses PUSKESOS_MONGO_URL or starts the local engine
(mongo-java-server in memory; its resident memory is printed).
Target (BRIEF §6): 100,000 events/s or better.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import random
import re
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

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
from puskesos_audit.store import CHUNKS
from puskesos_audit.verify import ChainVerifier
from puskesos_shared.messaging import event_headers
from puskesos_shared.testing.servers import ServerHandle, resolve_mongo
from pymongo import MongoClient
from pymongo.database import Database

ROOT = Path(__file__).resolve().parents[1]
RULE_SET = json.loads((ROOT / "services/audit/tests/data/rules/assessment@1.json").read_text())
KEY = b"bench-audit-checkpoint-key-0123456789abcdef"
UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def load_average() -> str:
    return "load average " + " / ".join(f"{v:.2f}" for v in os.getloadavg()) + " (1/5/15 min, 2 cores, shared)"


def engine_memory(mongo: ServerHandle) -> str:
    """The local engine's resident memory (now and peak) and its live heap after a full GC (jcmd)."""
    if mongo.process is None:
        return f"engine memory: not measured ({mongo.origin} server, not started here)"
    status = Path(f"/proc/{mongo.process.pid}/status").read_text()
    fields = {k: v.strip() for k, _, v in (line.partition(":") for line in status.splitlines())}
    out = f"engine memory: RSS {_mib(fields['VmRSS'])}, peak RSS {_mib(fields['VmHWM'])} (-Xmx{mongo.heap})"
    try:
        subprocess.run(["jcmd", str(mongo.process.pid), "GC.run"], check=True, capture_output=True, timeout=120)
        info = subprocess.run(["jcmd", str(mongo.process.pid), "GC.heap_info"], check=True, capture_output=True,
                              text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{out}; live heap not measured ({exc})"
    used = sum(int(m) for m in re.findall(r"used (\d+)K", info.split("Metaspace")[0]))
    return f"{out}; live heap after a full GC {used / 1024:,.0f} MiB"


def _mib(value: str) -> str:
    return f"{int(value.split()[0]) / 1024:,.0f} MiB"


def templates(flows: int = 50) -> list[tuple[str, bytes, dict[str, str], str]]:
    out = []
    for seed in range(flows):
        for event in build_flow(seed, RULE_SET).events:
            producer, name, version = event.subject_parts()
            out.append((f"puskesos.events.{producer}.{name}.v{version}", event.model_dump_json().encode(),
                        event_headers(event), str(event.event_id)))
    return out


def generate(db: Database[dict[str, Any]], events: int, chunk: int) -> float:
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
            db["checkpoints"].insert_one(to_document(cp))
        if len(pending) == 8 or seq == events:
            db["chunks"].insert_many(pending)
            pending = []
    db["meta"].insert_one({"_id": "head", "chunk": number - 1, "seq": events, "hash": prev})
    return time.perf_counter() - started


def read_floor(db: Database[dict[str, Any]], batch_size: int = 4) -> tuple[int, int, float]:
    """(events, stored bytes, seconds): every chunk document read with plain PyMongo, in ``_id`` order (the
    verifier's query), nothing decompressed or hashed."""
    started = time.perf_counter()
    events = size = 0
    for doc in db[CHUNKS].find({}, batch_size=batch_size).sort("_id", 1):
        events += int(doc["count"])
        size += len(doc["blob"])
    return events, size, time.perf_counter() - started


def measure_verify(db: Database[dict[str, Any]], key: bytes, *, runs: int = 2) -> list[float]:
    """``audit verify`` of the whole log ``runs`` times, then the read-only floor; prints both. Returns the rates."""
    reader = LogReader(db)
    rates = []
    for run in range(1, runs + 1):
        report = verify_log(reader, key=key)
        assert report.ok, report.findings[:5]
        rates.append(report.records_per_second)
        print(f"audit verify, run {run}: {report.records:,} events in {report.seconds:.2f} s = "
              f"{report.records_per_second:,.0f} events/s ({report.chunks:,} chunks, "
              f"{report.checkpoints_checked} checkpoints matched)")
    events, size, seconds = read_floor(db)
    floor = events / seconds
    print(f"floor (the same chunk documents read with PyMongo, not decompressed or hashed): {events:,} events in "
          f"{seconds:.2f} s = {floor:,.0f} events/s ({size / max(events, 1):.0f} stored bytes per event); "
          f"verify at {max(rates) / floor:.2f}x the floor's rate (best run)")
    docs = list(db[CHUNKS].find({}).sort("_id", 1).limit(200))
    started = time.perf_counter()
    verifier = ChainVerifier(from_start=True)
    for doc in docs:
        verifier.feed(doc)
    alone = sum(int(d["count"]) for d in docs) / (time.perf_counter() - started)
    print(f"where the time goes: the verifier alone (200 chunks already in memory) {alone:,.0f} events/s")
    print(load_average())
    return rates


def tamper_and_verify_range(db: Database[dict[str, Any]], key: bytes) -> None:
    """Alters one record in the middle chunk (stored hashes kept) and verifies the range around it."""
    reader = LogReader(db)
    chunks = db[CHUNKS].estimated_document_count()
    middle = db[CHUNKS].find_one({"_id": f"c:{chunks // 2:010d}"})
    assert middle is not None
    records = chunk_records(middle)
    victim = records[100]
    records[100] = dataclasses.replace(victim, body=victim.body + b" ")
    db[CHUNKS].replace_one({"_id": middle["_id"]}, {**rebuild_chunk(middle, records), "total": middle.get("total")})
    ranged = verify_log(reader, from_seq=victim.seq - 5000, to_seq=victim.seq + 5000, key=key)
    failures = [f"{f.kind} at {f.seq}" for f in ranged.findings if f.failure]
    print(f"after altering record {victim.seq} (stored hashes kept): range verify {victim.seq - 5000}.."
          f"{victim.seq + 5000} checked {ranged.records:,} records in {ranged.seconds * 1000:.0f} ms, "
          f"ok={ranged.ok}, findings={failures}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=1024, help="records per chunk (the appender's fetch size)")
    parser.add_argument("--heap", default="2g", help="the local engine's JVM heap (the chain alone: ~150 MB at 1M)")
    args = parser.parse_args()
    print(load_average() + ", before the run")
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        mongo = resolve_mongo(Path(tmp), heap=args.heap)
        client: MongoClient[dict[str, Any]] = MongoClient(mongo.url, tz_aware=True)
        name = f"bench_audit_verify_{uuid.uuid4().hex[:8]}"
        try:
            db = client[name]
            seconds = generate(db, args.events, args.chunk)
            print(f"generated {args.events:,} events in {db[CHUNKS].estimated_document_count():,} chunks in "
                  f"{seconds:.1f} s ({args.events / seconds:,.0f} events/s; mongo: {mongo.origin} {mongo.url})")
            measure_verify(db, KEY)
            print(engine_memory(mongo))
            tamper_and_verify_range(db, KEY)
        finally:
            client.drop_database(name)
            client.close()
            mongo.close()


if __name__ == "__main__":
    main()
