"""A local NATS cluster as production runs it (``deploy/nats/nats.conf``), as child processes.

``start_nats_cluster`` starts ``size`` nats-server processes on 127.0.0.1, each with a client, a
cluster (routes to every node, a route password of its own) and a monitoring port, JetStream file
storage in a directory per node, and production's server settings (``sync_interval: always``,
max_payload, lame duck...). ``size=1`` is one such server alone, without a cluster block: the
benchmark compares it with the cluster at the same fsync setting.

Leaders and health are read from the monitoring port (``/healthz``, ``/jsz``): no credentials are
needed, and a frozen node (SIGSTOP) only costs a short timeout.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .binaries import StackError
from .processes import ManagedProcess, _reap, _spawn, _wait, free_port

#: Server settings of deploy/nats/nats.conf (the storage limits there are sized for production disks).
SERVER_SETTINGS: dict[str, Any] = {
    "max_payload": 1024 * 1024,
    "max_connections": 4096,
    "write_deadline": "10s",
    "lame_duck_duration": "30s",
    "lame_duck_grace_period": "10s",
}
MONITOR_TIMEOUT = 1.0


def monitor_json(url: str, timeout: float = MONITOR_TIMEOUT) -> dict[str, Any] | None:
    """GET a monitoring endpoint; None when the node does not answer (down, frozen, starting)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (a local http URL)
            data: dict[str, Any] = json.loads(response.read())
            return data
    except (OSError, ValueError):
        return None


