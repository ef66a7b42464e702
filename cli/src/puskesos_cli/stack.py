"""``puskesos stack``: nats-server (one, or a cluster: ``--nats-cluster 3``) and the Mongo-compatible engine on
free local ports, without Docker.

Local data and restarts: the engine (mongo-java-server) keeps its data in memory, so the stack's
life is tied to it. ``stack up`` starts the engine and NATS together and empty (NATS's stream data
is reset whenever the engine starts); ``stack down`` stops both and the data is gone; if the engine
dies, a watchdog (``watchdog``) stops NATS and the services with it and leaves a notice. Never does
NATS remember events (or consumer positions) that the database forgot. With ``PUSKESOS_MONGO_URL``
(a MongoDB you run) the database keeps its data and so does NATS.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import nats
import typer
from puskesos_shared.localstack import (
    ManagedProcess,
    StackError,
    build_mongo_server,
    find_mongo_server_jar,
    mongo_heap,
    start_mongo_server,
)
from puskesos_shared.messaging.streams import ensure_streams
from puskesos_shared.permissions import (
    SERVICES,
    NatsUser,
    admin_user,
    generate_passwords,
    nats_authorization,
    nats_config,
    service_user,
)
from puskesos_shared.settings import nats_servers
from puskesos_shared.subscribers import SubscriberBook, SubscriberSecrets, subscriber_user
from puskesos_shared.topology import Topology
from rich.console import Console
from rich.table import Column, Table

from . import stack_nats, state, watchdog

app = typer.Typer(help="Local NATS (JetStream) and the Mongo-compatible engine (in memory).", no_args_is_help=True)
console = Console(stderr=True)


def _running() -> dict[str, dict[str, object]]:
    servers = state.load().get("servers", {})
    return {name: entry for name, entry in servers.items() if stack_nats.alive(servers, name)}


async def _provision_streams(nats_url: str, namespace: str, replicas: int) -> None:
    nc = await nats.connect(nats_servers(nats_url), user="admin", password=nats_passwords()["admin"])
    try:
        await ensure_streams(nc.jetstream(), Topology(namespace=namespace, replicas=replicas))
    finally:
        await nc.drain()


def auth_secret() -> str:
    """The local stack's token-signing secret, generated once (never committed: .local is ignored)."""
    path = state.stack_dir() / "auth-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def nats_passwords() -> dict[str, str]:
    """Passwords of the local NATS users (one per service, admin), generated once into .local/stack."""
    path = state.stack_dir() / "nats-users.json"
    if path.exists():
        stored: dict[str, str] = json.loads(path.read_text())
        return stored
    passwords = generate_passwords([*SERVICES, "admin"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(passwords, indent=2))
    path.chmod(0o600)
    return passwords


def _nats_users() -> list[NatsUser]:
    """The services', the admin's and the external subscribers' (``puskesos subscribers``)."""
    passwords = nats_passwords()
    topology = Topology()
    users = [service_user(s, passwords[s], topology) for s in SERVICES] + [admin_user(passwords["admin"])]
    secrets = SubscriberSecrets(state.subscriber_secrets_file()).load()
    for subscriber in SubscriberBook(state.subscribers_file()).load():
        user = subscriber_user(subscriber, secrets.get(subscriber.name, {}).get("nats_password", ""), topology)
        if user is not None and user.password:
            users.append(user)
    return users


def reload_nats_users() -> bool:
    """Writes the users again into the running NATS configuration (every node of a cluster) and has
    nats-server reload it (SIGHUP); False when NATS is not running."""
    servers = state.load().get("servers", {})
    if "nats" not in servers or not stack_nats.alive(servers, "nats"):
        return False
    stack_nats.reload(servers, config=lambda: _nats_config(state.stack_dir() / "data" / "nats"),
                      authorization=lambda: nats_authorization(_nats_users()))
    return True


def _nats_config(store_dir: Path) -> Path:
    path = state.stack_dir() / "nats.conf"
    path.write_text(nats_config(_nats_users(), store_dir=str(store_dir)))
    path.chmod(0o600)
    return path


def _write_env(nats_url: str, mongo_url: str, replicas: int) -> None:
    """Connection settings for tools run against the stack (as the admin user; services get their own);
    ``nats_url`` lists a cluster's servers comma-separated, and the streams have ``replicas``."""
    state.env_file().write_text(
        f"PUSKESOS_NATS_URL={nats_url}\nPUSKESOS_MONGO_URL={mongo_url}\nPUSKESOS_AUTH_SECRET={auth_secret()}\n"
        f"PUSKESOS_NATS_USER=admin\nPUSKESOS_NATS_PASSWORD={nats_passwords()['admin']}\n"
        f"PUSKESOS_STREAM_REPLICAS={replicas}\n"
        f"PUSKESOS_SUBSCRIBERS_FILE={state.subscribers_file()}\n"
        f"PUSKESOS_SUBSCRIBER_SECRETS_FILE={state.subscriber_secrets_file()}\n"
    )
    state.env_file().chmod(0o600)


def ensure_engine_jar() -> Path:
    jar = find_mongo_server_jar()
    if jar is not None:
        return jar
    with console.status("Building the local Mongo engine with Maven (first time only; about a minute)..."):
        return build_mongo_server(quiet=True)


def engine_notice(*, clear: bool = False) -> str | None:
    """What the watchdog left when the engine died without ``stack down`` (None otherwise);
    ``clear`` removes it once read (the stack is starting again)."""
    path = state.stack_dir() / watchdog.NOTICE_FILE
    if not path.exists():
        return None
    notice = path.read_text().strip()
    if clear:
        path.unlink()
    return notice


def _reset_nats_data(data_root: Path) -> None:
    """NATS starts empty with the in-memory engine (one server's data and every cluster node's are under
    ``data/nats``); data an earlier version left is removed too."""
    for name, what in (("nats", "NATS streams"), ("ferretdb", "FerretDB data of an earlier version")):
        path = data_root / name
        if path.exists() and any(path.iterdir()):
            shutil.rmtree(path)
            console.print(f"[yellow]reset[/yellow] {what} in {path}: the local database keeps its data in memory, "
                          "so the stack starts empty with it")


def _reset_bank() -> None:
    """The simulated bank's ledger belongs to the data the stack starts without: a bank still running
    is stopped (``services up`` starts it again) and its ledger removed, each with a message."""
    data = state.load()
    for entry in data.get("services", []):
        if entry["name"] == "gateway-0" and state.process_from(entry).alive():
            state.process_from(entry).stop()
            console.print("[yellow]stopped[/yellow] the simulated bank: it starts empty with the stack")
    data["services"] = [e for e in data.get("services", []) if e["name"] != "gateway-0"]
    state.save(data)
    ledger = state.stack_dir() / "bank-ledger.jsonl"
    if ledger.exists():
        ledger.unlink()
        console.print(f"[yellow]reset[/yellow] the simulated bank's ledger {ledger}")


def _start_watchdog(engine: ManagedProcess) -> ManagedProcess:
    log_path = state.stack_dir() / "logs" / "watchdog.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        popen = subprocess.Popen(
            [sys.executable, "-m", "puskesos_cli.watchdog", "--engine-pid", str(engine.pid),
             "--stack-dir", str(state.stack_dir())],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    return ManagedProcess("watchdog", popen.pid, 0, "", log_path)


def up(namespace: str = "puskesos", *, nats_cluster: int | None = None) -> tuple[str, str]:
    """Starts what is not running yet; returns (nats_url, mongo_url). ``nats_cluster``: NATS as a cluster
    of that many nodes (streams at as many replicas), 1 one server; None: as it runs (else one server)."""
    current = _running()
    servers = state.load().get("servers", {})
    data_root = state.stack_dir() / "data"
    logs = state.stack_dir() / "logs"
    if nats_cluster is None and (previous := stack_nats.cluster_of(servers)) is not None:
        nats_cluster = len(previous.nodes)  # a cluster comes back as a cluster (after the engine stopped, say)
    if notice := engine_notice(clear=True):
        console.print(f"[yellow]{notice}[/yellow]")
    if "mongo" not in current:
        if mongo_url := os.environ.get("PUSKESOS_MONGO_URL"):
            servers["mongo"] = {"name": "external", "pid": 0, "port": 0, "url": mongo_url, "log": ""}
        else:
            stack_nats.stop(servers)  # the engine is gone: stop NATS too (if it runs), both start empty
            jar = ensure_engine_jar()
            _reset_nats_data(data_root)
            _reset_bank()
            with console.status(f"Starting the local Mongo engine (in memory, heap up to {mongo_heap()})..."):
                engine = start_mongo_server(jar, logs / "mongo.log")
            servers["mongo"] = engine.to_json()
            servers["watchdog"] = _start_watchdog(engine).to_json()
    elif "watchdog" not in current and int(servers["mongo"].get("pid", 0)) > 0:
        servers["watchdog"] = _start_watchdog(state.process_from(servers["mongo"])).to_json()
    try:
        stack_nats.ensure(servers, data_root / "nats", logs, size=nats_cluster, console=console,
                          config=lambda: _nats_config(data_root / "nats"),
                          authorization=lambda: nats_authorization(_nats_users()))
    finally:
        state.save({**state.load(), "servers": servers})
    nats_url, mongo_url = str(servers["nats"]["url"]), str(servers["mongo"]["url"])
    replicas = stack_nats.replicas(servers)
    if (cluster := stack_nats.cluster_of(servers)) is not None:
        cluster.wait_healthy()  # a meta leader with every node current (after a restart or an election)
    asyncio.run(_provision_streams(nats_url, namespace, replicas))
    if cluster is not None:
        topology = Topology(namespace=namespace, replicas=replicas)
        cluster.wait_healthy([config.name or "" for config in topology.stream_configs()])
    _write_env(nats_url, mongo_url, replicas)
    return nats_url, mongo_url


def down() -> None:
    """Stops the watchdog first (a deliberate stop is not a crash), then the servers."""
    data = state.load()
    servers = data.get("servers", {})
    if (watchdog_entry := servers.pop("watchdog", None)) is not None:
        state.process_from(watchdog_entry).stop()
    if (cluster := stack_nats.cluster_of(servers)) is not None:
        stack_nats.stop(servers)  # every node (a frozen one is thawed to stop)
        console.print(f"stopped NATS cluster {cluster.name} ({', '.join(n.name for n in cluster.nodes)})")
    for name, entry in servers.items():
        if int(entry.get("pid", 0)) > 0:
            state.process_from(entry).stop()
            console.print(f"stopped {name}")
    data["servers"] = {}
    state.save(data)
    if state.env_file().exists():
        state.env_file().unlink()


@app.command("up")
def up_command(
    namespace: Annotated[str, typer.Option(help="Stream namespace to provision")] = "puskesos",
    nats_cluster: Annotated[int | None, typer.Option(
        "--nats-cluster", help="Run NATS as a cluster of 3 (or 5) nodes as in production, streams at as many "
        "replicas; 1: one server (the default when NATS is not running)")] = None,
) -> None:
    """Start nats-server and the Mongo engine (built with Maven the first time), provision the streams.

    The engine keeps its data in memory: the stack starts empty, and NATS's data is reset with it."""
    try:
        nats_url, mongo_url = up(namespace, nats_cluster=nats_cluster)
    except StackError as exc:
        console.print(f"[red]stack up failed:[/red] {exc}")
        raise typer.Exit(1) from None
    console.print(f"[green]stack is up[/green]\n  NATS   {nats_url}\n  Mongo  {mongo_url}"
                  + ("" if os.environ.get("PUSKESOS_MONGO_URL") else " (in memory: `stack down` discards the data)")
                  + "\n"
                  f"  env    {state.env_file()} (services read it; or `eval $(uv run puskesos stack env)`)")


@app.command("down")
def down_command() -> None:
    """Stop the local servers. The in-memory engine's data, and NATS's with it, is gone."""
    down()


@app.command("status")
def status_command() -> None:
    """Show the local servers and whether they answer."""
    table = Table("server", "pid", Column("url", no_wrap=True, min_width=len("mongodb://127.0.0.1:65535/")), "state",
                  "log")
    servers = state.load().get("servers", {})
    notice = engine_notice()
    if notice:
        console.print(f"[red]{notice}[/red]")
    if not servers:
        console.print("stack is down (`uv run puskesos stack up`)")
        raise typer.Exit(1)
    cluster = stack_nats.cluster_of(servers)
    for name, entry in servers.items():
        if name == "nats" and cluster is not None:
            continue  # its nodes are rows of their own, and the cluster's table follows
        alive = int(entry["pid"]) == 0 or state.process_from(entry).alive()
        table.add_row(name, str(entry["pid"]), str(entry["url"]), "[green]up[/green]" if alive else "[red]down[/red]",
                      str(entry["log"]))
    Console().print(table)
    if cluster is not None:
        for cluster_table in stack_nats.status_tables(cluster):
            Console().print(cluster_table)


@app.command("env")
def env_command() -> None:
    """Print shell exports for the running stack."""
    servers = _running()
    if {"nats", "mongo"} - servers.keys():
        console.print("stack is not fully up (`uv run puskesos stack up`)")
        raise typer.Exit(1)
    for line in state.env_file().read_text().splitlines():
        print(f"export {line}")


@app.command("build")
def build_command() -> None:
    """Build the local Mongo engine (tools/mongo-server) into .local/lib with Maven (Java 17 + Maven)."""
    try:
        with console.status("mvn package tools/mongo-server ..."):
            path = build_mongo_server(quiet=True)
    except StackError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print(f"built {path}")
