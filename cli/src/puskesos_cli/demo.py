"""``puskesos demo``: the year-end scenario on a realistic population, end to end, on this machine.

Starts the local stack (nats-server with per-service users, the in-memory Mongo engine), the simulated bank and
the five services as separate processes (distribution with ``--replicas``), runs the scenario
(``scenario.runner``), prints the summary and writes the report (``report.md`` and
``blt-per-kecamatan.svg`` in ``--report-dir``), then stops everything unless ``--keep``.

By default the demo stops a running stack and starts it empty (the local engine keeps its data in
memory, so a stopped stack has none anyway); ``--reuse`` runs on a stack that is already up, with
its data, which the scenario tolerates but the report then also counts in the services' lists.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import time
from pathlib import Path
from typing import Annotated

import typer
from puskesos_shared.localstack import StackError, repo_root
from rich.console import Console

from . import services, stack, state
from .scenario.clock import write_offset
from .scenario.context import FULL_SCALE_RECIPIENTS, ScenarioOptions
from .scenario.env import SERVICE_MODULES, SERVICES, Endpoints, ScenarioEnv, gateway_argv, service_env
from .scenario.present import print_summary, write_report
from .scenario.runner import run_scenario

#: Tables are wide; when the output is not a terminal (a log, CI), do not squeeze them into 80 columns.
console = Console() if Console().is_terminal else Console(width=170)
REGENCIES = {"35.73": "Kota Malang", "35.09": "Kabupaten Jember"}


def _fresh_start(report_dir: Path) -> None:
    if state.load().get("servers"):
        console.print("[yellow]Stopping the running stack: the demo starts from empty data[/yellow] "
                      "(--reuse runs on the running stack and its data)")
    services.down()
    stack.down()
    shutil.rmtree(state.stack_dir() / "data", ignore_errors=True)
    for name in ("bank-ledger.jsonl", "notifications.jsonl", "referral-clock-offset"):
        (report_dir / name).unlink(missing_ok=True)


def _start(report_dir: Path, seed: int, replicas: int, unregistered_recipients: bool) -> ScenarioEnv:
    nats_url, mongo_url = stack.up()
    console.print(f"[green]stack up[/green]  NATS {nats_url} (per-service users)  Mongo {mongo_url}")
    ledger, notifications, clock = (report_dir / "bank-ledger.jsonl", report_dir / "notifications.jsonl",
                                    report_dir / "referral-clock-offset")
    write_offset(clock, dt.timedelta(0))
    services.down()  # services left by an earlier --keep run have another configuration
    gateway = services.start_gateway(lambda port: gateway_argv(port, ledger, seed=seed))
    extra = {name: service_env(name, gateway_url=gateway.url, notifications_file=notifications.resolve(),
                               clock_file=clock.resolve(), unregistered_recipients=unregistered_recipients)
             for name in SERVICES}
    with console.status(f"Starting the five services ({replicas} distribution replicas) ..."):
        began = time.monotonic()
        services.up({"distribution": replicas}, extra_env=extra, modules=SERVICE_MODULES)
    urls = services.endpoints()
    console.print(f"[green]services ready[/green] in {time.monotonic() - began:.0f} s: "
                  + ", ".join(f"{name} {urls[name]}" for name in SERVICES) + f"; bank {gateway.url}")
    return ScenarioEnv(
        endpoints=Endpoints(**{name: urls[name] for name in SERVICES}, gateway=gateway.url),
        nats_url=nats_url, nats_user="admin", nats_password=stack.nats_passwords()["admin"], namespace="puskesos",
        auth_secret=stack.auth_secret(), mongo_url=mongo_url, audit_database="puskesos_audit",
        gateway_ledger=ledger.resolve(), notifications_file=notifications.resolve(), clock_file=clock.resolve(),
        work_dir=report_dir.resolve())


def demo(
    size: Annotated[int, typer.Option(min=20, help="Households registered (and worked on) through intake")] = 600,
    regency: Annotated[str, typer.Option(help="35.73 (Kota Malang, 57 kelurahan) or 35.09 (Jember, 248 desa)")]
    = "35.73",
    seed: Annotated[int, typer.Option(help="Same seed, same population and scenario")] = 2022,
    full: Annotated[bool, typer.Option(help=f"A BLT round at full scale: {FULL_SCALE_RECIPIENTS:,} families on the "
                                            "recipient list (the --size households still go through intake)")]
    = False,
    recipients: Annotated[int | None, typer.Option(min=10, help="Families on the BLT recipient list (default: the "
                                                   "poor among the registered; --full: 63,335)")] = None,
    replicas: Annotated[int, typer.Option(min=1, max=8, help="Distribution replicas")] = 2,
    keep: Annotated[bool, typer.Option(help="Leave the stack and services running afterwards")] = False,
    reuse: Annotated[bool, typer.Option(help="Run on the running stack and its data (default: start empty)")] = False,
    report_dir: Annotated[Path, typer.Option(help="Where the report, CSV and ledgers go")] = Path(".local/demo"),
) -> None:
    """Run the year-end scenario (households, complaints, cases, a BLT round) across all five services."""
    if regency not in REGENCIES:
        raise typer.BadParameter(f"choose one of {', '.join(REGENCIES)}", param_hint="--regency")
    report_dir = report_dir if report_dir.is_absolute() else repo_root() / report_dir
    report_dir.mkdir(parents=True, exist_ok=True)
    listed = FULL_SCALE_RECIPIENTS if full else recipients
    options = ScenarioOptions(size=size, regency=regency, seed=seed, recipients=listed)
    console.rule(f"[bold]Puskesos demo: {REGENCIES[regency]}, {size:,} households"
                 + (f", BLT recipient list of {listed:,} families" if listed else ""))
    began = time.monotonic()
    ok = False
    try:
        if not reuse:
            _fresh_start(report_dir)
        env = _start(report_dir, seed, replicas, unregistered_recipients=bool(listed and listed > size))
        startup = round(time.monotonic() - began, 2)
        result = asyncio.run(run_scenario(env, options, console))
        result.timings = {"stack and services start": startup, **result.timings}
        print_summary(result, console)
        path = write_report(result, report_dir)
        ok = result.ok
        console.rule()
        console.print(f"Report: [bold]{path}[/bold] (chart {path.parent / 'blt-per-kecamatan.svg'}); "
                      f"recipient list, bank ledger and notifications in {report_dir}")
        console.print(f"Demo finished in {time.monotonic() - began:,.0f} s "
                      + ("[green]with every end-state check passing[/green]" if ok else "[red]with failing checks"))
    except StackError as exc:
        console.print(f"[red]demo failed:[/red] {exc}")
    except Exception as exc:  # the scenario stopped: say where, keep the logs, still stop what we started
        console.print_exception(max_frames=4)
        console.print(f"[red]the scenario stopped:[/red] {type(exc).__name__}: {exc}\n"
                      f"service logs: {state.stack_dir() / 'logs'} (kept); rerun with --keep to inspect the services")
    finally:
        if keep:
            console.print("Services and stack left running (`uv run puskesos services down && uv run puskesos stack "
                          "down` to stop them); logs in .local/stack/logs")
        else:
            with console.status("Stopping services and stack ..."):
                services.down()
                stack.down()
    if not ok:
        raise typer.Exit(1)
