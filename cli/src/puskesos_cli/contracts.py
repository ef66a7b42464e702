"""``puskesos contracts``: generate and check the contract registry under ``shared/schemas/``.

``generate`` writes the JSON Schema and the example of every event version, the schemas of the copies
relayed to external subscribers (``feeds/pseudonymous/``, ``feeds/none/``: personal data marked ``x-pii``
replaced or removed), the request schema of every command (``command_catalog``) and the AsyncAPI
document with its markdown rendering; it
refuses to rewrite a published schema incompatibly (a breaking change needs a new version: a new
model and a new subject). ``check`` fails when the checked-in files are stale or a published schema
would change incompatibly; CI runs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from puskesos_shared.contracts.schema_registry import (
    SchemaLayout,
    check_fresh,
    generate,
    incompatibilities_with_published,
    stray_files,
)
from puskesos_shared.localstack.binaries import repo_root
from rich.console import Console

from .command_catalog import COMMANDS

app = typer.Typer(
    help="Event contracts: JSON Schemas, examples and the AsyncAPI document.", no_args_is_help=True
)
console = Console(soft_wrap=True)

RootOption = Annotated[
    Path | None, typer.Option("--root", help="Repository root (default: found from here or PUSKESOS_HOME)")
]


def _root(root: Path | None) -> Path:
    return (root or repo_root()).resolve()


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _print_incompatibilities(problems: list[str]) -> None:
    console.print(f"[red]{len(problems)} incompatible change(s) to published schemas:[/red]")
    for problem in problems:
        console.print(f"  [red]x[/red] {problem}", highlight=False)
    console.print(
        "A published vN schema never changes incompatibly: add a new model and subject (vN+1) instead."
    )


@app.command("generate")
def generate_command(
    root: RootOption = None,
    allow_incompatible: Annotated[
        bool, typer.Option(help="Overwrite published schemas even when the change is incompatible")
    ] = False,
) -> None:
    """Write shared/schemas/ (events/, examples/, feeds/, commands/, asyncapi.json, asyncapi.md) from the models."""
    base = _root(root)
    breaking = incompatibilities_with_published(base)
    if breaking and not allow_incompatible:
        _print_incompatibilities(breaking)
        console.print("[red]Nothing written.[/red]")
        raise typer.Exit(1)
    changed = generate(base, COMMANDS)
    if changed:
        for path in changed:
            console.print(f"  [green]wrote[/green] {_rel(path, base)}", highlight=False)
        where = _rel(SchemaLayout(base).base, base)
        console.print(f"[green]{len(changed)} file(s) written[/green] under {where}")
    else:
        console.print("[green]Up to date:[/green] nothing changed.")
    for path in stray_files(base, COMMANDS):
        console.print(f"  [yellow]stray[/yellow] {_rel(path, base)} (no event model or command generates it)",
                      highlight=False)


@app.command("check")
def check_command(root: RootOption = None) -> None:
    """Fail when the checked-in files are stale or a published schema would change incompatibly."""
    base = _root(root)
    stale = check_fresh(base, COMMANDS)
    breaking = incompatibilities_with_published(base)
    if stale:
        console.print(f"[red]{len(stale)} generated file(s) out of date:[/red]")
        for problem in stale:
            console.print(f"  [red]x[/red] {problem}", highlight=False)
        console.print("Run `puskesos contracts generate` and commit the result.")
    if breaking:
        _print_incompatibilities(breaking)
    if stale or breaking:
        raise typer.Exit(1)
    console.print("[green]Contracts are fresh and compatible with the published schemas.[/green]")
