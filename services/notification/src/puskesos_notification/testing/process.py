"""The notification service as a real OS process (kill tests, benchmarks).

A small stand-in for the workspace's ``tests/support/processes.py``, which is not importable
when only this service's tests run.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NotificationProcess:
    def __init__(self, *, env: Mapping[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.env = {**env, "PUSKESOS_HTTP_PORT": str(self.port), "PUSKESOS_LOG_JSON": "true"}
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def start(self) -> NotificationProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PUSKESOS_")}
        env.update(self.env, PYTHONUNBUFFERED="1")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._popen = subprocess.Popen([sys.executable, "-m", "puskesos_notification"], stdout=log,
                                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                           cwd=self.log_path.parent, start_new_session=True)
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Polls /health/ready until 200; fails with the log tail if the process exits or the deadline passes."""
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=2.0) as client:
            while True:
                if not self.running:
                    raise AssertionError(f"the service exited before it was ready:\n{self.log_tail()}")
                try:
                    if client.get("/health/ready").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"the service was not ready after {timeout:.0f}s:\n{self.log_tail()}")
                time.sleep(0.1)

    def kill(self) -> int:
        """SIGKILL (no clean-up of any kind) and reap; returns the exit status."""
        assert self._popen is not None
        if self.running:
            self._popen.send_signal(signal.SIGKILL)
        return self._popen.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers; never raises."""
        if self._popen is None or not self.running:
            return
        self._popen.send_signal(signal.SIGTERM)
        try:
            self._popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._popen.kill()
            self._popen.wait(timeout=10)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""
