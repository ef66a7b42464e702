"""``python -m puskesos_audit.cli``: verify, trace, replay and checkpoint the audit log.

Reads the audit database directly (``PUSKESOS_MONGO_URL``, ``PUSKESOS_MONGO_DB``/``PUSKESOS_NAMESPACE``)
and NATS where a command needs it; keys come from the audit settings. ``app`` can be mounted
in another typer app (``puskesos audit ...``).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import nats
import typer
from nats.aio.client import Client as NatsClient
from puskesos_shared.mongo import Mongo
from rich.console import Console

from . import queries
from .checkpoints import Checkpoint
from .indexer import Indexer, IndexFollower
from .reader import LogReader
from .render import mermaid, tree, verify_table
from .replay import publish_replay
from .settings import AuditSettings
from .store import AuditStore
from .trace import TraceKind, check_trace_value, trace

app = typer.Typer(help="The Puskesos audit log: verify, trace, replay, checkpoints.", no_args_is_help=True)
replay_app = typer.Typer(help="Decision replay, history replay and replay to a subscriber.", no_args_is_help=True)
checkpoint_app = typer.Typer(help="Signed checkpoints of the chain head.", no_args_is_help=True)
app.add_typer(replay_app, name="replay")
app.add_typer(checkpoint_app, name="checkpoint")
console = Console()
T = TypeVar("T")


def _settings() -> AuditSettings:
    return AuditSettings()


def _reader(settings: AuditSettings) -> tuple[LogReader, Any]:
    return LogReader.connect(settings.mongo_url, settings.database_name)


@asynccontextmanager
async def _store(settings: AuditSettings) -> AsyncIterator[AuditStore]:
    mongo = Mongo(settings.mongo_url, settings.database_name, app_name="puskesos-audit-cli")
    try:
        yield AuditStore(mongo.db)
    finally:
        await mongo.close()


async def _nats(settings: AuditSettings) -> NatsClient:
    return await nats.connect(settings.nats_servers, user=settings.nats_user, password=settings.nats_password,
                              name="puskesos-audit-cli")


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")


def _run(factory: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(factory())  # type: ignore[arg-type]


@app.command()
def verify(
    from_seq: Annotated[int | None, typer.Option("--from", help="First stream sequence")] = None,
    to_seq: Annotated[int | None, typer.Option("--to", help="Last stream sequence")] = None,
    checkpoints: Annotated[Path | None, typer.Option(help="Checkpoints kept outside (JSON list)")] = None,
    signatures: Annotated[bool, typer.Option(help="Check checkpoint signatures (needs the key)")] = True,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Verify the hash chain; exits 1 when any record is altered, deleted or out of order."""
    settings = _settings()
    external = [Checkpoint.model_validate(c) for c in json.loads(checkpoints.read_text())] if checkpoints else []
    reader, client = _reader(settings)
    try:
        report = queries.verify(reader, settings.checkpoint_key() if signatures else None, from_seq=from_seq,
                                to_seq=to_seq, external=external)
    finally:
        client.close()
    if as_json:
        _print_json(report.model_dump(mode="json"))
    else:
        console.print(verify_table(report))
    raise typer.Exit(0 if report.ok else 1)


@app.command("trace")
def trace_command(
    kind: Annotated[TraceKind, typer.Argument(help="What the value is")],
    value: Annotated[str, typer.Argument(help="The id, KK or NIK; '-' reads it from stdin (keeps it out of "
                                              "the shell history)")],
    output: Annotated[str, typer.Option("--format", help="tree, json or mermaid")] = "tree",
    max_nodes: Annotated[int, typer.Option(min=1, max=5000)] = 500,
    reveal: Annotated[bool, typer.Option(help="Show personal data unmasked")] = False,
) -> None:
    """Trace an allocation, disbursement, case, complaint, household, KK or NIK to the roots of its decisions."""
    settings = _settings()
    if value == "-":
        value = sys.stdin.readline().strip()
    try:
        value = check_trace_value(kind, value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="VALUE") from None

    async def go() -> Any:
        async with _store(settings) as store:
            return await trace(store, kind, value, settings.index_key(), max_nodes=max_nodes, reveal=reveal)

    result = _run(go)
    if not result.nodes:
        console.print(f"[red]nothing in the log for that {kind.value}[/red]")
        raise typer.Exit(2)
    if output == "json":
        _print_json(result.model_dump(mode="json"))
    elif output == "mermaid":
        sys.stdout.write(mermaid(result))
    else:
        console.print(tree(result))