@dataclass
class NatsNode:
    """One nats-server of a local cluster; it restarts on the same ports, configuration and data."""

    name: str
    port: int
    cluster_port: int
    monitor_port: int
    data_dir: Path
    config_path: Path
    log_path: Path
    binary: Path
    pid: int = 0

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://127.0.0.1:{self.monitor_port}"

    def process(self) -> ManagedProcess:
        return ManagedProcess(self.name, self.pid, self.port, self.url, self.log_path)

    def alive(self) -> bool:
        return self.pid > 0 and self.process().alive()

    def healthy(self, *, js_enabled_only: bool = False) -> bool:
        """``/healthz`` answers ok: JetStream is current with the meta leader and every stream and
        consumer this node holds (``js_enabled_only``: JetStream is merely enabled)."""
        query = "?js-enabled-only=true" if js_enabled_only else ""
        return (monitor_json(f"{self.monitor_url}/healthz{query}") or {}).get("status") == "ok"

    def jsz(self, query: str = "") -> dict[str, Any] | None:
        return monitor_json(f"{self.monitor_url}/jsz{query}")

    def start(self, timeout: float = 20.0) -> None:
        """Starts the process (again) and waits until JetStream is enabled."""
        if self.alive():
            raise StackError(f"{self.name} is already running (pid {self.pid})")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.pid = _spawn([str(self.binary), "-c", str(self.config_path)], self.log_path).pid
        _wait(f"nats-server {self.name}", self.process(), lambda: self.healthy(js_enabled_only=True), timeout)

    def kill(self) -> None:
        """SIGKILL: the node dies at once (its data directory stays)."""
        self._signal(signal.SIGKILL)
        with suppress(ChildProcessError):
            os.waitpid(self.pid, 0)

    def pause(self) -> None:
        """SIGSTOP: the node freezes with its connections open (a hung machine)."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after ``pause``."""
        self._signal(signal.SIGCONT)

    def lame_duck(self) -> None:
        """SIGUSR2: lame duck mode (clients move away over ``lame_duck_duration``, then it exits)."""
        self._signal(signal.SIGUSR2)

    def restart(self, timeout: float = 20.0) -> None:
        """Kills the node if it runs, then starts it on the same ports, configuration and data."""
        if self.alive():
            self.kill()
        self.start(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (after SIGCONT: a frozen node would not act on it), SIGKILL after ``timeout``."""
        if self.alive():
            self.resume()
            self.process().stop(timeout)

    def _signal(self, signum: int) -> None:
        if self.pid <= 0:
            raise StackError(f"{self.name} has not been started")
        with suppress(ProcessLookupError):
            os.kill(self.pid, signum)
        _reap(self.pid)

    def to_json(self) -> dict[str, object]:
        """The stack's state entry (``ManagedProcess``'s fields and what a restart needs)."""
        return {**self.process().to_json(), "cluster_port": self.cluster_port, "monitor_port": self.monitor_port,
                "monitor_url": self.monitor_url, "data_dir": str(self.data_dir), "config": str(self.config_path),
                "binary": str(self.binary)}

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> NatsNode:
        return cls(str(entry["name"]), int(entry["port"]), int(entry["cluster_port"]), int(entry["monitor_port"]),
                   Path(entry["data_dir"]), Path(entry["config"]), Path(entry["log"]), Path(entry["binary"]),
                   int(entry["pid"]))


def _leader(views: Mapping[str, str]) -> str | None:
    """The leader among what each node says (node name -> leader it reports): a node that names itself
    (a node frozen and thawed may still believe it leads: then the one most nodes name)."""
    claimants = [name for name, leader in views.items() if leader == name]
    if len(claimants) <= 1:
        return claimants[0] if claimants else None
    counts = Counter(views.values())
    return max(claimants, key=lambda name: counts[name])


@dataclass
class LocalNatsCluster:
    name: str
    nodes: list[NatsNode]

    @property
    def urls(self) -> list[str]:
        """Every node's client URL (what clients connect with)."""
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        """The client URLs comma-separated (the form of ``PUSKESOS_NATS_URL``)."""
        return ",".join(self.urls)

    def node(self, name: str) -> NatsNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(f"no node {name!r} in {[n.name for n in self.nodes]}")

    def meta_leader(self) -> str | None:
        """The JetStream meta leader's node name (None during an election)."""
        if len(self.nodes) == 1:
            return self.nodes[0].name if self.nodes[0].healthy(js_enabled_only=True) else None
        views = {}
        for node in self.nodes:
            leader = ((node.jsz() or {}).get("meta_cluster") or {}).get("leader")
            if leader:
                views[node.name] = str(leader)
        return _leader(views)

    def meta_problems(self) -> list[str]:
        """Why the JetStream meta group cannot place streams on every node (empty: it can)."""
        leader = self.meta_leader()
        if leader is None:
            return ["no meta leader"]
        peers = ((self.node(leader).jsz() or {}).get("meta_cluster") or {}).get("replicas") or []
        current = {p.get("name") for p in peers if p.get("current") and not p.get("offline")}
        behind = [n.name for n in self.nodes if n.name != leader and n.name not in current]
        return [f"meta group: {', '.join(behind)} not current with the leader {leader}"] if behind else []

    def stream_info(self, stream: str) -> dict[str, Any] | None:
        """The stream as its leader reports it (``/jsz`` stream detail with ``config``; ``cluster.leader``,
        ``cluster.replicas``), None when no node leads it."""
        details: dict[str, dict[str, Any]] = {}
        for node in self.nodes:
            for account in (node.jsz("?streams=true&config=true") or {}).get("account_details") or []:
                for detail in account.get("stream_detail") or []:
                    if detail.get("name") == stream:
                        details[node.name] = detail
        if len(self.nodes) == 1:
            return next(iter(details.values()), None)
        views = {name: str((d.get("cluster") or {}).get("leader") or "") for name, d in details.items()}
        leader = _leader({name: leader for name, leader in views.items() if leader})
        return details[leader] if leader else None

    def stream_leader(self, stream: str) -> str | None:
        """The node leading ``stream`` (None while it has none)."""
        info = self.stream_info(stream)
        if info is None:
            return None
        return str((info.get("cluster") or {}).get("leader") or self.nodes[0].name)

    def problems(self, streams: Iterable[str] = ()) -> list[str]:
        """What keeps the cluster from being healthy (empty: healthy)."""
        out = [f"{n.name} is down" for n in self.nodes if not n.alive()]
        out += [f"{n.name} is not current (/healthz)" for n in self.nodes if n.alive() and not n.healthy()]
        out += self.meta_problems()
        for stream in streams:
            info = self.stream_info(stream)
            if info is None:
                out.append(f"{stream} has no leader")
                continue
            replicas = (info.get("cluster") or {}).get("replicas") or []
            wanted = int((info.get("config") or {}).get("num_replicas") or 1)
            behind = [r.get("name") for r in replicas if not r.get("current") or r.get("offline")]
            if len(replicas) + 1 < wanted or behind:
                out.append(f"{stream}: {len(replicas) + 1}/{wanted} replicas, not current: {behind}")
        return out

    def wait_healthy(self, streams: Iterable[str] = (), timeout: float = 30.0) -> None:
        """Waits until every node is up and current, a meta leader is known and each of ``streams``
        has a leader and all its replicas current; StackError names what was missing at the deadline."""
        streams = list(streams)
        wait_for(lambda: not self.problems(streams), timeout, lambda: "; ".join(self.problems(streams)))

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "nodes": [node.to_json() for node in self.nodes]}

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> LocalNatsCluster:
        return cls(str(entry["name"]), [NatsNode.from_json(node) for node in entry["nodes"]])


