"""Operator commands: ``python -m puskesos_distribution.cli round open|import|status|close``.

They talk to the running service over NATS (request-reply commands), never to its database.
Connection settings come from ``PUSKESOS_*`` (or ``.local/stack/stack.env``). The officer token
is ``--token`` / ``PUSKESOS_TOKEN``; on a local stack ``--operator ID`` signs one with the stack's
secret instead.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import nats
import typer
from nats.aio.client import Client as NatsClient
from puskesos_shared.auth import Officer, issue_token
from puskesos_shared.commands import send_command
from puskesos_shared.contracts.distribution import FundingSource, VillagesWithoutQuota
from puskesos_shared.contracts.primitives import OfficerRole, Program
from pydantic import ValidationError
from rich.console import Console

from .commands import SERVICE
from .csv_import import InvalidFile, import_file
from .domain import CURRENT_RULE
from .requests import OpenRound, RoundRef
from .sample_data import REGENCIES, write_csv
from .settings import DistributionSettings
from .status_view import render_close, watch_status

app = typer.Typer(help="Aid distribution rounds (BLT): open, import recipients, watch, close.", no_args_is_help=True)
round_app = typer.Typer(help="Aid rounds.", no_args_is_help=True)
app.add_typer(round_app, name="round")
console = Console(stderr=True)

Token = Annotated[str | None, typer.Option(envvar="PUSKESOS_TOKEN", help="Officer token (role operator)")]
OperatorId = Annotated[str | None, typer.Option("--operator", help="Sign a local operator token for this id")]


class Client:
    """A NATS connection and the officer token, for one CLI invocation."""

    def __init__(self, nc: NatsClient, settings: DistributionSettings, token: str) -> None:
        self.nc, self.settings, self.token = nc, settings, token

    async def call(self, name: str, body: dict[str, Any], *, timeout: float = 30.0, attempts: int = 5
                   ) -> dict[str, Any]:
        """Sends a command; every command here is idempotent, so a timeout (the replica that took it
        died, say) or a replica still starting is answered by sending it again."""
        subject = self.settings.topology().command_subject(SERVICE, name)
        for attempt in range(1, attempts + 1):
            try:
                reply = await send_command(self.nc, subject, {**body, "token": self.token}, timeout=timeout)
                break
            except nats.errors.NoRespondersError:
                if attempt == attempts:
                    raise CommandFailed("no_service", "no distribution replica answers (is it running?)",
                                        []) from None
                await asyncio.sleep(0.5 * attempt)
            except (nats.errors.TimeoutError, TimeoutError):
                if attempt == attempts:
                    raise
        if not reply.ok:
            error = reply.error or {}
            raise CommandFailed(error.get("code", "error"), error.get("message", "failed"), error.get("fields", []))
        return reply.result or {}


class CommandFailed(Exception):
    def __init__(self, code: str, message: str, fields: list[dict[str, Any]]) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.fields = code, message, fields


def _token(token: str | None, operator: str | None, settings: DistributionSettings) -> str:
    if token:
        return token
    if operator and settings.auth_secret is not None:
        officer = Officer(officer_id=operator, role=OfficerRole.OPERATOR, scope=REGENCIES)
        return issue_token(officer, settings.auth_secret.get_secret_value(), ttl=dt.timedelta(hours=1))
    console.print("[red]No officer token: pass --token (or PUSKESOS_TOKEN), or --operator on a local stack.[/red]")
    raise typer.Exit(2)


def _run(token: str | None, operator: str | None, work: Any) -> Any:
    settings = DistributionSettings()
    signed = _token(token, operator, settings)

    async def main() -> Any:
        nc = await nats.connect(settings.nats_servers, user=settings.nats_user, password=settings.nats_password,
                                name="puskesos-distribution-cli", max_reconnect_attempts=3)
        try:
            return await work(Client(nc, settings, signed))
        finally:
            await nc.drain()

    try:
        return asyncio.run(main())
    except CommandFailed as exc:
        console.print(f"[red]{exc.code}[/red]: {exc.message}")
        for f in exc.fields:
            loc = f.get("loc")
            console.print(f"  {'.'.join(map(str, loc)) if isinstance(loc, list) else loc}: {f.get('msg')}")
        raise typer.Exit(1) from None
    except InvalidFile as exc:
        console.print(f"[red]cannot import the file: {exc}[/red]")
        raise typer.Exit(2) from None
    except (OSError, nats.errors.Error) as exc:
        console.print(f"[red]cannot reach the service over NATS at {settings.nats_url}: {exc!r}[/red]")
        raise typer.Exit(1) from None


def _quota(text: str) -> dict[str, Any]:
    code, _, count = text.partition("=")
    if not count.strip().isdigit():
        raise typer.BadParameter(f"{text!r}: write VILLAGE_CODE=FAMILIES, e.g. 35.09.01.2001=120",
                                 param_hint="--quota")
    return {"village_code": code.strip(), "max_families": int(count)}


#: The option of ``round open`` that sets each field of the request (so errors name the option).
OPEN_OPTIONS = {"key": "KEY", "name": "--name", "program": "--program", "funding_source": "--funding-source",
                "amount_per_family": "--amount", "budget_cap": "--budget", "eligibility_rule_version": "--rule-version",
                "period_start": "--from", "period_end": "--to", "village_quotas": "--quota",
                "villages_without_quota": "--villages-without-quota"}


def _check_open(body: dict[str, Any]) -> None:
    """The request's rules (``OpenRound``, the service's own), checked here so that a mistake names its option."""
    try:
        OpenRound.model_validate(body)
    except ValidationError as exc:
        err = exc.errors(include_input=False, include_url=False)[0]
        raise typer.BadParameter(err["msg"].removeprefix("Value error, "),
                                 param_hint=OPEN_OPTIONS.get(str(err["loc"][0]), "")) from None


@round_app.command("open")
def open_round(
    key: Annotated[str, typer.Argument(help="Round key, e.g. jember-dbhcht-2022-11")],
    name: Annotated[str, typer.Option(help="Round name")],
    funding_source: Annotated[FundingSource, typer.Option(help="Funding source")],
    amount: Annotated[int, typer.Option(help="Rupiah per family")],
    budget: Annotated[int, typer.Option(help="Budget cap in Rupiah")],
    period_start: Annotated[dt.datetime, typer.Option("--from", formats=["%Y-%m-%d"], help="First day")],
    period_end: Annotated[dt.datetime, typer.Option("--to", formats=["%Y-%m-%d"], help="Last day")],
    rule_version: Annotated[str, typer.Option(help="Allocation rule version")] = CURRENT_RULE,
    program: Annotated[Program, typer.Option(help="Program")] = Program.BLT,
    quota: Annotated[list[str] | None, typer.Option(help="VILLAGE=FAMILIES; repeat")] = None,
    without_quota: Annotated[VillagesWithoutQuota | None, typer.Option(
        "--villages-without-quota", help="Required with --quota: every other village is unlimited (shares the "
        "budget) or excluded (its families are rejected as no_village_quota)")] = None,
    token: Token = None,
    operator: OperatorId = None,
) -> None:
    """Open a round (opening the same key again with the same settings is a no-op)."""
    body = {"key": key, "name": name, "program": program.value, "funding_source": funding_source.value,
            "amount_per_family": amount, "budget_cap": budget, "eligibility_rule_version": rule_version,
            "period_start": period_start.date().isoformat(), "period_end": period_end.date().isoformat(),
            "village_quotas": [_quota(q) for q in quota or []],
            "villages_without_quota": without_quota.value if without_quota else None}
    _check_open(body)
    result = _run(token, operator, lambda c: c.call("open_round", body))
    verb = "opened" if result["created"] else "was already open"
    console.print(f"round [bold]{key}[/bold] ({result['round_id']}) {verb}: budget for "
                  f"{result['budget_slots']:,} families")


@round_app.command("import")
def import_recipients(
    round_ref: Annotated[str, typer.Argument(metavar="ROUND", help="Round key or id")],
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Recipient list (CSV, UTF-8)")],
    report: Annotated[Path | None, typer.Option(help="Where to write rejected rows (default FILE.rejected.csv)")]
    = None,
    chunk: Annotated[int, typer.Option(min=1, max=1000, help="Rows per request")] = 500,
    token: Token = None,
    operator: OperatorId = None,
) -> None:
    """Import a recipient list: every row is accepted or reported with its reason."""
    report = report or file.with_suffix(".rejected.csv")
    round_id = RoundRef(round=round_ref).round_id
    summary = _run(token, operator, lambda c: import_file(c.call, round_id, round_ref, file, report, chunk,
                                                         console=console))
    console.print(f"{summary['total_rows']:,} rows: [green]{summary['accepted']:,} accepted[/green], "
                  f"{summary['resent']:,} already imported, [yellow]{summary['rejected']:,} rejected[/yellow]"
                  + (f" (reasons in {report})" if summary["rejected"] else ""))
    if summary["without_quota"]:
        console.print(f"[yellow]warning: {summary['without_quota']:,} accepted rows are in villages without a quota "
                      "in this round, which excludes such villages: they will be rejected as no_village_quota "
                      "(`round status` counts them)[/yellow]")


@round_app.command("enqueue-assessed")
def enqueue_assessed(round_ref: Annotated[str, typer.Argument(metavar="ROUND")], token: Token = None,
                     operator: OperatorId = None) -> None:
    """Make every family the latest assessment finds eligible a candidate of the round."""
    result = _run(token, operator, lambda c: c.call("enqueue_assessed", {"round": round_ref}, timeout=120))
    console.print(f"{result['enqueued']:,} candidates enqueued ({result['not_eligible']:,} not eligible, "
                  f"{result['without_household']:,} without a registered household)")


@round_app.command("status")
def status(
    round_ref: Annotated[str, typer.Argument(metavar="ROUND")],
    watch: Annotated[bool, typer.Option(help="Refresh until the work is done (Ctrl-C to stop)")] = False,
    interval: Annotated[float, typer.Option(min=0.2, help="Seconds between refreshes")] = 2.0,
    exact: Annotated[bool, typer.Option(help="Count records (slow on big rounds)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw status as JSON")] = False,
    token: Token = None,
    operator: OperatorId = None,
) -> None:
    """Progress of a round: allocated, rejected, disbursed, failed, rate, ETA, queue lag."""
    body = {"round": round_ref, "exact": exact}
    if as_json:
        result = _run(token, operator, lambda c: c.call("round_status", body))
        json.dump(result, sys.stdout, indent=2, default=str)
        return
    _run(token, operator, lambda c: watch_status(lambda: c.call("round_status", body), watch=watch,
                                                 interval=interval, console=Console()))


@round_app.command("close")
def close(
    round_ref: Annotated[str, typer.Argument(metavar="ROUND")],
    force: Annotated[bool, typer.Option(help="Reject candidates still queued")] = False,
    token: Token = None,
    operator: OperatorId = None,
) -> None:
    """Close a round: AidRoundClosed with totals and the reconciliation with the gateway."""
    result = _run(token, operator, lambda c: c.call("close_round", {"round": round_ref, "force": force},
                                                    timeout=300))
    render_close(result, Console())
    if not result["reconciliation"]["matched"]:
        raise typer.Exit(1)


@round_app.command("sample-csv")
def sample_csv(
    path: Annotated[Path, typer.Argument(dir_okay=False, help="Where to write the CSV")],
    rows: Annotated[int, typer.Option(min=1, help="Number of rows")] = 63_335,
    seed: Annotated[int, typer.Option(help="Same seed, same file")] = 2022,
    bad_every: Annotated[int | None, typer.Option(help="Make every N-th row invalid")] = None,
) -> None:
    """Write a synthetic recipient list (valid KKs/NIKs of Kota Malang and Jember; not real people)."""
    write_csv(path, rows, seed=seed, bad_every=bad_every)
    console.print(f"wrote {rows:,} rows to {path}")


if __name__ == "__main__":
    os.environ.setdefault("COLUMNS", "120")
    app()