@replay_app.command("decisions")
def replay_decisions(
    from_seq: Annotated[int | None, typer.Option("--from")] = None,
    to_seq: Annotated[int | None, typer.Option("--to")] = None,
    ask_referral: Annotated[bool, typer.Option(help="Fetch unknown rule sets from the referral service")] = True,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Re-derive every recorded decision from its recorded inputs and rule version; exits 1 on a mismatch."""
    settings = _settings()

    async def go() -> Any:
        reader, client = _reader(settings)
        nc = await _nats(settings) if ask_referral else None
        try:
            return await queries.decisions(reader, directories=settings.rules_dirs(), nc=nc,
                                           topology=settings.topology(), from_seq=from_seq, to_seq=to_seq)
        finally:
            client.close()
            if nc is not None:
                await nc.close()

    report = _run(go)
    if as_json:
        _print_json(report.model_dump(mode="json"))
    else:
        console.print(f"decisions checked: {report.checked}; matching: {report.matches}; "
                      f"mismatches: {len(report.mismatches)}; unverifiable: {len(report.unverifiable)}; "
                      f"rule sets: {', '.join(report.rule_sets_used) or '-'}")
        for v in report.mismatches + report.unverifiable:
            console.print(f"  [{'red' if v.outcome == 'mismatch' else 'yellow'}]{v.outcome}[/] #{v.seq} "
                          f"{v.event_type} {v.event_id}: {'; '.join(v.reasons)}")
    raise typer.Exit(0 if report.ok else 1)


def _history(factory: Callable[[LogReader, NatsClient], Awaitable[dict[str, Any]]]) -> None:
    settings = _settings()

    async def go() -> dict[str, Any]:
        reader, client = _reader(settings)
        nc = await _nats(settings)
        try:
            return await factory(reader, nc)
        finally:
            client.close()
            await nc.close()

    result = _run(go)
    _print_json(result)
    raise typer.Exit(0 if result.get("ok") else 1)


@replay_app.command("round")
def replay_round(round_id: str, live_url: Annotated[str | None, typer.Option()] = None,
                 token: Annotated[str | None, typer.Option(envvar="PUSKESOS_TOKEN")] = None) -> None:
    """Rebuild a round's totals from the log; compare with the stream, the close totals and the live service."""
    settings = _settings()
    _history(lambda reader, nc: queries.round_history(
        reader, round_id.lower(), js=nc.jetstream(), topology=settings.topology(),
        live_url=live_url or settings.audit_distribution_url, token=token))


@replay_app.command("village")
def replay_village(village_code: str) -> None:
    """Rebuild a village's case counts from the log and compare with the stream."""
    settings = _settings()
    _history(lambda reader, nc: queries.village_history(reader, village_code, js=nc.jetstream(),
                                                        topology=settings.topology()))


@replay_app.command("publish")
def replay_publish(
    request_id: Annotated[str, typer.Option(help="Subscribe to {ns}.replay.{request_id}.> first")],
    from_seq: Annotated[int | None, typer.Option("--from")] = None,
    to_seq: Annotated[int | None, typer.Option("--to")] = None,
) -> None:
    """Publish logged events to {ns}.replay.{request_id}.> for a late subscriber."""
    settings = _settings()

    async def go() -> dict[str, Any]:
        reader, client = _reader(settings)
        nc = await _nats(settings)
        try:
            result = await publish_replay(nc, reader, namespace=settings.namespace, request_id=request_id,
                                          from_seq=from_seq, to_seq=to_seq)
            return result.as_dict()
        finally:
            client.close()
            await nc.close()

    _print_json(_run(go))


@checkpoint_app.command("list")
def checkpoint_list() -> None:
    """Print the stored checkpoints (JSON): keep this file somewhere the log's operators cannot write."""
    settings = _settings()
    reader, client = _reader(settings)
    try:
        _print_json(queries.checkpoints(reader))
    finally:
        client.close()


@checkpoint_app.command("export")
def checkpoint_export(path: Path) -> None:
    """Write the stored checkpoints to PATH."""
    settings = _settings()
    reader, client = _reader(settings)
    try:
        items = queries.checkpoints(reader)
    finally:
        client.close()
    path.write_text(json.dumps(items, indent=2) + "\n", encoding="utf-8")
    console.print(f"{len(items)} checkpoints written to {path}")


@checkpoint_app.command("create")
def checkpoint_create() -> None:
    """Take a signed checkpoint of the current head now."""
    settings = _settings()
    reader, client = _reader(settings)
    try:
        cp = queries.create_checkpoint(reader, settings.checkpoint_key(), settings.topology().events_stream)
    finally:
        client.close()
    _print_json(cp)


@app.command()
def status() -> None:
    """The log's head and how far the trace index has caught up."""
    settings = _settings()

    async def go() -> dict[str, Any]:
        async with _store(settings) as store:
            head = await store.get_head()
            indexed = await store.index_position()
        return {**{k: head.get(k) for k in ("seq", "hash", "chunk", "updated_at")}, "indexed_chunk": indexed}

    _print_json(_run(go))


@app.command()
def reindex(
    yes: Annotated[bool, typer.Option("--yes", help="Confirm that the audit service is stopped")] = False,
) -> None:
    """Rebuild the trace index from the log (e.g. one written by an earlier version, with postings)."""
    if not yes:
        console.print("[red]Stop the audit service first (its index follower would race the rebuild), "
                      "then run this with --yes.[/red]")
        raise typer.Exit(2)
    settings = _settings()

    async def go() -> int:
        async with _store(settings) as store:
            await store.reset_index()
            return await IndexFollower(store, Indexer(store, settings.index_key())).catch_up()

    console.print(f"trace index rebuilt from {_run(go):,} chunks")


if __name__ == "__main__":
    app()
