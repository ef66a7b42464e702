"""Distribution benchmark: a 63,335-family BLT round end to end against the raw floor, same run.

    uv run python bench/distribution_round.py [--families 63335] [--replicas 2] [--skip-floor]
        [--nats cluster-vs-single]

Starts nats-server and the local Mongo engine with a 6 GB heap (or uses PUSKESOS_NATS_URL /
PUSKESOS_MONGO_URL), the simulated gateway (no latency: the round's own cost is measured) and
``--replicas`` distribution processes. Opens a round whose budget covers every family,
imports a deterministic recipient list (valid KKs/NIKs of Kota Malang and Jember) through the
same code the ``round import`` command uses, and waits until every family is allocated and paid
(the work queue is empty), then closes the round (totals and reconciliation with the gateway).

The raw floor, measured in the same run on the same servers: plain nats-py publishing and
consuming (pull, explicit ack) as many messages as the round published, plus plain PyMongo
``insert_many`` of as many documents as the round wrote. Target (BRIEF §6): within 3x the floor.
The round is the distribution service's part (import, allocation, payouts, close with
reconciliation); the notification and audit services, which consume its events, are not running.
CPU seconds per process and the load average before and after are printed: on this 2-core
machine other work running at the same time shows there.

``--nats cluster-vs-single`` runs the round twice in one run, on fresh servers each time: on one
nats-server with ``sync_interval: always`` and on a 3-node cluster on loopback with the same setting
and the streams at R3 (production's shape, deploy/nats), each with its own floor, and prints the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import nats
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StorageType, StreamConfig
from puskesos_distribution.csv_import import import_file
from puskesos_distribution.domain import round_id_for
from puskesos_distribution.sample_data import write_csv
from puskesos_distribution.workqueue import work_stream
from puskesos_shared.auth import Officer, issue_token
from puskesos_shared.commands import send_command
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.settings import nats_servers
from puskesos_shared.testing.processes import ServiceProcess, free_port
from puskesos_shared.testing.servers import NatsCluster, resolve_mongo, resolve_nats
from puskesos_shared.topology import Topology
from pymongo import AsyncMongoClient
from rich.console import Console

SECRET = "bench-distribution-secret-0123456789abcdef"
AMOUNT = 300_000
PUBLISH_ATTEMPTS = 5


class Brokers:
    """The NATS side of a run: one server as the tests start it (``resolve_nats``), or ``nodes`` servers with
    production's settings (``sync_interval: always``; 3 nodes: a cluster with streams at R3)."""

    def __init__(self, workdir: Path, nodes: int | None) -> None:
        self.replicas = 3 if nodes and nodes >= 3 else 1
        self._handle = resolve_nats(workdir) if nodes is None else None
        self._cluster = (NatsCluster.start(workdir / "nats", size=nodes, sync_always=True)
                         if nodes is not None else None)
        self.url = self._handle.url if self._handle is not None else self._cluster.url  # type: ignore[union-attr]
        self.label = ("one server (default fsync)" if nodes is None else
                      "one server, sync_interval always" if nodes == 1 else
                      f"{nodes}-node cluster, sync_interval always, streams at R{self.replicas}")

    @property
    def pids(self) -> list[int]:
        if self._cluster is not None:
            return [node.pid for node in self._cluster.nodes if node.pid]
        process = self._handle.process if self._handle is not None else None
        return [process.pid] if process is not None else []

    def close(self) -> None:
        if self._cluster is not None:
            self._cluster.close()
        if self._handle is not None:
            self._handle.close()


