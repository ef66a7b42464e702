"""``puskesos resident export``: a resident's personal data, on their request (UU No. 27/2022 PDP).

It asks the intake service's edge (``POST /residents/export``), which checks the officer's role and
the resident's village, gathers every service's part and records the export in its access log, so
the CLI never reads a database or the bus itself. The NIK is sent in the request body; without
``--nik`` it is asked for without echo on a terminal, or read from the first line of piped input
(keep it out of the shell history). The file is written with
mode 0600 (the owner only), atomically, and an existing file is kept unless ``--force``.

Exit status: 0 complete; 3 written but incomplete (a service did not answer: the file and the
summary name it); 1 refused or failed; 2 bad input.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from puskesos_shared.auth import Officer, issue_token
from puskesos_shared.contracts.primitives import OfficerRole, check_nik
from rich.console import Console
from rich.table import Table

from .token import scope_codes

app = typer.Typer(help="Residents' personal data (UU PDP): export on request.", no_args_is_help=True)
console = Console(stderr=True)
DEFAULT_URL = "http://127.0.0.1:8101"
INCOMPLETE = 3


def intake_url(url: str | None) -> str:
    """``--url``, else ``PUSKESOS_INTAKE_URL``, else the local stack's intake process, else the default port."""
    if url:
        return url.rstrip("/")
    if env := os.environ.get("PUSKESOS_INTAKE_URL"):
        return env.rstrip("/")
    from .services import endpoints

    return endpoints().get("intake", DEFAULT_URL).rstrip("/")


def signed_token(token: str | None, officer: str | None, role: OfficerRole, scope: list[str] | None) -> str:
    if token:
        return token
    if officer and scope:
        from .stack import auth_secret

        return issue_token(Officer(officer_id=officer, role=role, scope=tuple(scope)), auth_secret(),
                           ttl=dt.timedelta(minutes=15))
    console.print("[red]No officer token: pass --token (or PUSKESOS_TOKEN), or on a local stack --officer ID "
                  "--scope CODE (and --role).[/red]")
    raise typer.Exit(2)


def _nik_input(given: str | None) -> str:
    """``--nik``, else asked without echo on a terminal, else the first line of piped input (no prompt, so no
    getpass warning and nothing echoed)."""
    if given is not None:
        return given.strip()
    if sys.stdin.isatty():
        return str(typer.prompt("NIK of the resident", hide_input=True)).strip()
    line = sys.stdin.readline().strip()
    if not line:
        console.print("[red]--nik: no NIK given (pass --nik, or pipe it on the first line of input)[/red]")
        raise typer.Exit(2)
    return line


def write_private(path: Path, document: dict[str, Any], *, force: bool) -> None:
    """Writes ``document`` readable by the owner only (0600), atomically; keeps an existing file unless ``force``."""
    if path.exists() and not force:
        console.print(f"[red]{path} exists; pass --force to replace it.[/red]")
        raise typer.Exit(2)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(document, out, ensure_ascii=False, indent=2)
            out.write("\n")
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _error(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict):  # RFC 9457 problem details (docs/conventions.md "Errors")
        fields = "; ".join(f"{'.'.join(map(str, e.get('loc', [])))}: {e.get('msg')}" for e in body.get("errors") or [])
        return f"{body.get('code', 'refused')}: {body.get('detail', '')}" + (f" ({fields})" if fields else "")
    return str(body)[:300]


def summary(document: dict[str, Any]) -> Table:
    table = Table("section", "state", "records")
    for name, part in document["sections"].items():
        if "error" in part:
            table.add_row(name, f"[red]unavailable ({part.get('reason')})[/red]", "")
            continue
        counts = ", ".join(f"{k}: {len(v)}" for k, v in part["records"].items() if isinstance(v, list))
        table.add_row(name, "[green]found[/green]" if part["found"] else "nothing held", counts)
    return table


@app.command("export")
def export(
    out: Annotated[Path, typer.Option("--out", help="Where to write the JSON document (mode 0600)")],
    nik: Annotated[str | None, typer.Option(help="The resident's NIK; when omitted, asked without echo on a "
                                                 "terminal or read from the first line of piped input")] = None,
    url: Annotated[str | None, typer.Option(help="Intake service base URL (default: the local stack's)")] = None,
    token: Annotated[str | None, typer.Option(envvar="PUSKESOS_TOKEN", help="Officer token")] = None,
    officer: Annotated[str | None, typer.Option(help="Sign a local token for this officer id")] = None,
    role: Annotated[OfficerRole, typer.Option(help="Role of the local token")] = OfficerRole.BACK_OFFICE,
    scope: Annotated[list[str] | None, typer.Option(help="Scope of the local token; repeat for more",
                                                    callback=scope_codes)] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing file")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the export")] = 120.0,
) -> None:
    """Export everything the services hold about a resident into one JSON file."""
    nik = _nik_input(nik)
    try:
        check_nik(nik)
    except ValueError as exc:
        console.print(f"[red]--nik: {exc}[/red]")
        raise typer.Exit(2) from None
    bearer = signed_token(token, officer, role, scope)
    base = intake_url(url)
    try:
        response = httpx.post(f"{base}/residents/export", json={"nik": nik}, timeout=timeout,
                              headers={"Authorization": f"Bearer {bearer}"})
    except httpx.HTTPError as exc:
        console.print(f"[red]cannot reach the intake service at {base}: {type(exc).__name__}[/red]")
        raise typer.Exit(1) from None
    if response.status_code != 200:
        console.print(f"[red]export refused (HTTP {response.status_code}) {_error(response)}[/red]")
        raise typer.Exit(1)
    document = response.json()
    write_private(out, document, force=force)
    subject = document["subject"]
    console.print(f"export {document['export_id']} of {subject['nik_masked']} ({subject.get('village_name')}) "
                  f"written to {out} (mode 0600)")
    console.print(summary(document))
    if not document["complete"]:
        console.print(f"[yellow]incomplete: {', '.join(document['unavailable'])} did not answer; ask again "
                      "when the service is back.[/yellow]")
        raise typer.Exit(INCOMPLETE)
