"""Distribution scale-out: one round at the seeds' scale, replicas added while it runs (1 -> 2 -> 4).

    uv run python bench/distribution_scaleout.py [--families 63335] [--steps 1 2 4] [--in-flight 8] [--nats-cluster 3]

What an operator does in a year-end round whose payouts are too slow: start more replicas. The
simulated bank answers each payment after ``--latency-ms`` (50 ms), one payment per request, and
each replica keeps at most ``--in-flight`` payments open (a bank's connection limit per client),
so one replica's ceiling is ``in_flight / latency`` (160 payouts/s by default).

One round of ``--families`` families (Jember's 63,335 by default) is opened and its recipient list
imported with the first step's replicas running; then, step by step, replicas are added. A step's
window opens when its replicas are ready and no allocation is queued (so every step measures
payouts only) and closes when its share of the families still to pay is paid (the last step stops
at 95%, so the tail is not counted). Per step: payouts/s measured at the bank (payments executed
in the window), the machine's CPU use over the window (``/proc/stat``, both cores; when it is
near 100% the cores, not the replicas, are the limit), the replicas' own CPU and the load average.
The round is then drained and closed: the reconciliation proves nobody was paid twice while
replicas joined. Target (BRIEF §6): throughput grows close to linearly with replicas.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nats
from distribution_round import (  # type: ignore[import-not-found]  # the sibling script
    Stack,
    command_caller,
    cpu_seconds,
    round_body,
    wait_drained,
)
from puskesos_distribution.csv_import import import_file
from puskesos_distribution.domain import round_id_for
from puskesos_distribution.sample_data import write_csv
from puskesos_distribution.workqueue import ALLOCATE, work_stream, work_subject
from puskesos_shared.settings import nats_servers
from puskesos_shared.testing.processes import ServiceProcess
from puskesos_shared.topology import Topology
from rich.console import Console
from rich.table import Table

LAST_SHARE = 0.95  # the last step stops here: the tail (a few retried payments) is not throughput
POLL_SECONDS = 1.0


def cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine (Linux), to show when the cores are the limit."""
    try:
        fields = [float(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except OSError:
        return 0.0, 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return sum(fields) - idle, sum(fields)


@dataclass
class Step:
    replicas: int
    started: dt.datetime
    ended: dt.datetime
    paid_at_start: int
    paid_at_end: int
    machine_busy: float  # share of both cores
    replica_cores: float  # the replicas' CPU seconds over the window's seconds
    load_average: float
    payouts: int = 0  # payments the bank executed in the window (from its ledger)

    @property
    def seconds(self) -> float:
        return (self.ended - self.started).total_seconds()

    @property
    def rate(self) -> float:
        return self.payouts / self.seconds if self.seconds > 0 else 0.0


class Round:
    """The round under test: its bank, its replicas and the counters the steps are cut by."""

    def __init__(self, stack: Stack, args: argparse.Namespace, console: Console) -> None:
        self.stack, self.args, self.console = stack, args, console
        self.namespace = f"scale{uuid.uuid4().hex[:8]}"
        self.topology = Topology(namespace=self.namespace)
        self.key = f"scale-{args.families}"
        self.round_id = round_id_for(self.key)
        self.gateway_port = stack.gateway("--latency-ms", str(args.latency_ms))
        self.procs: list[ServiceProcess] = []

    async def add_replicas(self, count: int) -> None:
        """Starts ``count`` more replicas and waits until they are ready (in a thread: the polls go on)."""
        env = {"PUSKESOS_GATEWAY_BATCH_SIZE": "1", "PUSKESOS_DISBURSE_IN_FLIGHT": str(self.args.in_flight),
               "PUSKESOS_ALLOCATE_IN_FLIGHT": "64"}
        self.procs += await asyncio.to_thread(self.stack.replicas, count, self.namespace, self.gateway_port, **env)

    async def paid(self, http: httpx.AsyncClient) -> int:
        stats = (await http.get(f"http://127.0.0.1:{self.gateway_port}/v1/stats")).json()
        return int(stats["executed_count"])

    async def allocations_queued(self, js: Any) -> int:
        subject = work_subject(self.topology, ALLOCATE, self.round_id)
        info = await js.stream_info(work_stream(self.topology), subjects_filter=subject)
        return int((info.state.subjects or {}).get(subject, 0))

    def replica_cpu(self) -> float:
        return float(sum(cpu_seconds(p.pid) for p in self.procs))


async def run_step(r: Round, js: Any, http: httpx.AsyncClient, replicas: int, steps_left: int) -> Step:
    families = r.args.families
    if replicas > len(r.procs):
        await r.add_replicas(replicas - len(r.procs))
    while True:  # payouts only: the window opens once every family is decided (the broker is polled)
        if not await r.allocations_queued(js):
            break
        await asyncio.sleep(POLL_SECONDS)
    paid = await r.paid(http)
    goal = paid + (LAST_SHARE * families - paid) / steps_left
    started, clock, paid_at_start = dt.datetime.now(dt.UTC), time.monotonic(), paid
    cpu_before, replica_cpu_before = cpu_times(), r.replica_cpu()
    while paid < goal:
        await asyncio.sleep(POLL_SECONDS)
        paid = await r.paid(http)
    cpu_after, elapsed = cpu_times(), time.monotonic() - clock
    busy = (cpu_after[0] - cpu_before[0]) / max(cpu_after[1] - cpu_before[1], 1.0)
    step = Step(replicas=replicas, started=started, ended=dt.datetime.now(dt.UTC), paid_at_start=paid_at_start,
                paid_at_end=paid, machine_busy=busy, replica_cores=(r.replica_cpu() - replica_cpu_before) / elapsed,
                load_average=os.getloadavg()[0])
    r.console.print(f"  {replicas} replica(s): {paid - paid_at_start:,} paid in {elapsed:,.0f} s "
                    f"(~{(paid - paid_at_start) / elapsed:,.0f}/s), machine CPU {busy:.0%}, "
                    f"load average {step.load_average:.2f}")
    return step


async def run(stack: Stack, args: argparse.Namespace, console: Console) -> tuple[list[Step], dict[str, Any], float]:
    r = Round(stack, args, console)
    await r.add_replicas(args.steps[0])
    csv_file = write_csv(stack.workdir / f"scale-{args.families}.csv", args.families, seed=7)
    nc = await nats.connect(nats_servers(stack.nats.url))
    js = nc.jetstream()
    call = command_caller(nc, r.topology)
    steps: list[Step] = []
    try:
        await call("open_round", round_body(r.key, args.families, args.families))
        began = time.monotonic()
        await import_file(call, r.round_id, r.key, csv_file, stack.workdir / f"{r.key}.rejected.csv", 500,
                          console=console)
        async with httpx.AsyncClient(timeout=60) as http:
            for i, replicas in enumerate(args.steps):
                steps.append(await run_step(r, js, http, replicas, len(args.steps) - i))
            total = await wait_drained(js, r.topology, began, console, "rest of the round")
            closed = await call("close_round", {"round": r.key}, timeout=600, attempts=1)
            ledger = (await http.get(f"http://127.0.0.1:{r.gateway_port}/v1/ledger",
                                     params={"round_id": str(r.round_id)})).json()["payments"]
            stats = (await http.get(f"http://127.0.0.1:{r.gateway_port}/v1/stats")).json()
    finally:
        await nc.close()
        stack.stop(r.procs)
    executed = [dt.datetime.fromisoformat(p["executed_at"]) for p in ledger]
    for step in steps:
        step.payouts = sum(step.started <= t < step.ended for t in executed)
    return steps, {**closed, "families_paid_twice": stats["families_paid_twice"]}, total


def main() -> None:
    parser = argparse.ArgumentParser(description="payout throughput as replicas join a round at the seeds' scale")
    parser.add_argument("--families", type=int, default=63_335)
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4], help="replicas running in each step")
    parser.add_argument("--in-flight", type=int, default=8, help="payments in flight per replica")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--nats-cluster", type=int, choices=(3,), default=None,
                        help="run on a 3-node NATS cluster on loopback (sync_interval always, streams at R3)")
    args = parser.parse_args()
    if args.steps != sorted(args.steps):
        parser.error("--steps only adds replicas: give them in increasing order")
    console = Console(width=None if sys.stdout.isatty() else 160)  # a log file gets whole table rows
    console.print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="bench-distribution-scale-") as tmp:
        stack = Stack(Path(tmp), nats_nodes=args.nats_cluster)
        console.print(f"NATS: {stack.nats.label}")
        try:
            steps, closed, total = asyncio.run(run(stack, args, console))
        finally:
            stack.close()
    ceiling = args.in_flight / (args.latency_ms / 1000)
    table = Table(title=f"one round of {args.families:,} families, bank latency {args.latency_ms:.0f} ms, "
                        f"{args.in_flight} payments in flight per replica (ceiling {ceiling:,.0f}/s per replica)")
    for column in ("replicas", "paid in window", "window (s)", "payouts/s", "speed-up", "per replica vs one",
                   "of the ceiling", "machine CPU", "replicas' CPU (cores)", "load avg"):
        table.add_column(column, justify="right")
    base = steps[0].rate / steps[0].replicas
    for s in steps:
        table.add_row(str(s.replicas), f"{s.payouts:,}", f"{s.seconds:,.0f}", f"{s.rate:,.0f}",
                      f"{s.rate / steps[0].rate:.2f}x", f"{s.rate / s.replicas / base:.0%}",
                      f"{s.rate / (ceiling * s.replicas):.0%}", f"{s.machine_busy:.0%}", f"{s.replica_cores:.2f}",
                      f"{s.load_average:.2f}")
    console.print(table)
    totals, rec = closed["totals"], closed["reconciliation"]
    console.print(f"round: every family decided and paid after {total:,.0f} s; allocated "
                  f"{totals['allocated_count']:,}, paid {totals['disbursed_count']:,}, failed "
                  f"{totals['failed_count']}; reconciliation matched: {rec['matched']}; families paid twice: "
                  f"{closed['families_paid_twice']}")
    console.print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