class Stack:
    """Servers, the gateway simulator and distribution replicas for one benchmark run."""

    def __init__(self, workdir: Path, *, mongo_heap: str = "6g", nats_nodes: int | None = None) -> None:
        self.workdir = workdir
        self.nats = Brokers(workdir, nats_nodes)
        self.mongo = resolve_mongo(workdir, heap=mongo_heap)  # 63,335 families: ~340k documents in memory
        self.procs: list[ServiceProcess] = []

    def gateway(self, *args: str) -> int:
        port = free_port()
        proc = ServiceProcess(argv=[sys.executable, "-m", "puskesos_distribution.gateway_sim", "--port", str(port),
                                    "--ledger", str(self.workdir / f"ledger-{port}.jsonl"), *args],
                              log_path=self.workdir / f"gateway-{port}.log", port=port)
        self.procs.append(proc.start())
        proc.wait_ready(path="/health")
        return port

    def replicas(self, count: int, namespace: str, gateway_port: int, **env: str) -> list[ServiceProcess]:
        env = {"PUSKESOS_NATS_URL": self.nats.url, "PUSKESOS_MONGO_URL": self.mongo.url,
               "PUSKESOS_NAMESPACE": namespace, "PUSKESOS_MONGO_DB": f"{namespace}_distribution",
               "PUSKESOS_STREAM_REPLICAS": str(self.nats.replicas),
               "PUSKESOS_AUTH_SECRET": SECRET, "PUSKESOS_LOG_LEVEL": "warning",
               "PUSKESOS_GATEWAY_URL": f"http://127.0.0.1:{gateway_port}", **env}
        procs = [ServiceProcess("puskesos_distribution", log_path=self.workdir / f"{namespace}-replica-{i}.log",
                                env=env).start() for i in range(count)]
        self.procs.extend(procs)
        for proc in procs:
            proc.wait_ready(timeout=120)
        return procs

    def stop(self, procs: list[ServiceProcess] | None = None) -> None:
        for proc in procs if procs is not None else self.procs:
            proc.stop(timeout=30)

    def close(self) -> None:
        self.stop()
        self.nats.close()
        self.mongo.close()


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of a live process (Linux ``/proc``; 0 elsewhere)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def operator_token() -> str:
    return issue_token(Officer(officer_id="bench-operator", role=OfficerRole.OPERATOR, scope=("35.73", "35.09")),
                       SECRET)


def command_caller(nc: Any, topology: Topology) -> Callable[..., Awaitable[dict[str, Any]]]:
    token = operator_token()

    async def call(name: str, body: dict[str, Any], *, timeout: float = 60.0, attempts: int = 5) -> dict[str, Any]:
        subject = topology.command_subject("distribution", name)
        for attempt in range(1, attempts + 1):
            try:
                reply = await send_command(nc, subject, {**body, "token": token}, timeout=timeout)
                break
            except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
                if attempt == attempts:
                    raise
                await asyncio.sleep(0.5)
        if not reply.ok:
            raise RuntimeError(f"{name}: {reply.error}")
        return reply.result or {}

    return call


def round_body(key: str, families: int, budget_families: int, quotas: list[dict[str, Any]] | None = None
               ) -> dict[str, Any]:
    return {"key": key, "name": f"Bench BLT {families:,} families", "program": "BLT", "funding_source": "DBHCHT",
            "amount_per_family": AMOUNT, "budget_cap": AMOUNT * budget_families,
            "eligibility_rule_version": "blt-eligibility@2", "period_start": "2022-11-01",
            "period_end": "2022-12-31", "village_quotas": quotas or [],
            "villages_without_quota": "excluded" if quotas else None}


async def wait_drained(js: Any, topology: Topology, started: float, console: Console, label: str) -> float:
    """Polls the work stream until it is empty (every family decided and, if allocated, paid)."""
    printed = 0
    while True:
        messages = (await js.stream_info(work_stream(topology))).state.messages
        elapsed = time.monotonic() - started
        if messages == 0:
            return elapsed
        if elapsed >= printed + 10:
            console.print(f"  {label}: {messages:,} work items left after {elapsed:,.0f}s")
            printed = int(elapsed) // 10 * 10
        await asyncio.sleep(0.5)