def wait_for(condition: Callable[[], bool], timeout: float, describe: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise StackError(f"not ready after {timeout:.0f}s: {describe()}")
        time.sleep(0.1)


def node_config(node: NatsNode, nodes: list[NatsNode], *, cluster_name: str, route_password: str,
                sync_always: bool, authorization: Mapping[str, Any] | None) -> dict[str, Any]:
    """One node's configuration (JSON is valid NATS configuration syntax)."""
    jetstream: dict[str, Any] = {"store_dir": str(node.data_dir)}
    if sync_always:
        jetstream["sync_interval"] = "always"
    config: dict[str, Any] = {"server_name": node.name, "listen": f"127.0.0.1:{node.port}",
                              "http": f"127.0.0.1:{node.monitor_port}", **SERVER_SETTINGS, "jetstream": jetstream}
    if len(nodes) > 1:
        config["cluster"] = {
            "name": cluster_name, "listen": f"127.0.0.1:{node.cluster_port}",
            "authorization": {"user": "route", "password": route_password, "timeout": 2},
            "routes": [f"nats-route://route:{route_password}@127.0.0.1:{n.cluster_port}" for n in nodes],
            "no_advertise": True,  # as in production: clients connect with the URL list
        }
    if authorization:
        config["authorization"] = dict(authorization)
    return config


def start_nats_cluster(binary: Path, data_root: Path, log_dir: Path, *, size: int = 3,
                       authorization: Mapping[str, Any] | None = None, sync_always: bool = True,
                       name: str = "puskesos-local", timeout: float = 30.0) -> LocalNatsCluster:
    """``size`` nats-servers: node ``n1``... with data in ``data_root/n1``, configuration ``data_root/n1.conf``
    and log ``log_dir/nats-n1.log``...; ``authorization`` is the configurations' ``authorization`` block (the
    stack's users, see ``permissions.nats_authorization``). Returns once every node has JetStream and the meta
    leader has every node current (streams can be placed on all)."""
    if size < 1:
        raise ValueError("a cluster has at least one node")
    log_dir.mkdir(parents=True, exist_ok=True)
    data_root.mkdir(parents=True, exist_ok=True)
    nodes = [NatsNode(f"n{i}", free_port(), free_port(), free_port(), data_root / f"n{i}",
                      data_root / f"n{i}.conf", log_dir / f"nats-n{i}.log", binary) for i in range(1, size + 1)]
    route_password = secrets.token_urlsafe(18)
    for node in nodes:
        config = node_config(node, nodes, cluster_name=name, route_password=route_password,
                             sync_always=sync_always, authorization=authorization)
        node.config_path.write_text(json.dumps(config, indent=2))
        node.config_path.chmod(0o600)
    cluster = LocalNatsCluster(name, nodes)
    try:
        for node in nodes:  # each node waits for the routes only once JetStream is up: start them all first
            node.data_dir.mkdir(parents=True, exist_ok=True)
            node.pid = _spawn([str(binary), "-c", str(node.config_path)], node.log_path).pid
        for node in nodes:
            _wait(f"nats-server {node.name}", node.process(), lambda n=node: n.healthy(js_enabled_only=True), timeout)
        wait_for(lambda: not cluster.meta_problems(), timeout, lambda: "; ".join(cluster.meta_problems()))
    except BaseException:
        cluster.stop()
        raise
    return cluster
