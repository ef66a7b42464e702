"""The whole local stack idle after the demo: CPU per process, against the servers alone.

    uv run python bench/stack_idle.py [--size 200] [--seconds 60] [--measure-running]

Runs ``puskesos demo --keep`` (the five services, two distribution replicas, the simulated bank,
nats-server, the Mongo engine and its watchdog, with the demo's data), waits until the services'
background work has settled (every process's CPU over a 5 s window below 5% of a core, at most
120 s), then measures each process's CPU time (``/proc/PID/stat``, user + system) over
``--seconds`` and prints it as a share of one core. The floor, from the same window: the two
servers (nats-server and the engine), which any deployment runs. Target (BRIEF §6): the whole
stack idle below 2% of one core. Stops everything afterwards (``--measure-running`` measures a
stack that is already up and leaves it running).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from puskesos_shared.localstack import repo_root
from rich.console import Console
from rich.table import Table

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def stack_processes() -> dict[str, int]:
    state = json.loads((repo_root() / ".local" / "stack" / "state.json").read_text())
    procs = {name: int(e["pid"]) for name, e in state.get("servers", {}).items() if int(e.get("pid", 0)) > 0}
    procs.update({str(e["name"]): int(e["pid"]) for e in state.get("services", [])})
    return procs


def shares(procs: dict[str, int], seconds: float) -> dict[str, float]:
    """Each process's CPU over a window of ``seconds``, in % of one core."""
    before = {name: cpu_seconds(pid) for name, pid in procs.items()}
    began = time.monotonic()
    time.sleep(seconds)  # the measurement window itself
    wall = time.monotonic() - began
    out = {}
    for name, pid in procs.items():
        after, start = cpu_seconds(pid), before[name]
        if after is not None and start is not None:
            out[name] = 100 * (after - start) / wall
    return out


def settle(procs: dict[str, int], console: Console, limit: float = 120.0) -> float:
    began = time.monotonic()
    with console.status("waiting until the services' background work has settled ..."):
        while time.monotonic() - began < limit:
            if max(shares(procs, 5).values(), default=0) < 5:
                break
    return time.monotonic() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size", type=int, default=200, help="households the demo registers")
    parser.add_argument("--seconds", type=float, default=60.0, help="measurement window")
    parser.add_argument("--measure-running", action="store_true", help="measure the running stack, leave it up")
    args = parser.parse_args()
    console = Console()
    cli = [sys.executable, "-m", "puskesos_cli.main"]
    if not args.measure_running:
        console.print(f"running the demo ({args.size} households) with --keep ...")
        began = time.monotonic()
        demo = subprocess.run([*cli, "demo", "--size", str(args.size), "--keep"], capture_output=True, text=True,
                              check=False, cwd=repo_root())
        if demo.returncode != 0:
            console.print(demo.stdout[-3000:], demo.stderr[-3000:])
            raise SystemExit(f"the demo failed (exit {demo.returncode})")
        console.print(f"demo done in {time.monotonic() - began:.0f} s")
    try:
        procs = stack_processes()
        waited = settle(procs, console)
        console.print(f"settled after {waited:.0f} s; load average {os.getloadavg()} (2 cores, shared)")
        measured = shares(procs, args.seconds)
        table = Table("process", "pid", "CPU (% of one core)", title=f"idle over {args.seconds:.0f} s")
        for name, share in sorted(measured.items(), key=lambda kv: -kv[1]):
            table.add_row(name, str(procs[name]), f"{share:.2f}")
        console.print(table)
        total = sum(measured.values())
        floor = sum(v for k, v in measured.items() if k in ("nats", "mongo"))
        console.print(f"whole stack: {total:.2f}% of one core (target < 2%); floor (nats-server + engine): "
                      f"{floor:.2f}%; services and bank: {total - floor:.2f}%")
    finally:
        if not args.measure_running:
            subprocess.run([*cli, "services", "down"], capture_output=True, check=False, cwd=repo_root())
            subprocess.run([*cli, "stack", "down"], capture_output=True, check=False, cwd=repo_root())


if __name__ == "__main__":
    main()
