"""The local stack's watchdog: when the in-memory Mongo engine dies, the stack stops with it.

The engine keeps its data in memory. If it died and NATS went on, the streams and the consumers'
positions would remember events whose effects the database forgot, and a restarted engine would
make services decide them again (or never). So ``puskesos stack up`` starts this watchdog beside
the engine: it waits on the engine's process (a pidfd: no polling, no CPU while idle), and when the
engine exits without ``stack down`` having stopped the watchdog first, it stops every service
process and nats-server (each node of a cluster, a server entry of its own) and leaves a notice
that ``stack status`` and ``stack up`` show. The next
``stack up`` starts the engine and NATS empty together.

    python -m puskesos_cli.watchdog --engine-pid PID --stack-dir DIR
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import select
import signal
import sys
from pathlib import Path

from .state import process_from

NOTICE_FILE = "engine-stopped.txt"


def wait_for_exit(pid: int) -> None:
    """Blocks until process ``pid`` (not necessarily our child) has exited."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while not poller.poll():
            pass
    finally:
        os.close(fd)


def stop_stack(stack_dir: Path, engine_pid: int) -> list[str]:
    """Stops the services and nats-server recorded in the stack's state; returns what it stopped."""
    state_path = stack_dir / "state.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    stopped = []
    for entry in state.get("services", []):
        process_from(entry).stop(timeout=10)
        stopped.append(str(entry["name"]))
    for name, entry in state.get("servers", {}).items():
        pid = int(entry.get("pid", 0))
        if pid > 0 and pid != engine_pid and name != "watchdog":
            process_from(entry).stop()
            stopped.append(name)
    return stopped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--engine-pid", type=int, required=True)
    parser.add_argument("--stack-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    # `stack down` stops this process (SIGTERM) before the engine: that is a deliberate stop.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    wait_for_exit(args.engine_pid)
    stopped = stop_stack(args.stack_dir, args.engine_pid)
    at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    notice = (f"The local Mongo engine (pid {args.engine_pid}) stopped at {at} without `stack down`.\n"
              f"Its data lived in memory, so the watchdog stopped the rest of the stack with it "
              f"({', '.join(stopped) or 'nothing else was running'}): NATS must not remember events the database "
              f"forgot.\n`uv run puskesos stack up` starts the engine and NATS empty together.\n")
    (args.stack_dir / NOTICE_FILE).write_text(notice)
    print(notice, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
