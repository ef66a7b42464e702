"""Services (and helpers such as the simulated gateway) as real OS processes in tests and benchmarks.

Lives in the shared kit, not in the workspace's ``tests/``, so that a single service's tests can
import it too. ``ServiceProcess`` starts ``python -m <module>`` (or a command line) on the test's
servers, namespace and databases with JSON logs to a file, and offers what chaos tests need: wait
until ready, SIGTERM, SIGKILL, start again on the same port, read the log records and metrics.

Every wait polls a condition against a deadline; nothing relies on a bare sleep.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import httpx
from prometheus_client.parser import text_string_to_metric_families

from ..localstack import free_port

__all__ = ["TEST_AUTH_SECRET", "ServiceProcess", "ServiceProcessError", "free_port"]

#: Token-signing secret of the service processes tests start (tests issue tokens with it).
TEST_AUTH_SECRET = "test-only-auth-secret-0123456789abcdef"  # noqa: S105


class ServiceProcessError(AssertionError):
    """A service process did not do what the test waited for; the message carries its log tail."""


class ServiceProcess:
    """One child process: a service (any module runnable with ``python -m``) or the command line ``argv``.

    The child's environment is the current one without its ``PUSKESOS_*`` variables, plus ``env``,
    ``PUSKESOS_HTTP_PORT`` (a free port unless ``port`` is given), ``PUSKESOS_LOG_JSON=true`` (unless
    ``env`` says otherwise) and ``PYTHONUNBUFFERED``. With ``argv`` the command must listen on ``port``
    by its own arguments (programs other than the services ignore the ``PUSKESOS_*`` variables).
    """

    def __init__(
        self,
        module: str | None = None,
        *,
        argv: Sequence[str] | None = None,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        cwd: Path | None = None,
        name: str | None = None,
    ) -> None:
        if (module is None) == (argv is None):
            raise ValueError("give either a module or an argv")
        self.module = module
        self.argv = [sys.executable, "-m", module] if module is not None else list(argv or ())
        self.name = name or (module.removeprefix("puskesos_") if module is not None else log_path.stem)
        self.log_path = log_path
        self.port = port or free_port()
        # The working directory is the log's directory so that a developer's
        # ``.local/stack/stack.env`` (read by the settings) cannot leak into the test.
        self.cwd = cwd or log_path.parent
        self.env: dict[str, str] = {**(env or {}), "PUSKESOS_HTTP_PORT": str(self.port)}
        self.env.setdefault("PUSKESOS_LOG_JSON", "true")
        self._popen: subprocess.Popen[bytes] | None = None
        self._log_offset = 0  # where the current run's output starts in the log file

    @classmethod
    def for_service(
        cls,
        service: str,
        *,
        nats_url: str,
        mongo_url: str,
        namespace: str,
        db_prefix: str,
        log_dir: Path,
        extra_env: Mapping[str, str] | None = None,
        port: int | None = None,
    ) -> ServiceProcess:
        """A ``puskesos_{service}`` process on the test's servers, namespace and (prefixed) database."""
        env = {
            "PUSKESOS_NATS_URL": nats_url,
            "PUSKESOS_MONGO_URL": mongo_url,
            "PUSKESOS_NAMESPACE": namespace,
            "PUSKESOS_MONGO_DB": f"{db_prefix}_{service}",
            # signs officer tokens; the audit keys are derived from it when not set apart
            "PUSKESOS_AUTH_SECRET": TEST_AUTH_SECRET,
            **(extra_env or {}),
        }
        log_dir.mkdir(parents=True, exist_ok=True)
        return cls(f"puskesos_{service}", log_path=log_dir / f"{service}.log", env=env, port=port, name=service)

    # lifecycle -------------------------------------------------------------------------
    def start(self, **extra_env: str) -> ServiceProcess:
        """Starts the process (again, after it stopped); output is appended to ``log_path``.

        ``extra_env`` applies to this run only (a fault hook, say); a later start goes without it.
        """
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.cwd.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PUSKESOS_")}
        env.update(self.env)
        env.update(extra_env)
        env["PYTHONUNBUFFERED"] = "1"
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self._popen = subprocess.Popen(
                self.argv,
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, cwd=self.cwd, start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._popen.poll() if self._popen is not None else None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self, path: str = "/health/ready") -> bool:
        """One probe, no waiting: whether the process runs and answers 200 on ``path`` right now."""
        if not self.running:
            return False
        try:
            return httpx.get(f"{self.base_url}{path}", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout: float = 60.0, *, path: str = "/health/ready") -> float:
        """Polls ``path`` until it answers 200; returns the seconds it took.

        Fails with the log tail when the process exits first or the deadline passes.
        """
        started = time.monotonic()
        deadline = started + timeout
        last: str = "no answer yet"
        with httpx.Client(base_url=self.base_url, timeout=2.0) as client:
            while True:
                if not self.running:
                    self._fail(f"exited with code {self.returncode} before it was ready")
                try:
                    response = client.get(path)
                    if response.status_code == 200:
                        return time.monotonic() - started
                    last = f"HTTP {response.status_code}: {response.text}"
                except httpx.HTTPError as exc:
                    last = repr(exc)
                if time.monotonic() > deadline:
                    self._fail(f"not ready after {timeout:.0f}s (last answer on {path}: {last})")
                time.sleep(0.1)

    def wait_exit(self, timeout: float = 30.0) -> int:
        """Waits for the process to end; returns its exit code (negative: killed by that signal)."""
        assert self._popen is not None, "process was never started"
        try:
            return self._popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._fail(f"still running after {timeout:.0f}s")

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM (graceful stop) and wait; returns the exit code. Fails if it does not stop in time."""
        assert self._popen is not None, "process was never started"
        if self.running:
            self._popen.send_signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def kill(self) -> int:
        """SIGKILL (no clean-up of any kind) and reap; returns the exit code (``-9`` when it was still running)."""
        assert self._popen is not None, "process was never started"
        if self.running:
            self._popen.kill()
        return self._popen.wait(timeout=10)

    def stop(self, timeout: float = 20.0) -> None:
        """Teardown: SIGTERM, then SIGKILL if it lingers past ``timeout``; never raises, also when never started."""
        if not self.running or self._popen is None:
            return
        self._popen.send_signal(signal.SIGTERM)
        try:
            self._popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._popen.kill()
            self._popen.wait(timeout=10)

    # observation -----------------------------------------------------------------------
    def metric(self, name: str) -> float:
        """The value of the sample ``name`` on ``/metrics`` now (0 when the service has none yet)."""
        text = httpx.get(f"{self.base_url}/metrics", timeout=5.0).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name:
                    return float(sample.value)
        return 0.0

    def log_text(self, *, current_run: bool = False) -> str:
        if not self.log_path.exists():
            return ""
        data = self.log_path.read_bytes()
        return data[self._log_offset:].decode(errors="replace") if current_run else data.decode(errors="replace")

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_text()[-chars:]

    def log_records(self, *, current_run: bool = False) -> list[dict[str, Any]]:
        """The log's JSON lines as dicts (lines that are not JSON objects are skipped)."""
        records = []
        for line in self.log_text(current_run=current_run).splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records

    def non_json_lines(self, *, current_run: bool = False) -> list[str]:
        """Non-empty output lines that are not JSON objects (structured logging leaks)."""
        bad = []
        for line in self.log_text(current_run=current_run).splitlines():
            if not line.strip():
                continue
            try:
                ok = isinstance(json.loads(line), dict)
            except ValueError:
                ok = False
            if not ok:
                bad.append(line)
        return bad

    def wait_for_log(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30.0) -> dict[str, Any]:
        """Polls the log until a JSON record satisfies ``predicate``; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            for record in self.log_records(current_run=True):
                if predicate(record):
                    return record
            if time.monotonic() > deadline:
                self._fail(f"no matching log record after {timeout:.0f}s")
            time.sleep(0.1)

    def _fail(self, what: str) -> NoReturn:
        raise ServiceProcessError(f"{self.name} (pid {self.pid}, port {self.port}) {what}; "
                                  f"log {self.log_path}:\n{self.log_tail()}")

    def __repr__(self) -> str:
        return f"ServiceProcess({self.name!r}, pid={self.pid}, port={self.port}, running={self.running})"
