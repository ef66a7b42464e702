"""``puskesos services``: run the five services as separate local processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from typing import Annotated, Any

import httpx
import typer
from puskesos_shared.localstack import ManagedProcess, StackError, free_port
from rich.console import Console
from rich.table import Column, Table

from . import state

SERVICES = ("intake", "referral", "distribution", "notification", "audit")
DEFAULT_PORTS = {"intake": 8101, "referral": 8102, "distribution": 8103, "notification": 8104, "audit": 8105}

app = typer.Typer(help="The five Puskesos services as local processes.", no_args_is_help=True)
console = Console(stderr=True)


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def start_service(name: str, instance: int, env: dict[str, str], module: str | None = None) -> ManagedProcess:
    """``python -m puskesos_{name}`` (or ``module``: a launcher of the same service) with its log under .local."""
    port = DEFAULT_PORTS[name] if instance == 0 and _port_free(DEFAULT_PORTS[name]) else free_port()
    log_path = state.stack_dir() / "logs" / f"{name}-{instance}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        popen = subprocess.Popen(
            [sys.executable, "-m", module or f"puskesos_{name}"],
            env={**os.environ, **env, "PUSKESOS_HTTP_PORT": str(port), "PUSKESOS_LOG_JSON": "true"},
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    return ManagedProcess(f"{name}-{instance}", popen.pid, port, f"http://127.0.0.1:{port}", log_path)


def _ready_path(proc: ManagedProcess) -> str:
    """The services answer readiness on ``/health/ready``; the simulated gateway on ``/health``."""
    return "/health" if proc.name.startswith("gateway") else "/health/ready"


def wait_ready(procs: list[ManagedProcess], timeout: float = 120.0) -> None:
    pending = list(procs)
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2) as client:
        while pending:
            for proc in list(pending):
                if not proc.alive():
                    tail = proc.log_path.read_text(errors="replace")[-1500:]
                    raise StackError(f"{proc.name} exited during start-up; log {proc.log_path}:\n{tail}")
                try:
                    if client.get(f"{proc.url}{_ready_path(proc)}").status_code == 200:
                        pending.remove(proc)
                except httpx.HTTPError:
                    pass
            if pending and time.monotonic() > deadline:
                names = ", ".join(p.name for p in pending)
                raise StackError(f"not ready after {timeout:.0f}s: {names} (logs in {state.stack_dir() / 'logs'})")
            if pending:
                time.sleep(0.2)


def up(replicas: Mapping[str, int] | None = None, *, extra_env: Mapping[str, Mapping[str, str]] | None = None,
       modules: Mapping[str, str] | None = None) -> list[ManagedProcess]:
    """Starts every service instance not running yet and waits until each is ready.

    ``replicas``: instances per service (default 1); ``extra_env``: more environment per service;
    ``modules``: a launcher module instead of ``puskesos_{name}`` (the demo's movable clock).
    """
    servers = state.load().get("servers", {})
    if {"nats", "mongo"} - servers.keys():
        raise StackError("the stack is down: run `uv run puskesos stack up` first")
    from .stack import auth_secret, nats_passwords

    env = {"PUSKESOS_NATS_URL": str(servers["nats"]["url"]), "PUSKESOS_MONGO_URL": str(servers["mongo"]["url"]),
           "PUSKESOS_AUTH_SECRET": auth_secret()}
    passwords = nats_passwords()
    running = {e["name"] for e in state.load().get("services", []) if state.process_from(e).alive()}
    started: list[ManagedProcess] = []
    for name in SERVICES:
        for instance in range((replicas or {}).get(name, 1)):
            if f"{name}-{instance}" not in running:
                service_env = {**env, "PUSKESOS_NATS_USER": name, "PUSKESOS_NATS_PASSWORD": passwords[name],
                               **(extra_env or {}).get(name, {})}
                started.append(start_service(name, instance, service_env, (modules or {}).get(name)))
    data = state.load()
    data["services"] = [e for e in data.get("services", []) if e["name"] in running] + [p.to_json() for p in started]
    state.save(data)
    wait_ready(started)
    return started


def start_gateway(argv: Callable[[int], list[str]], *, port: int = 8190) -> ManagedProcess:
    """The simulated payment gateway (a bank) as a process of the local stack; ``argv(port)`` runs it.

    Recorded with the services, so ``down`` stops it too; ready when ``/health`` answers.
    """
    port = port if _port_free(port) else free_port()
    log_path = state.stack_dir() / "logs" / "gateway-0.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        popen = subprocess.Popen(argv(port), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
    proc = ManagedProcess("gateway-0", popen.pid, port, f"http://127.0.0.1:{port}", log_path)
    data = state.load()
    data["services"] = [*data.get("services", []), proc.to_json()]
    state.save(data)
    wait_ready([proc], timeout=30)
    return proc


def endpoints() -> dict[str, str]:
    """Base URL of the first running instance of each service (and the gateway), by name."""
    out: dict[str, str] = {}
    for entry in state.load().get("services", []):
        name = str(entry["name"]).rsplit("-", 1)[0]
        out.setdefault(name, str(entry["url"]))
    return out


def down() -> None:
    data = state.load()
    for entry in data.get("services", []):
        state.process_from(entry).stop(timeout=25)
        console.print(f"stopped {entry['name']}")
    data["services"] = []
    state.save(data)


def health() -> list[dict[str, Any]]:
    rows = []
    with httpx.Client(timeout=2) as client:
        for entry in state.load().get("services", []):
            proc = state.process_from(entry)
            try:
                ready = client.get(f"{proc.url}{_ready_path(proc)}").json()
            except httpx.HTTPError as exc:
                ready = {"status": f"unreachable ({type(exc).__name__})"}
            rows.append({"name": proc.name, "pid": proc.pid, "url": proc.url, "alive": proc.alive(), **ready})
    return rows


def bank_argv(port: int) -> list[str]:
    """The simulated bank of a plain local stack: pays at once, declines accounts starting with 0000, keeps
    its ledger beside the stack's state (``round close`` reconciles with it through the bank's API)."""
    return [sys.executable, "-m", "puskesos_distribution.gateway_sim", "--port", str(port),
            "--ledger", str(state.stack_dir() / "bank-ledger.jsonl")]


def ensure_bank() -> tuple[ManagedProcess, bool]:
    """The running simulated bank of this stack, or a new one; (process, started now)."""
    for entry in state.load().get("services", []):
        if entry["name"] == "gateway-0" and state.process_from(entry).alive():
            return state.process_from(entry), False
    return start_gateway(bank_argv), True


def _where(proc: ManagedProcess) -> str:
    default = DEFAULT_PORTS.get(proc.name.rsplit("-", 1)[0])
    moved = proc.name.endswith("-0") and default is not None and proc.port != default
    return f"{proc.url}" + (f" (port {default} was taken)" if moved else "")


@app.command("up")
def up_command(
    distribution_replicas: Annotated[int, typer.Option("--replicas", min=1, max=16,
                                                       help="Distribution replicas")] = 1,
    gateway_url: Annotated[str | None, typer.Option(
        envvar="PUSKESOS_GATEWAY_URL",
        help="Payment gateway the distribution service pays through (default: start the simulated bank)")] = None,
) -> None:
    """Start every service (the stack must be up) and wait until each is ready.

    Without a payment gateway URL the simulated bank is started too, so that a round can pay and close."""
    try:
        if gateway_url:
            console.print(f"payments go to the gateway at {gateway_url} (--gateway-url / PUSKESOS_GATEWAY_URL)")
        else:
            bank, new = ensure_bank()
            gateway_url = bank.url
            console.print(f"[green]{'ready' if new else 'running'}[/green] simulated bank {_where(bank)}: no "
                          "PUSKESOS_GATEWAY_URL is configured, so payouts go to the simulated bank "
                          f"(ledger {state.stack_dir() / 'bank-ledger.jsonl'})")
        with console.status("Starting services..."):
            started = up({"distribution": distribution_replicas},
                         extra_env={"distribution": {"PUSKESOS_GATEWAY_URL": gateway_url}})
    except StackError as exc:
        console.print(f"[red]services up failed:[/red] {exc}")
        raise typer.Exit(1) from None
    for proc in started:
        console.print(f"[green]ready[/green] {proc.name} {_where(proc)} (log {proc.log_path})")
    if not started:
        console.print("every service was already running (`uv run puskesos services status`)")


@app.command("down")
def down_command() -> None:
    """Stop every service gracefully (SIGTERM)."""
    down()


@app.command("status")
def status_command() -> None:
    """Health of every service process."""
    table = Table("service", "pid", "alive", "ready", "checks")
    table.columns.insert(2, Column("url", no_wrap=True, min_width=len("http://127.0.0.1:65535")))
    for row in health():
        table.add_row(row["name"], str(row["pid"]), row["url"], str(row["alive"]), str(row.get("status")),
                      str(row.get("checks", "")))
    Console().print(table)