async def run_round(stack: Stack, families: int, replicas: int, console: Console,
                    settings: dict[str, str] | None = None) -> dict[str, Any]:
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    topology = Topology(namespace=namespace)
    gateway_port = stack.gateway()
    tuned = {"PUSKESOS_GATEWAY_BATCH_SIZE": "100", "PUSKESOS_DISBURSE_IN_FLIGHT": "400",
             "PUSKESOS_ALLOCATE_IN_FLIGHT": "256", **(settings or {})}
    replica_procs = stack.replicas(replicas, namespace, gateway_port, **tuned)
    csv_file = write_csv(stack.workdir / f"recipients-{families}.csv", families, seed=2022)
    nc = await nats.connect(nats_servers(stack.nats.url), max_reconnect_attempts=5)
    js = nc.jetstream()
    call = command_caller(nc, topology)
    key = f"bench-round-{families}"
    try:
        await call("open_round", round_body(key, families, families))
        started = time.monotonic()
        summary = await import_file(call, round_id_for(key), key, csv_file, stack.workdir / "rejected.csv", 500,
                                    console=console, in_flight=4)
        imported = time.monotonic() - started
        assert summary["accepted"] == families, summary
        total = await wait_drained(js, topology, started, console, "round")
        began_close = time.monotonic()
        closed = await call("close_round", {"round": key}, timeout=600, attempts=1)
        close_seconds = time.monotonic() - began_close
        events = (await js.stream_info(topology.events_stream)).state.messages
        work = (await js.stream_info(work_stream(topology))).state.last_seq
        client: AsyncMongoClient[Any] = AsyncMongoClient(stack.mongo.url)
        db = client[f"{namespace}_distribution"]
        docs = 0
        for name in await db.list_collection_names():
            docs += await db[name].estimated_document_count()
        await client.close()
        async with httpx.AsyncClient(timeout=30) as http:
            ledger = (await http.get(f"http://127.0.0.1:{gateway_port}/v1/stats")).json()
        inserts = 0.0
        async with httpx.AsyncClient(timeout=30) as http:
            for proc in replica_procs:
                text = (await http.get(f"{proc.base_url}/metrics")).text
                inserts += sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                               if line.startswith('puskesos_distribution_db_commands_total{collection=')
                               and 'command="insert"' in line)
        cpu = {"replicas": sum(cpu_seconds(p.pid) for p in replica_procs),
               "gateway": sum(cpu_seconds(p.pid) for p in stack.procs if p not in replica_procs),
               "nats-server": sum(cpu_seconds(pid) for pid in stack.nats.pids),
               "mongo engine": cpu_seconds(stack.mongo.process.pid) if stack.mongo.process else 0.0,
               "importer (this process)": time.process_time()}
    finally:
        await nc.close()
        stack.stop(replica_procs)
    return {"families": families, "replicas": replicas, "import_seconds": imported, "round_seconds": total,
            "close_seconds": close_seconds, "messages": events + work, "consumed": work, "documents": docs,
            "totals": closed["totals"], "reconciliation": closed["reconciliation"], "gateway": ledger, "cpu": cpu,
            "insert_commands": inserts}


async def raw_floor(stack: Stack, messages: int, consumed: int, documents: int) -> dict[str, float]:
    """Plain nats-py: publish ``messages``, consume ``consumed`` of them (pull, explicit ack);
    plain PyMongo: ``insert_many`` of ``documents`` in batches of 1,000."""
    nc = await nats.connect(nats_servers(stack.nats.url))
    js = nc.jetstream()
    name = f"FLOOR{uuid.uuid4().hex[:8].upper()}"
    await js.add_stream(StreamConfig(name=name, subjects=[f"{name.lower()}.>"], retention=RetentionPolicy.WORK_QUEUE,
                                     storage=StorageType.FILE, duplicate_window=24 * 3600,
                                     num_replicas=stack.nats.replicas))
    body = b"x" * 700
    numbers = iter(range(messages))

    async def publisher() -> None:
        """One of 512 concurrent publishers (as the service keeps at most 512 publishes in flight)."""
        for i in numbers:
            for attempt in range(1, PUBLISH_ATTEMPTS + 1):
                try:
                    await js.publish(f"{name.lower()}.work", body, headers={"Nats-Msg-Id": f"m{i}"}, stream=name)
                    break
                except nats.errors.TimeoutError:  # a loaded machine: resent with the same id, as the service does
                    if attempt == PUBLISH_ATTEMPTS:
                        raise

    started = time.monotonic()
    await asyncio.gather(*(publisher() for _ in range(512)))
    published = time.monotonic() - started
    sub = await js.pull_subscribe(f"{name.lower()}.work", durable="floor", stream=name,
                                  config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, max_ack_pending=-1))
    got, started = 0, time.monotonic()
    while got < consumed:
        batch = await sub.fetch(min(500, consumed - got), timeout=10)
        await asyncio.gather(*(m.ack() for m in batch))
        got += len(batch)
    consume_seconds = time.monotonic() - started
    await js.delete_stream(name)
    await nc.close()

    client: AsyncMongoClient[Any] = AsyncMongoClient(stack.mongo.url)
    db = client[f"floor{uuid.uuid4().hex[:8]}"]
    now = dt.datetime.now(dt.UTC)
    started = time.monotonic()
    for offset in range(0, documents, 1000):
        await db.docs.insert_many([{"_id": f"{offset + i}:{uuid.uuid4()}", "round_id": "r", "kk": "3509010502200001",
                                    "village_code": "35.09.01.2001", "amount": AMOUNT, "at": now}
                                   for i in range(min(1000, documents - offset))])
    written = time.monotonic() - started
    await client.drop_database(db.name)
    await client.close()
    return {"publish_seconds": published, "consume_seconds": consume_seconds, "insert_seconds": written,
            "total_seconds": published + consume_seconds + written}


