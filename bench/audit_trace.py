"""Audit benchmark at the seeds' scale: a log of 1,000,000 events (a Jember year), traced and verified.

    uv run python bench/audit_trace.py [--events 1000000] [--traces 200] [--heap 8g]

Starts nats-server and the local Mongo engine (mongo-java-server in memory, with its indexes; or
uses PUSKESOS_NATS_URL / PUSKESOS_MONGO_URL). The log is built through the service's real path:
``--events`` contract events are published on JetStream the way services publish them
(``Nats-Msg-Id`` = event id; the publishing rate printed is plain nats-py's), then the audit
service starts in-process with its real lifespan and catches up on that backlog: the appender
reads the stream in order, hashes, chains and stores the records in chunks, and the index
follower writes the trace index. Publishing first keeps the two rates apart (on 2 shared cores a
publisher in the same process would slow the service down) and is what the service does after
downtime. The events are flows of 12 (household -> complaint -> case -> assessment -> referral ->
round -> allocation -> rejection -> disbursement -> notification -> round closed -> case closed)
built once by ``samples.build_flow`` for 50 families, then copied with ids of their own: every
UUID replaced by a fresh one (the same within a copy, so the causation links hold) and the
family card and NIKs by those of ``samples.family(seed)`` (valid numbers: the indexer decodes
and validates every event). Building 83,000 flows with pydantic would take longer than the log.
Why not seed the store in bulk with the service's chain code: the real path builds the 1M log
in minutes here (the time is printed), so the log and its index are what the appender and the
indexer wrote.

Then, on the same engine in the same run:

* ``audit trace`` of ``--traces`` random allocations, NIKs and complaints (the walk an auditor's
  trace does: every ancestor and descendant of the decision with its inputs and rule version):
  p50/p95/p99. Floors: the same trace's documents read by plain PyMongo ``_id`` point lookups,
  one after the other (as many as the trace returned), and in one ``$in`` query.
  Target (BRIEF §6): p95 < 100 ms.
* ``audit verify`` of the whole chain (every record re-hashed and chained, checkpoints compared),
  against the floor of reading the same chunk documents with PyMongo without decompressing or
  hashing them (``audit_verify.measure_verify``). Target: 100,000 events/s or better.
* The engine's memory at 1M: resident set (now and peak) and live heap after a full GC.

Memory: the engine keeps every document as Java objects, about 7 KB per logged event (nearly all
of it the trace index: summaries with their bodies, and the index entries); measured at 1M:
6.9 GiB live after a full GC, 11 GiB resident. Hence ``--heap 12g`` (8g is too small: the old
generation cannot hold the live set) and ``--initial-heap 8g``: grown step by step, the heap
costs a full GC per step, each a pause of tens of seconds on 2 busy cores. The service and the
bench connect with ``connectTimeoutMS=120000`` so that such a pause does not make the driver
declare the engine down: in one run it did, PyMongo 4.20's async client cancelled the operations
in flight and the audit service's client answered no more (the appender stopped at 401,739).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
from audit_verify import engine_memory, load_average, measure_verify
from nats.js import JetStreamContext
from puskesos_audit.app import create_app
from puskesos_audit.render import mermaid
from puskesos_audit.samples import build_flow, family
from puskesos_audit.settings import AuditSettings
from puskesos_audit.store import EVENTS, AuditStore
from puskesos_audit.trace import TraceKind, trace
from puskesos_shared.contracts import subject_for
from puskesos_shared.messaging import encode_event, event_headers
from puskesos_shared.messaging.streams import ensure_streams
from puskesos_shared.testing.app import running_app, runtime_of
from puskesos_shared.testing.servers import resolve_mongo, resolve_nats
from puskesos_shared.topology import Topology
from pymongo import MongoClient

ROOT = Path(__file__).resolve().parents[1]
RULE_SET = json.loads((ROOT / "services/audit/tests/data/rules/assessment@1.json").read_text())
SECRET = "bench-audit-secret-0123456789abcdef0123"
UUID = rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
TEMPLATES = 50
TRACED = ("allocation_id", "nik", "complaint_id", "disbursement_id")


@dataclass(frozen=True)
class Template:
    """One sample flow as published: (subject, body, headers) per event, and what to replace in copies."""

    events: list[tuple[str, bytes, dict[str, str]]]
    pattern: re.Pattern[bytes]  # any UUID, the family card, the members' NIKs
    numbers: list[bytes]  # the family card, then the NIKs
    ids: dict[str, str]


def templates(topology: Topology) -> list[Template]:
    out = []
    for seed in range(TEMPLATES):
        flow = build_flow(seed, RULE_SET)
        hh = family(seed)
        numbers = [hh.kk_number.encode(), *(m.nik.encode() for m in hh.members)]
        pattern = re.compile(b"|".join([UUID, *(re.escape(n) for n in numbers)]))
        events = [(subject_for(e, topology), encode_event(e), event_headers(e)) for e in flow.events]
        out.append(Template(events, pattern, numbers, {k: str(flow.ids[k]) for k in TRACED}))
    return out


def copies(tpl: list[Template], count: int, rng: random.Random,
           ids: list[dict[str, str]]) -> Iterator[tuple[str, bytes, dict[str, str]]]:
    """``count`` events: copies of the templates, each with ids and a family of its own (ids recorded)."""
    produced, seed = 0, 0
    while produced < count:
        template = tpl[seed % len(tpl)]
        hh = family(seed)
        fresh = dict(zip(template.numbers, [hh.kk_number.encode(), *(m.nik.encode() for m in hh.members)],
                         strict=True))

        def new(match: re.Match[bytes], fresh: dict[bytes, bytes] = fresh) -> bytes:
            value = match.group(0)
            if value not in fresh:
                fresh[value] = str(uuid.UUID(int=rng.getrandbits(128), version=4)).encode()
            return fresh[value]

        for subject, body, headers in template.events[:count - produced]:
            yield subject, template.pattern.sub(new, body), {
                k: template.pattern.sub(new, v.encode()).decode() for k, v in headers.items()}
            produced += 1
        ids.append({k: fresh.get(v.encode(), v.encode()).decode() for k, v in template.ids.items()})
        seed += 1


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)

    def at(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    return f"p50 {at(50):6.1f} ms, p95 {at(95):6.1f} ms, p99 {at(99):6.1f} ms"


async def publish_all(js: JetStreamContext, topology: Topology, events: int, ids: list[dict[str, str]]) -> float:
    """Publishes the events as services do (async JetStream publishes, acks awaited per 2,000); returns seconds."""
    await ensure_streams(js, topology)
    tpl = templates(topology)
    rng = random.Random(3)
    started = time.perf_counter()
    pending: list[Any] = []
    for subject, body, headers in copies(tpl, events, rng, ids):
        pending.append(js.publish(subject, body, headers=headers, stream=topology.events_stream))
        if len(pending) == 2000:
            await asyncio.gather(*pending)
            pending = []
    await asyncio.gather(*pending)
    return time.perf_counter() - started


async def catch_up(store: AuditStore, events: int) -> tuple[float, float]:
    """Waits for the service to log and index ``events`` (progress every 100,000); returns both times."""
    started = time.perf_counter()
    logged_at = None
    reported = 0
    while True:
        head, index = await store.get_head(), await store.index_position()
        if logged_at is None and int(head["seq"]) >= events:
            logged_at = time.perf_counter() - started
        if logged_at is not None and index >= int(head["chunk"]):
            return logged_at, time.perf_counter() - started
        if int(head["seq"]) >= reported + 100_000:
            reported = int(head["seq"]) // 100_000 * 100_000
            print(f"  {time.perf_counter() - started:6.0f} s: logged {int(head['seq']):,}, indexed up to chunk "
                  f"{index:,} of {int(head['chunk']):,}", flush=True)
        await asyncio.sleep(0.5)  # polling the service's progress in the database


async def measure_traces(store: AuditStore, key: bytes, ids: list[dict[str, str]], traces: int) -> None:
    rng = random.Random(5)
    events = store.db[EVENTS]
    for kind, field in ((TraceKind.ALLOCATION, "allocation_id"), (TraceKind.NIK, "nik"),
                        (TraceKind.COMPLAINT, "complaint_id")):
        times, point, batched, sizes, lookups = [], [], [], [], []
        for _ in range(traces):
            value = rng.choice(ids)[field]
            t = time.perf_counter()
            result = await trace(store, kind, value, key)
            times.append((time.perf_counter() - t) * 1000)
            assert result.nodes and result.decisions, f"nothing traced from {kind.value}"
            node_ids = [n.id for n in result.nodes]
            sizes.append(len(node_ids))
            lookups.append(result.lookups)
            t = time.perf_counter()
            for node_id in node_ids:
                assert await events.find_one({"_id": node_id}) is not None
            point.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            assert len([d async for d in events.find({"_id": {"$in": node_ids}})]) == len(node_ids)
            batched.append((time.perf_counter() - t) * 1000)
        print(f"trace {kind.value:10}: {percentiles(times)} ({statistics.mean(sizes):.1f} events, "
              f"{statistics.mean(lookups):.1f} index lookups per trace)")
        print(f"  floor, the same documents by _id one at a time: {percentiles(point)}")
        print(f"  floor, the same documents by _id in one $in:     {percentiles(batched)}")
    t = time.perf_counter()
    chart = mermaid(await trace(store, TraceKind.DISBURSEMENT, ids[0]["disbursement_id"], key))
    print(f"trace + Mermaid diagram of one disbursement: {(time.perf_counter() - t) * 1000:.1f} ms, "
          f"{chart.count('-->')} edges")
    print(load_average())


async def run(args: argparse.Namespace, nats_url: str, mongo_url: str) -> AuditSettings:
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    settings = AuditSettings(_env_file=None, nats_url=nats_url, mongo_url=mongo_url, namespace=namespace,  # type: ignore[call-arg]
                             auth_secret=SECRET, log_level="warning")
    nc = await nats.connect(nats_url)
    try:
        ids: list[dict[str, str]] = []
        published = await publish_all(nc.jetstream(), settings.topology(), args.events, ids)
        print(f"published {args.events:,} events on JetStream in {published:.0f} s "
              f"({args.events / published:,.0f} events/s)")
        app = create_app(settings)
        async with running_app(app):
            store: AuditStore = runtime_of(app).state["store"]
            logged, indexed = await catch_up(store, args.events)
            print(f"the audit service logged them (read, hashed, chained, stored) in {logged:.0f} s "
                  f"({args.events / logged:,.0f} events/s) and indexed them by {indexed:.0f} s "
                  f"({args.events / indexed:,.0f} events/s); the whole build took {published + indexed:.0f} s "
                  f"({(published + indexed) / 60:.1f} min)")
            print(load_average())
            await measure_traces(store, settings.index_key(), ids, args.traces)
    finally:
        await nc.close()
    return settings


def patient(url: str) -> str:
    """The engine's URL with a 2-minute monitoring timeout: a garbage-collection pause of the engine must not
    make the driver declare it down (PyMongo 4.20's async client then cancels the operations in flight, and
    after that the audit service's client stopped answering in a run here)."""
    return url + ("&" if "?" in url else "?") + "connectTimeoutMS=120000"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--traces", type=int, default=200, help="traces per kind")
    parser.add_argument("--heap", default="12g", help="the local engine's JVM heap (its live heap at 1M is printed)")
    parser.add_argument("--initial-heap", default="8g", help="the engine's initial heap (JAVA_TOOL_OPTIONS=-Xms)")
    args = parser.parse_args()
    print(load_average() + ", before the run")
    # the engine's heap starts large: growing it costs a full GC per step, each a pause of tens of seconds
    # with gigabytes live on 2 busy cores
    os.environ.setdefault("JAVA_TOOL_OPTIONS", f"-Xms{args.initial_heap}")
    with tempfile.TemporaryDirectory(prefix="bench-audit-trace-") as tmp:
        nats_server, mongo = resolve_nats(Path(tmp)), resolve_mongo(Path(tmp), heap=args.heap)
        try:
            settings = asyncio.run(run(args, nats_server.url, patient(mongo.url)))
            print(engine_memory(mongo) + f", with the {args.events:,}-event log and its trace index")
            with MongoClient(mongo.url, tz_aware=True) as client:
                measure_verify(client[settings.database_name], settings.checkpoint_key())
        finally:
            nats_server.close()
            mongo.close()


if __name__ == "__main__":
    main()
