"""Distribution scale-out: payout throughput with 1, 2 and 4 replicas at 50 ms gateway latency.

    uv run python bench/distribution_scaleout.py [--families 4000] [--replicas 1 2 4] [--in-flight 8]

Each replica pays through the simulated gateway one payment per request (the bank's 50 ms per
transfer), at most ``--in-flight`` at a time (a bank connection limit per replica), so one
replica's ceiling is ``in_flight / 50 ms``; more replicas are just more processes sharing the
work queue. For each replica count: a fresh round of ``--families`` families is imported,
allocated and paid; the payout rate is measured at the gateway (executed payments over the time
from the first to the last), and the round's end-to-end time is printed too.
Target (BRIEF §6): throughput grows close to linearly with replicas.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import nats
from distribution_round import (  # type: ignore[import-not-found]  # the sibling script
    Stack,
    command_caller,
    round_body,
    wait_drained,
)
from puskesos_distribution.csv_import import import_file
from puskesos_distribution.domain import round_id_for
from puskesos_distribution.sample_data import write_csv
from puskesos_shared.topology import Topology
from rich.console import Console
from rich.table import Table


def cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine (Linux), to show when the cores are the limit."""
    try:
        fields = [float(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except OSError:
        return 0.0, 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return sum(fields) - idle, sum(fields)


async def one_run(stack: Stack, gateway_port: int, replicas: int, families: int, in_flight: int,
                  console: Console) -> dict[str, Any]:
    namespace = f"scale{uuid.uuid4().hex[:8]}"
    topology = Topology(namespace=namespace)
    procs = stack.replicas(replicas, namespace, gateway_port, PUSKESOS_GATEWAY_BATCH_SIZE="1",
                           PUSKESOS_DISBURSE_IN_FLIGHT=str(in_flight), PUSKESOS_ALLOCATE_IN_FLIGHT="64")
    csv_file = write_csv(stack.workdir / f"scale-{families}.csv", families, seed=7)
    nc = await nats.connect(stack.nats.url)
    call = command_caller(nc, topology)
    key = f"scale-{replicas}-{families}"
    try:
        await call("open_round", round_body(key, families, families))
        started, cpu_before = time.monotonic(), cpu_times()
        await import_file(call, round_id_for(key), key, csv_file, stack.workdir / f"{key}.rejected.csv", 500,
                          console=console)
        total = await wait_drained(nc.jetstream(), topology, started, console, f"{replicas} replica(s)")
        cpu_after = cpu_times()
    finally:
        await nc.close()
        stack.stop(procs)
    async with httpx.AsyncClient(timeout=60) as http:
        ledger = (await http.get(f"http://127.0.0.1:{gateway_port}/v1/ledger",
                                 params={"round_id": str(round_id_for(key))})).json()["payments"]
    # the steady state: the middle 80% of the payments (ramp-up and tail excluded)
    times = sorted(dt.datetime.fromisoformat(p["executed_at"]) for p in ledger)
    first, last = len(times) // 10, len(times) - 1 - len(times) // 10
    span = (times[last] - times[first]).total_seconds()
    busy = (cpu_after[0] - cpu_before[0]) / max(cpu_after[1] - cpu_before[1], 1.0)
    return {"replicas": replicas, "paid": len(ledger), "payouts_per_second": (last - first) / span,
            "round_seconds": total, "cpu_busy": busy}


async def run(args: argparse.Namespace, stack: Stack, console: Console) -> list[dict[str, Any]]:
    gateway_port = stack.gateway("--latency-ms", str(args.latency_ms))
    results = []
    for replicas in args.replicas:
        result = await one_run(stack, gateway_port, replicas, args.families, args.in_flight, console)
        console.print(f"{replicas} replica(s): {result['payouts_per_second']:,.0f} payouts/s")
        results.append(result)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description="payout throughput with 1, 2 and 4 replicas")
    parser.add_argument("--families", type=int, default=4000)
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--in-flight", type=int, default=8, help="payments in flight per replica")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    args = parser.parse_args()
    console = Console()
    console.print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="bench-distribution-scale-") as tmp:
        stack = Stack(Path(tmp))
        try:
            results = asyncio.run(run(args, stack, console))
        finally:
            stack.close()
    base = results[0]["payouts_per_second"] / results[0]["replicas"]
    table = Table(title=f"{args.families:,} families per round, gateway latency {args.latency_ms:.0f} ms, "
                        f"{args.in_flight} payments in flight per replica (ceiling "
                        f"{args.in_flight / (args.latency_ms / 1000):,.0f}/s per replica)")
    for column in ("replicas", "paid", "payouts/s", "speed-up", "per replica vs one", "round (s)",
                   "machine CPU busy"):
        table.add_column(column, justify="right")
    for r in results:
        rate = r["payouts_per_second"]
        table.add_row(str(r["replicas"]), f"{r['paid']:,}", f"{rate:,.0f}",
                      f"{rate / results[0]['payouts_per_second']:.2f}x", f"{rate / r['replicas'] / base:.0%}",
                      f"{r['round_seconds']:,.1f}", f"{r['cpu_busy']:.0%}")
    console.print(table)
    console.print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
