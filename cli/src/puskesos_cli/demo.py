"""``puskesos demo``: the year-end scenario on a realistic population, end to end, on this machine.

Starts the local stack (nats-server with per-service users, the in-memory Mongo engine), the simulated bank and
the five services as separate processes (distribution with ``--replicas``), runs the scenario
(``scenario.runner``), prints the summary and writes the report (``report.md`` and
``blt-per-kecamatan.svg`` in ``--report-dir``), then stops everything unless ``--keep``.

The demo runs a stack of its own (``stack`` under ``--report-dir``: its own NATS, Mongo engine,
bank and services, on free ports where the usual ones are taken), so the developer's local stack in
``.local/stack`` and its data are never touched. It starts that stack empty: a demo stack left by
an earlier ``--keep`` run is stopped and its data discarded, with a message. ``--stack-dir`` (or
``PUSKESOS_STACK_DIR``) points the demo at another stack instead; a running one is then discarded
only after asking (``--yes`` for scripts). ``--reuse`` runs on the running stack and its data,
which the scenario tolerates but the report then also counts in the services' lists.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import typer
from puskesos_shared.localstack import STACK_DIR_ENV, StackError, repo_root
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


#: Files of an earlier demo run in ``--report-dir`` that a new run starts without.
RUN_FILES = ("bank-ledger.jsonl", "notifications.jsonl", "referral-clock-offset")


def _choose_stack(report_dir: Path) -> bool:
    """Points this process (and what it starts) at the demo's stack; True when it is the demo's own,
    False when ``--stack-dir``/``PUSKESOS_STACK_DIR`` chose another."""
    if os.environ.get(STACK_DIR_ENV):
        return False
    os.environ[STACK_DIR_ENV] = str(report_dir / "stack")
    return True


def _running(entries: Iterable[dict[str, Any]]) -> list[str]:
    return [str(e["name"]) for e in entries if int(e.get("pid", 0)) > 0 and state.process_from(e).alive()]


def _running_now() -> list[str]:
    data = state.load()
    return _running(data.get("servers", {}).values()) + _running(data.get("services", []))


def _confirm_discard(*, own: bool, yes: bool) -> None:
    """Asks before the demo discards a running stack that is not its own (``--yes``: do not ask)."""
    running = _running_now()
    if not running or own or yes:
        return
    question = (f"The stack in {state.stack_dir()} is running ({', '.join(running)}). The demo starts it empty: "
                "its data is discarded. Continue?")
    if not sys.stdin.isatty():
        console.print(f"[red]{question}[/red] Not asked without a terminal: pass --yes to discard it, --reuse to "
                      "run on it with its data, or leave out --stack-dir to use the demo's own stack.")
        raise typer.Exit(2)
    if not typer.confirm(question, default=False):
        raise typer.Exit(1)


def _fresh_start(report_dir: Path, *, own: bool) -> None:
    """Starts the demo's stack empty, saying what is stopped and removed."""
    where = state.stack_dir()
    if running := _running_now():
        console.print(f"[yellow]Stopping the {'demo' if own else 'running'} stack in {where}[/yellow] "
                      f"({', '.join(running)}): its data is discarded (--reuse runs on it instead)")
    services.down()
    stack.down()
    data = where / "data"
    if data.exists():
        shutil.rmtree(data)
        console.print(f"removed {data} (NATS streams of the earlier run)")
    earlier = [name for name in RUN_FILES if (report_dir / name).exists()]
    for name in earlier:
        (report_dir / name).unlink()
    if earlier:
        console.print(f"removed the earlier demo run's {', '.join(earlier)} from {report_dir}")


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
    web, _ = services.ensure_console()
    urls = services.endpoints()
    console.print(f"[green]services ready[/green] in {time.monotonic() - began:.0f} s: "
                  + ", ".join(f"{name} {urls[name]}" for name in SERVICES) + f"; bank {gateway.url}")
    console.print(f"[green]web console[/green] {web.url} (sign in with a token from `uv run puskesos token`)")
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
    keep: Annotated[bool, typer.Option(help="Leave the demo's stack and services running afterwards")] = False,
    reuse: Annotated[bool, typer.Option(help="Run on the running stack and its data (default: start empty)")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask before discarding the data of a stack chosen "
                                                    "with --stack-dir")] = False,
    report_dir: Annotated[Path, typer.Option(help="Where the report, CSV and ledgers go")] = Path(".local/demo"),
) -> None:
    """Run the year-end scenario (households, complaints, cases, a BLT round) across all five services."""
    if regency not in REGENCIES:
        raise typer.BadParameter(f"choose one of {', '.join(REGENCIES)}", param_hint="--regency")
    report_dir = report_dir if report_dir.is_absolute() else repo_root() / report_dir
    report_dir.mkdir(parents=True, exist_ok=True)
    own = _choose_stack(report_dir)
    listed = FULL_SCALE_RECIPIENTS if full else recipients
    options = ScenarioOptions(size=size, regency=regency, seed=seed, recipients=listed)
    console.rule(f"[bold]Puskesos demo: {REGENCIES[regency]}, {size:,} households"
                 + (f", BLT recipient list of {listed:,} families" if listed else ""))
    if own:
        console.print(f"The demo runs a stack of its own in {state.stack_dir()}; the local stack in "
                      f"{repo_root() / '.local' / 'stack'} and its data are not touched.")
    if not reuse:
        _confirm_discard(own=own, yes=yes)
    began = time.monotonic()
    ok = False
    try:
        if not reuse:
            _fresh_start(report_dir, own=own)
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
            on = f"uv run puskesos --stack-dir {state.stack_dir()}"
            web = services.endpoints().get("console")
            if web:
                console.print(f"The web console stays open on the demo's data: [bold]{web}[/bold] (sign in with "
                              f"`uv run puskesos --stack-dir {state.stack_dir()} token --officer demo --role "
                              f"front_office --scope {regency}`)")
            console.print(f"The demo's stack and services are left running in {state.stack_dir()}; act on them with "
                          f"`{on} ...` (e.g. `{on} services status`), stop them with `{on} services down && {on} "
                          f"stack down`; logs in {state.stack_dir() / 'logs'}")
        elif reuse:  # the stack was running before the demo: it stays, with its data
            with console.status("Stopping the demo's services ..."):
                services.down()
            console.print(f"The stack in {state.stack_dir()} keeps running (`uv run puskesos services up` starts "
                          "its services again)")
        else:
            with console.status("Stopping services and stack ..."):
                services.down()
                stack.down()
    if not ok:
        raise typer.Exit(1)
