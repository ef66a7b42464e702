"""``puskesos services``: run the five services as separate local processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any

import httpx
import typer
from puskesos_shared.localstack import ManagedProcess, StackError, free_port
from rich.console import Console
from rich.table import Column, Table

from . import state

SERVICES = ("intake", "referral", "distribution", "notification", "audit")
DEFAULT_PORTS = {"intake": 8101, "referral": 8102, "distribution": 8103, "notification": 8104, "audit": 8105,
                 "console": 8100}

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


#: What a service's instances are started with beyond the connection settings, by ``up``: its extra
#: environment and launcher module, kept in the stack's state so that ``scale`` starts another replica
#: identically. Passwords and secrets are never kept there: they come from ``stack`` at each start.
LAUNCH = "launch"
SCALABLE = ("distribution",)
_SECRET_WORDS = ("PASSWORD", "SECRET", "TOKEN")


def _launch_entry(name: str, env: Mapping[str, str], module: str | None) -> dict[str, Any]:
    secret = sorted(k for k in env if any(word in k.upper() for word in _SECRET_WORDS))
    if secret:
        raise StackError(f"{name}: {', '.join(secret)} would be written into the stack's state; secrets come "
                         "from the stack (`stack.auth_secret`, `stack.nats_passwords`), not from extra_env")
    return {"env": dict(env), "module": module}


def _instances(data: Mapping[str, Any], name: str) -> dict[int, dict[str, Any]]:
    """The running instances of ``name`` in the state, by instance number."""
    out: dict[int, dict[str, Any]] = {}
    for entry in data.get("services", []):
        base, _, number = str(entry["name"]).rpartition("-")
        if base == name and number.isdigit() and state.process_from(entry).alive():
            out[int(number)] = entry
    return out


def _start(plan: Mapping[str, Sequence[int]], launch: Mapping[str, Mapping[str, Any]]) -> list[ManagedProcess]:
    """Starts these instances with the stack's connection settings and each service's ``launch`` entry,
    records them in the state (keeping the instances still alive) and waits until they are ready."""
    servers = state.load().get("servers", {})
    if {"nats", "mongo"} - servers.keys():
        raise StackError("the stack is down: run `uv run puskesos stack up` first")
    from .stack import auth_secret, nats_passwords

    env = {"PUSKESOS_NATS_URL": str(servers["nats"]["url"]), "PUSKESOS_MONGO_URL": str(servers["mongo"]["url"]),
           "PUSKESOS_AUTH_SECRET": auth_secret(),
           # the stack's stream replicas (3 on a cluster), whatever the shell says: R1 would shrink the R3 streams
           "PUSKESOS_STREAM_REPLICAS": str(servers["nats"].get("replicas", 1))}
    passwords = nats_passwords()
    started = [start_service(name, instance, {**env, "PUSKESOS_NATS_USER": name, "PUSKESOS_NATS_PASSWORD":
                                              passwords[name], **launch[name]["env"]}, launch[name]["module"])
               for name, instances in plan.items() for instance in instances]
    data = state.load()
    alive = [e for e in data.get("services", []) if state.process_from(e).alive()]
    data["services"] = alive + [p.to_json() for p in started]
    data[LAUNCH] = {**data.get(LAUNCH, {}), **{name: dict(launch[name]) for name in plan if plan[name]}}
    state.save(data)
    wait_ready(started)
    return started


def up(replicas: Mapping[str, int] | None = None, *, extra_env: Mapping[str, Mapping[str, str]] | None = None,
       modules: Mapping[str, str] | None = None) -> list[ManagedProcess]:
    """Starts every service instance not running yet and waits until each is ready.

    ``replicas``: instances per service (default 1); ``extra_env``: more environment per service;
    ``modules``: a launcher module instead of ``puskesos_{name}`` (the demo's movable clock).
    """
    data = state.load()
    running = {name: _instances(data, name) for name in SERVICES}
    plan = {name: [i for i in range((replicas or {}).get(name, 1)) if i not in running[name]] for name in SERVICES}
    launch = {name: _launch_entry(name, (extra_env or {}).get(name, {}), (modules or {}).get(name))
              for name in SERVICES}
    return _start(plan, launch)


def scale(name: str, replicas: int) -> tuple[list[ManagedProcess], list[ManagedProcess]]:
    """Runs ``replicas`` instances of ``name`` (numbers 0..replicas-1) without touching the others:
    starts the missing ones as ``up`` started the running ones, and stops the higher-numbered ones
    gracefully (SIGTERM: a replica stops fetching, finishes or gives back its work items, which the
    others are then delivered). Returns (started, stopped)."""
    if name not in SCALABLE:
        raise StackError(f"only {', '.join(SCALABLE)} scales; {name} runs one instance "
                         f"(`uv run puskesos services scale distribution N`)")
    data = state.load()
    launch = data.get(LAUNCH, {}).get(name)
    running = _instances(data, name)
    if not running:
        raise StackError(f"no {name} replica is running: start the services first (`uv run puskesos services up`)")
    if launch is None:
        raise StackError(f"the state does not say how {name} was started (an older `services up`): run "
                         "`uv run puskesos services down` and `services up` once")
    extra = [state.process_from(running[i]) for i in sorted(running, reverse=True) if i >= replicas]
    with ThreadPoolExecutor(max_workers=max(len(extra), 1)) as pool:
        list(pool.map(lambda proc: proc.stop(timeout=25), extra))
    data = state.load()
    data["services"] = [e for e in data.get("services", []) if e["name"] not in {p.name for p in extra}]
    state.save(data)
    started = _start({name: [i for i in range(replicas) if i not in running]}, {name: launch})
    return started, extra


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


def console_secret() -> str:
    """The local console's CSRF key, generated once into the stack directory (like ``stack.auth_secret``)."""
    import secrets

    path = state.stack_dir() / "console-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def ensure_console() -> tuple[ManagedProcess, bool]:
    """The web console (``python -m puskesos_console``) on the running services, started when not running:
    port 8100 unless taken, recorded with the services (``status`` lists it, ``down`` stops it); (process,
    started now). Its secret comes from the stack directory at each start, never from the state."""
    for entry in state.load().get("services", []):
        if entry["name"] == "console-0" and state.process_from(entry).alive():
            return state.process_from(entry), False
    urls = endpoints()
    missing = [name for name in SERVICES if name not in urls]
    if missing:
        raise StackError(f"the console needs the services; not running: {', '.join(missing)}")
    port = DEFAULT_PORTS["console"] if _port_free(DEFAULT_PORTS["console"]) else free_port()
    log_path = state.stack_dir() / "logs" / "console-0.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **{f"PUSKESOS_CONSOLE_{name.upper()}_URL": urls[name] for name in SERVICES},
           "PUSKESOS_CONSOLE_SECRET": console_secret(), "PUSKESOS_HTTP_PORT": str(port), "PUSKESOS_LOG_JSON": "true"}
    with log_path.open("ab") as log:
        popen = subprocess.Popen([sys.executable, "-m", "puskesos_console"], env=env, stdout=log,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    proc = ManagedProcess("console-0", popen.pid, port, f"http://127.0.0.1:{port}", log_path)
    data = state.load()
    data["services"] = [*data.get("services", []), proc.to_json()]
    state.save(data)
    wait_ready([proc], timeout=60)
    return proc, True


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
    data.pop(LAUNCH, None)
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
        with console.status("Starting the web console..."):
            web, web_new = ensure_console()
    except StackError as exc:
        console.print(f"[red]services up failed:[/red] {exc}")
        raise typer.Exit(1) from None
    for proc in started:
        console.print(f"[green]ready[/green] {proc.name} {_where(proc)} (log {proc.log_path})")
    if not started:
        console.print("every service was already running (`uv run puskesos services status`)")
    console.print(f"[green]{'ready' if web_new else 'running'}[/green] web console {_where(web)}: sign in with a "
                  "token from `uv run puskesos token --officer ID --role ROLE --scope CODE`")


@app.command("scale")
def scale_command(
    name: Annotated[str, typer.Argument(help="The service: only distribution scales")],
    replicas: Annotated[int, typer.Argument(min=1, max=16, help="Replicas to run")],
) -> None:
    """Add or remove distribution replicas while a round runs; the others keep running.

    New replicas start as `services up` started the running ones; removed ones are the highest-numbered,
    stopped gracefully (their work items go to the others)."""
    try:
        with console.status(f"Scaling {name} to {replicas} ..."):
            started, stopped = scale(name, replicas)
    except StackError as exc:
        console.print(f"[red]services scale failed:[/red] {exc}")
        raise typer.Exit(2 if name not in SCALABLE else 1) from None
    for proc in stopped:
        console.print(f"[yellow]stopped[/yellow] {proc.name} {proc.url} (pid {proc.pid})")
    for proc in started:
        console.print(f"[green]ready[/green] {proc.name} {proc.url} (log {proc.log_path})")
    running = sorted(_instances(state.load(), name))
    console.print(f"{name}: {len(running)} replica{'s' if len(running) != 1 else ''} running "
                  f"({', '.join(f'{name}-{i}' for i in running)})")


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
