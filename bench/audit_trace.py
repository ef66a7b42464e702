"""Audit benchmark: trace one decision to its roots (and the appender's rate on the way).

    uv run python bench/audit_trace.py [--flows 5000] [--traces 200]

Starts nats-server and FerretDB locally (or uses PUSKESOS_NATS_URL / PUSKESOS_MONGO_URL), runs the
audit service in-process with its real lifespan, publishes ``--flows`` complete flows of contract
events (household -> complaint -> case -> assessment -> referral -> round -> allocation ->
rejection -> disbursement -> notification -> close: 12 events each, every family and round its
own) the way services publish them, and waits until the audit log has appended and indexed all of
them (the appender's rate is printed). Then traces ``--traces`` random allocations, NIKs and
complaints through the index (the walk an auditor's ``audit trace`` does: every ancestor and
descendant of the decision with its inputs and rule version) and prints latency percentiles.
Target (BRIEF §6): one decision traced in under 100 ms.

A trace is ~20-30 point lookups by ``_id`` (concurrent per level). MongoDB serves them from its
primary index; FerretDB 1.24 (SQLite) scans the collection for every query, so there a trace
costs seconds and grows with the log: on FerretDB the run is cut to 300 flows and 5 traces per
kind (``--force`` to run it anyway). For the figure the design targets, point PUSKESOS_MONGO_URL
at MongoDB or another indexed Mongo-wire server (the figures in the report used
mongo-java-server 1.46, in memory, with NATS and the audit service on the same 2 cores).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import nats
from puskesos_audit.app import create_app
from puskesos_audit.render import mermaid
from puskesos_audit.samples import build_flow
from puskesos_audit.settings import AuditSettings
from puskesos_audit.store import AuditStore
from puskesos_audit.trace import TraceKind, trace
from puskesos_shared.contracts import subject_for
from puskesos_shared.messaging import encode_event, event_headers
from puskesos_shared.testing.app import running_app, runtime_of
from puskesos_shared.testing.servers import resolve_mongo, resolve_nats
from pymongo import MongoClient

ROOT = Path(__file__).resolve().parents[1]
RULE_SET = json.loads((ROOT / "services/audit/tests/data/rules/assessment@1.json").read_text())
SECRET = "bench-audit-secret-0123456789abcdef0123"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def caught_up(store: AuditStore, seq: int) -> None:
    """Polls the log's head until it reaches ``seq`` (a condition, not a fixed wait)."""
    while int((await store.get_head())["seq"]) < seq:  # noqa: ASYNC110 - polling another component's state
        await asyncio.sleep(0.2)


async def indexed(store: AuditStore) -> None:
    """Polls until the trace index has caught up with the log's head."""
    while await store.index_position() < int((await store.get_head())["chunk"]):  # noqa: ASYNC110
        await asyncio.sleep(0.2)


async def run(args: argparse.Namespace, nats_url: str, mongo_url: str) -> None:
    with MongoClient(mongo_url, serverSelectionTimeoutMS=5000) as probe:
        info = probe.admin.command("buildInfo")
    if "ferretdbVersion" in info and not args.force:
        args.flows, args.traces = min(args.flows, 300), min(args.traces, 5)
        print("FerretDB scans every lookup (no index): cut to 300 flows and 5 traces per kind; see the docstring")
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    settings = AuditSettings(_env_file=None, nats_url=nats_url, mongo_url=mongo_url, namespace=namespace,  # type: ignore[call-arg]
                             auth_secret=SECRET, log_level="warning")
    started = time.perf_counter()
    flows = [build_flow(seed, RULE_SET) for seed in range(args.flows)]
    events = [e for f in flows for e in f.events]
    print(f"built {len(events):,} contract events ({args.flows:,} flows) in {time.perf_counter() - started:.1f} s")
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    app = create_app(settings)
    try:
        async with running_app(app):
            runtime = runtime_of(app)
            store = runtime.state["store"]
            t0 = time.perf_counter()
            for i in range(0, len(events), 2000):
                batch = events[i:i + 2000]
                await asyncio.gather(*(js.publish(subject_for(e, runtime.topology), encode_event(e),
                                                  headers=event_headers(e), stream=runtime.topology.events_stream)
                                       for e in batch))
            published = time.perf_counter() - t0
            await caught_up(store, len(events))
            appended = time.perf_counter() - t0
            await indexed(store)
            done = time.perf_counter() - t0
            print(f"published in {published:.1f} s; the audit log appended (hashed, chained, stored) all in "
                  f"{appended:.1f} s = {len(events) / appended:,.0f} events/s; its trace index caught up at "
                  f"{done:.1f} s = {len(events) / done:,.0f} events/s")
            rng = random.Random(3)
            key = settings.index_key()
            for kind, pick in ((TraceKind.ALLOCATION, lambda f: str(f.ids["allocation_id"])),
                               (TraceKind.NIK, lambda f: f.ids["nik"]),
                               (TraceKind.COMPLAINT, lambda f: str(f.ids["complaint_id"]))):
                times, sizes, decisions = [], [], []
                for _ in range(args.traces):
                    flow = rng.choice(flows)
                    t = time.perf_counter()
                    result = await trace(store, kind, pick(flow), key)
                    times.append((time.perf_counter() - t) * 1000)
                    sizes.append(len(result.nodes))
                    decisions.append(len(result.decisions))
                print(f"trace {kind.value:10}: median {statistics.median(times):6.1f} ms, p95 "
                      f"{percentile(times, 95):6.1f} ms, max {max(times):6.1f} ms "
                      f"({statistics.mean(sizes):.1f} events, {statistics.mean(decisions):.1f} decisions per trace)")
            t = time.perf_counter()
            chart = mermaid(await trace(store, TraceKind.DISBURSEMENT, str(flows[0].ids["disbursement_id"]), key))
            print(f"trace + Mermaid diagram of one disbursement: {(time.perf_counter() - t) * 1000:.1f} ms, "
                  f"{chart.count('-->')} edges")
    finally:
        await nc.close()


def main() -> None:
    print(f"load average before the run: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (2 cores, shared)")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--flows", type=int, default=5000)
    parser.add_argument("--traces", type=int, default=200)
    parser.add_argument("--force", action="store_true", help="run the full size on FerretDB too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-audit-trace-") as tmp:
        nats_server, mongo = resolve_nats(Path(tmp)), resolve_mongo(Path(tmp))
        try:
            asyncio.run(run(args, nats_server.url, mongo.url))
        finally:
            nats_server.close()
            mongo.close()


if __name__ == "__main__":
    main()
