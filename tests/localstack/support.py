"""The ``puskesos`` CLI run as a user runs it, in a home of its own (never the developer's stack)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from puskesos_shared.localstack import ManagedProcess


def cli(env: dict[str, str], *args: str, timeout: float = 180, stdin: str | None = None
        ) -> subprocess.CompletedProcess[str]:
    """``puskesos ARGS`` in the home of ``env`` (stdin: the text piped in; none: not a terminal, empty)."""
    return subprocess.run([sys.executable, "-m", "puskesos_cli.main", *args], env=env, cwd=env["PUSKESOS_HOME"],
                          capture_output=True, text=True, check=False, timeout=timeout, input=stdin or "")


def stack_state(stack_dir: Path) -> dict[str, Any]:
    state: dict[str, Any] = json.loads((stack_dir / "state.json").read_text())
    return state


def process(entry: dict[str, Any]) -> ManagedProcess:
    return ManagedProcess(entry["name"], int(entry["pid"]), int(entry["port"]), entry["url"], Path(entry["log"]))


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for: {what}")
        time.sleep(0.1)