def measure(nodes: int | None, args: argparse.Namespace, console: Console) -> tuple[dict[str, Any], Any]:
    """One round (and its raw floor) on a fresh set of servers; prints the figures."""
    with tempfile.TemporaryDirectory(prefix="bench-distribution-") as tmp:
        stack = Stack(Path(tmp), nats_nodes=nodes)
        try:
            console.rule(f"NATS: {stack.nats.label}")
            console.print(f"load average before: {os.getloadavg()}")
            settings = dict(item.split("=", 1) for item in args.setting)
            result = asyncio.run(run_round(stack, args.families, args.replicas, console, settings))
            floor = None if args.skip_floor else asyncio.run(
                raw_floor(stack, result["messages"], result["consumed"], result["documents"]))
        finally:
            stack.close()
    n, paid_after = result["families"], result["round_seconds"]
    seconds = paid_after + result["close_seconds"]  # end to end: import, allocate, pay, close, reconcile
    result["seconds"] = seconds
    totals, rec = result["totals"], result["reconciliation"]
    console.print(f"\nround of {n:,} families, {result['replicas']} replica(s): {seconds:,.1f} s end to end "
                  f"(import {result['import_seconds']:,.1f} s; every family paid after {paid_after:,.1f} s, "
                  f"{n / paid_after:,.0f} families/s; close and reconcile {result['close_seconds']:,.1f} s)")
    console.print(f"  allocated {totals['allocated_count']:,}, paid {totals['disbursed_count']:,}, failed "
                  f"{totals['failed_count']}, reconciliation matched: {rec['matched']} "
                  f"(gateway executed {rec['gateway_executed_count']:,}, paid twice: "
                  f"{result['gateway']['families_paid_twice']})")
    console.print(f"  it published {result['messages']:,} messages (consumed {result['consumed']:,} work items) "
                  f"and wrote {result['documents']:,} documents")
    console.print(f"  in {result['insert_commands']:,.0f} insert commands "
                  f"({result['documents'] / max(result['insert_commands'], 1):,.1f} documents each)")
    console.print("  CPU seconds: " + ", ".join(f"{k} {v:,.1f}" for k, v in result["cpu"].items()))
    if floor is not None:
        console.print(f"raw floor for the same counts: {floor['total_seconds']:,.1f} s (publish "
                      f"{floor['publish_seconds']:,.1f} s, consume {floor['consume_seconds']:,.1f} s, "
                      f"insert {floor['insert_seconds']:,.1f} s)")
        console.print(f"[bold]ratio: {seconds / floor['total_seconds']:.2f}x the floor[/bold] (target: within 3x)")
    console.print(f"load average after: {os.getloadavg()}")
    return result, floor


def main() -> None:
    parser = argparse.ArgumentParser(description="63,335-family round end to end vs the raw floor")
    parser.add_argument("--families", type=int, default=63_335)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--skip-floor", action="store_true")
    parser.add_argument("--setting", action="append", default=[], metavar="NAME=VALUE",
                        help="a PUSKESOS_* setting for the replicas, e.g. PUSKESOS_BATCH_LINGER_SECONDS=0.005")
    parser.add_argument("--nats", choices=("default", "cluster-vs-single"), default="default",
                        help="default: one nats-server as the tests start it; cluster-vs-single: the round on one "
                             "server with sync_interval always, then on a 3-node cluster (R3) with the same fsync, "
                             "each with its floor, and the ratio")
    args = parser.parse_args()
    console = Console(width=None if sys.stdout.isatty() else 160)  # a log file gets whole table rows
    if args.nats == "default":
        measure(None, args, console)
        return
    single, _ = measure(1, args, console)
    cluster, _ = measure(3, args, console)
    console.rule("cluster vs one server, both with sync_interval always")
    console.print(f"[bold]one server {single['seconds']:,.1f} s, 3-node cluster {cluster['seconds']:,.1f} s: "
                  f"{cluster['seconds'] / single['seconds']:.2f}x[/bold] (nats-server CPU seconds "
                  f"{single['cpu']['nats-server']:,.1f} vs {cluster['cpu']['nats-server']:,.1f})")


if __name__ == "__main__":
    main()
