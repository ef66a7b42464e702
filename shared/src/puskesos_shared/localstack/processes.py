"""Starting, probing and stopping the local servers as child processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from pymongo import MongoClient

from .binaries import NO_MONGO_HELP, StackError, java_binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ManagedProcess:
    name: str
    pid: int
    port: int
    url: str
    log_path: Path

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # pragma: no cover
            return True
        # a zombie child counts as dead
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
            return stat.split(")")[-1].split()[0] != "Z"
        except OSError:
            return True

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds."""
        if not self.alive():
            return
        os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _reap(self.pid)
            if not self.alive():
                return
            time.sleep(0.05)
        os.kill(self.pid, signal.SIGKILL)
        _reap(self.pid)

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "pid": self.pid, "port": self.port, "url": self.url, "log": str(self.log_path)}


def _reap(pid: int) -> None:
    with suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _spawn(argv: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)


def _wait(probe_name: str, proc: ManagedProcess, check: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if not proc.alive():
            tail = proc.log_path.read_text(errors="replace")[-1500:] if proc.log_path.exists() else ""
            raise StackError(f"{probe_name} exited during start-up; log {proc.log_path}:\n{tail}")
        try:
            if check():  # type: ignore[operator]
                return
        except Exception as exc:  # keep probing until the deadline
            last = exc
        time.sleep(0.1)
    proc.stop()
    raise StackError(f"{probe_name} did not become ready in {timeout:.0f}s (last error: {last!r}); log {proc.log_path}")


def _nats_ready(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
        line = s.makefile("rb").readline()
    if not line.startswith(b"INFO "):
        return False
    info = json.loads(line[5:])
    return bool(info.get("jetstream"))


def local_server_name(port: int) -> str:
    """The name of the local nats-server on ``port`` (a configuration reloaded later must repeat it)."""
    return f"puskesos-local-{port}"


def start_nats(binary: Path, data_dir: Path, log_path: Path, *, port: int | None = None,
               timeout: float = 20.0, config_file: Path | None = None) -> ManagedProcess:
    """nats-server with JetStream (file storage under ``data_dir``) on 127.0.0.1.

    ``config_file`` replaces the JetStream flags with a configuration (its ``jetstream`` block,
    users and permissions); the address and port still come from the flags here.
    """
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    storage = ["-c", str(config_file)] if config_file else ["-js", "-sd", str(data_dir)]
    argv = [str(binary), *storage, "-a", "127.0.0.1", "-p", str(port), "--server_name", local_server_name(port)]
    popen = _spawn(argv, log_path)
    proc = ManagedProcess("nats", popen.pid, port, f"nats://127.0.0.1:{port}", log_path)
    _wait("nats-server", proc, lambda: _nats_ready(port), timeout)
    return proc


def _mongo_ready(url: str) -> bool:
    client: MongoClient[dict[str, object]] = MongoClient(url, serverSelectionTimeoutMS=500, connectTimeoutMS=500)
    try:
        client.admin.command("ping")
        return True
    finally:
        client.close()


DEFAULT_MONGO_HEAP = "8g"


def mongo_heap(default: str = DEFAULT_MONGO_HEAP) -> str:
    """The engine's JVM heap limit (``-Xmx``): ``PUSKESOS_MONGO_HEAP`` or ``default``.

    Everything the engine holds lives in that heap (the JVM takes from the machine only what it
    uses, up to this cap): a 1,000,000-event audit log with its trace index needs about 7 GB live
    (bench/audit_trace.py runs it with 12g); the demo at full scale fits in the default.
    """
    return os.environ.get("PUSKESOS_MONGO_HEAP", default)


def start_mongo_server(jar: Path, log_path: Path, *, port: int | None = None, heap: str | None = None,
                       timeout: float = 60.0) -> ManagedProcess:
    """The local Mongo-compatible engine (mongo-java-server, in memory) on 127.0.0.1.

    Its data lives in the process: a restart starts it empty (``puskesos stack`` resets NATS with it).
    """
    java = java_binary()
    if java is None:
        raise StackError(NO_MONGO_HELP)
    port = port or free_port()
    # G1 grows a multi-GB heap without the tens-of-seconds full collections of the parallel collector
    # (measured with a 1M-event audit log); a 50 ms pause goal keeps young collections short enough
    # for intake's p99 (bench/intake_http.py: p99 90 ms with G1's default 200 ms goal, 14 ms with
    # 50 ms); deduplicating strings shares the field names every stored document repeats; one log
    # line per collection goes to the engine's log.
    argv = [str(java), f"-Xmx{heap or mongo_heap()}", "-Xss512k", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=50", "-Xlog:gc",
            "-XX:+UseStringDeduplication", "-XX:+ExitOnOutOfMemoryError",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-jar", str(jar), "--port", str(port)]
    popen = _spawn(argv, log_path)
    url = f"mongodb://127.0.0.1:{port}/"
    proc = ManagedProcess("mongo", popen.pid, port, url, log_path)
    _wait("the local Mongo engine", proc, lambda: _mongo_ready(url), timeout)
    return proc
