"""``puskesos dlq list | show | redrive``: the dead-letter stream, read and re-driven by an operator.

Connects as the tools' NATS user (``PUSKESOS_NATS_URL``/``_USER``/``_PASSWORD``, else the local stack's
``stack.env``: the admin user) in ``PUSKESOS_NAMESPACE``.

* ``list`` reads the ``{NS}_DLQ`` stream through a headers-only ephemeral consumer, a batch at a time
  (bodies never leave the server), filtered by service and consumer on the subject
  (``{ns}.dlq.{service}.{consumer}``); ``--start`` pages on.
* ``show SEQ`` prints one dead letter's headers and body, personal data masked unless ``--reveal``.
* ``redrive`` asks the service that owns each dead letter to run it through the consumer that failed it,
  and only that one (the ``redrive`` command, ``puskesos_shared.messaging.redrive_service``): nothing is
  published on the events stream again, so no other consumer sees the event twice and the audit log
  stores it once. When the service answers ok, this tool deletes the dead letter from the stream (the
  services may not delete stream messages) and logs what it re-drove; when the handler fails again, the
  dead letter stays and the table shows the reason. Re-driving the same message twice is harmless: the
  event keeps its event id and handlers are idempotent by it.

Exit status: 0 done; 1 something failed (a re-drive, the connection, an unknown sequence); 2 bad usage.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict, dataclass
from typing import Annotated, Any, TypeVar

import nats
import nats.errors
import structlog
import typer
from lokal import mask_pii
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from puskesos_shared.commands import send_command
from puskesos_shared.logging import configure_logging, mask_value
from puskesos_shared.messaging import headers as h
from puskesos_shared.messaging.redrive import DLQ_ORIGINAL_MSG_ID
from puskesos_shared.messaging.redrive_service import REDRIVE_COMMAND
from puskesos_shared.settings import ServiceSettings
from puskesos_shared.topology import Topology
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Dead letters: list, show, re-drive to the consumer that failed them.", no_args_is_help=True)
log = structlog.get_logger("puskesos.dlq")
T = TypeVar("T")

#: Dead letters read per fetch (headers only: a few hundred bytes each).
BATCH = 500
REASON_CHARS = 80
#: Re-driven rows printed in full; failures are always printed.
SHOWN_REDRIVEN = 200


def _out() -> Console:
    return Console()  # made per command: the width (COLUMNS) and the output are the invocation's


def _err() -> Console:
    return Console(stderr=True)


class Failed(Exception):
    """Ends the command with a message and exit status 1."""


@dataclass(frozen=True)
class DeadLetter:
    """One dead letter as its headers describe it (the body is not read)."""

    sequence: int
    service: str
    consumer: str
    original_subject: str
    original_stream: str
    original_sequence: int | None
    event_id: str | None
    deliveries: int | None
    failed_at: str
    reason: str
    size: int | None

    @classmethod
    def parse(cls, sequence: int, subject: str, headers: dict[str, str], topology: Topology) -> DeadLetter:
        service, _, consumer = subject.removeprefix(f"{topology.namespace}.dlq.").partition(".")
        return cls(
            sequence=sequence, service=service, consumer=headers.get(h.DLQ_CONSUMER) or consumer,
            original_subject=headers.get(h.DLQ_ORIGINAL_SUBJECT, ""),
            original_stream=headers.get(h.DLQ_ORIGINAL_STREAM, ""),
            original_sequence=_int(headers.get(h.DLQ_ORIGINAL_SEQUENCE)),
            event_id=headers.get(DLQ_ORIGINAL_MSG_ID), deliveries=_int(headers.get(h.DLQ_DELIVERIES)),
            failed_at=headers.get(h.DLQ_FAILED_AT, ""), reason=headers.get(h.DLQ_REASON, ""),
            size=_int(headers.get("Nats-Msg-Size")),
        )


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def _masked(key: str, value: str) -> str:
    return str(mask_value(key, value))


def _short(text: str, limit: int = REASON_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- connection -------------------------------------------------------------------------------------
@asynccontextmanager
async def _connect(settings: ServiceSettings) -> AsyncIterator[NatsClient]:
    try:
        nc = await nats.connect(settings.nats_servers, user=settings.nats_user, password=settings.nats_password,
                                name="puskesos-dlq-cli", max_reconnect_attempts=3, connect_timeout=5)
    except (OSError, nats.errors.Error) as exc:
        raise Failed(f"cannot reach NATS at {settings.nats_url}: {type(exc).__name__}") from None
    try:
        yield nc
    finally:
        with suppress(Exception):
            await nc.drain()


def _run(work: Callable[[NatsClient, Topology], Awaitable[T]]) -> T:
    settings = ServiceSettings()

    async def main() -> T:
        async with _connect(settings) as nc:
            return await work(nc, settings.topology())

    try:
        return asyncio.run(main())
    except Failed as exc:
        _err().print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    except nats.errors.Error as exc:
        _err().print(f"[red]NATS error: {type(exc).__name__}: {exc}[/red]")
        raise typer.Exit(1) from None


# -- reading ----------------------------------------------------------------------------------------
def _filter(topology: Topology, service: str | None, consumer: str | None) -> str:
    if service is None and consumer is None:
        return f"{topology.namespace}.dlq.>"
    return f"{topology.namespace}.dlq.{service or '*'}.{consumer or '*'}"


async def dead_letters(js: JetStreamContext, topology: Topology, *, service: str | None = None,
                       consumer: str | None = None, start: int = 1, batch: int = BATCH
                       ) -> AsyncIterator[DeadLetter]:
    """The dead letters from sequence ``start`` on, oldest first, read ``batch`` at a time without bodies
    (a headers-only ephemeral consumer); stops at what the stream held when the read began."""
    stream = topology.dead_letter_stream
    try:
        state = (await js.stream_info(stream)).state
    except NotFoundError:
        raise Failed(f"no dead-letter stream {stream} (is the namespace right?)") from None
    if state.messages == 0 or state.last_seq < start:
        return
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE if start > 1 else DeliverPolicy.ALL,
        opt_start_seq=start if start > 1 else None, ack_policy=AckPolicy.NONE, headers_only=True,
        mem_storage=True, inactive_threshold=30.0)
    sub = await js.pull_subscribe(_filter(topology, service, consumer), stream=stream, config=config)
    try:
        if not (await sub.consumer_info()).num_pending:
            return  # nothing matches the filter: no need to wait out a fetch
        while True:
            try:
                msgs = await sub.fetch(batch, timeout=2.0)
            except nats.errors.TimeoutError:
                return
            for msg in msgs:
                meta = msg.metadata
                seq = int(meta.sequence.stream)
                if seq > state.last_seq:
                    return
                yield DeadLetter.parse(seq, msg.subject, dict(msg.headers or {}), topology)
                if not meta.num_pending:
                    return
    finally:
        with suppress(Exception):
            await sub.unsubscribe()


@app.command("list")
def list_(
    service: Annotated[str | None, typer.Option(help="Only this service's dead letters")] = None,
    consumer: Annotated[str | None, typer.Option(help="Only this consumer's dead letters")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many")] = 100,
    start: Annotated[int, typer.Option(min=1, help="First dead-letter sequence to read (to page on)")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line instead of a table")] = False,
) -> None:
    """The dead letters: sequence, service, consumer, original subject and sequence, reason (masked)."""

    async def work(nc: NatsClient, topology: Topology) -> tuple[list[DeadLetter], bool]:
        shown: list[DeadLetter] = []
        async for letter in dead_letters(nc.jetstream(), topology, service=service, consumer=consumer,
                                         start=start, batch=min(BATCH, limit + 1)):
            if len(shown) == limit:
                return shown, True
            shown.append(letter)
        return shown, False

    shown, more = _run(work)
    if as_json:
        for letter in shown:
            row = asdict(letter)
            row["reason"] = _masked("reason", letter.reason)
            typer.echo(json.dumps(row, ensure_ascii=False))
        return
    table = Table("DLQ seq", "service", "consumer", "original subject", "original", "event id", "deliveries",
                  "failed at", "reason", title=f"dead letters ({len(shown)} shown)")
    for d in shown:
        table.add_row(str(d.sequence), d.service, d.consumer, d.original_subject,
                      f"{d.original_stream}:{d.original_sequence}", d.event_id or "",
                      str(d.deliveries or ""), d.failed_at, _short(_masked("reason", d.reason)))
    _out().print(table)
    if more:
        _out().print(f"more: --start {shown[-1].sequence + 1}")


def _body_text(body: bytes, reveal: bool) -> str:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        text = body.decode("utf-8", "replace")
        return text if reveal else str(mask_pii(text, mode="partial").text)
    return json.dumps(document if reveal else mask_value("body", document), indent=2, ensure_ascii=False)


@app.command("show")
def show(
    sequence: Annotated[int, typer.Argument(min=1, help="The dead letter's sequence (dlq list)")],
    reveal: Annotated[bool, typer.Option(help="Show personal data unmasked (NIK, KK, phone, names)")] = False,
) -> None:
    """One dead letter: every header and the body, personal data masked unless --reveal."""

    async def work(nc: NatsClient, topology: Topology) -> tuple[str, dict[str, str], bytes]:
        try:
            msg = await nc.jetstream().get_msg(topology.dead_letter_stream, sequence)
        except NotFoundError:
            raise Failed(f"no dead letter at sequence {sequence} of {topology.dead_letter_stream}") from None
        return msg.subject or "", dict(msg.headers or {}), msg.data or b""

    subject, headers, body = _run(work)
    if reveal:
        _err().print("[yellow]--reveal: the headers and body below are unmasked and may carry personal data "
                     "(UU No. 27/2022 PDP): do not copy them into tickets or chats.[/yellow]")
    table = Table("header", "value", title=f"dead letter {sequence} on {subject}")
    for key, value in sorted(headers.items()):
        table.add_row(key, value if reveal else _masked(key, value))
    _out().print(table)
    _out().print(f"body ({len(body)} bytes{'' if reveal else ', personal data masked'}):")
    _out().print(_body_text(body, reveal), markup=False, highlight=False, soft_wrap=True)


# -- re-drive ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    letter: DeadLetter | None
    sequence: int
    ok: bool
    detail: str


async def _redrive_one(nc: NatsClient, topology: Topology, letter: DeadLetter, consumer: str | None,
                       timeout: float) -> Outcome:
    subject = topology.command_subject(letter.service, REDRIVE_COMMAND)
    request: dict[str, Any] = {"dead_letter_sequence": letter.sequence}
    if consumer is not None:
        request["consumer"] = consumer
    try:
        reply = await send_command(nc, subject, request, timeout=timeout)
    except nats.errors.NoRespondersError:
        return Outcome(letter, letter.sequence, False, f"no_service: no {letter.service} replica answers")
    except (nats.errors.TimeoutError, TimeoutError):
        return Outcome(letter, letter.sequence, False, f"timeout: no answer within {timeout:.0f}s (it may have "
                       "been re-driven; re-driving again is harmless)")
    if not reply.ok:
        error = reply.error or {}
        return Outcome(letter, letter.sequence, False, f"{error.get('code', 'error')}: {error.get('message', '')}")
    result = reply.result or {}
    log.info("dlq_redriven", dead_letter_sequence=letter.sequence, service=letter.service,
             consumer=result.get("consumer"), original_subject=result.get("original_subject"),
             original_stream=result.get("original_stream"), original_sequence=result.get("original_sequence"),
             event_id=result.get("event_id"))
    try:
        await nc.jetstream().delete_msg(topology.dead_letter_stream, letter.sequence)
    except NotFoundError:
        pass  # removed meanwhile (another operator's re-drive)
    except nats.errors.Error as exc:
        return Outcome(letter, letter.sequence, True, f"re-driven; the dead letter is still listed (delete failed: "
                       f"{type(exc).__name__}); re-driving it again is harmless")
    return Outcome(letter, letter.sequence, True, "re-driven and removed from the dead-letter stream")


async def _letter(js: JetStreamContext, topology: Topology, seq: int) -> DeadLetter | None:
    try:
        msg = await js.get_msg(topology.dead_letter_stream, seq)
    except NotFoundError:
        return None
    return DeadLetter.parse(seq, msg.subject or "", dict(msg.headers or {}), topology)


@app.command("redrive")
def redrive(
    sequences: Annotated[list[int] | None, typer.Argument(help="Dead-letter sequences (dlq list)")] = None,
    consumer: Annotated[str | None, typer.Option(help="Only this consumer's dead letters (with --all), or a check "
                                                      "that the named ones are its")] = None,
    service: Annotated[str | None, typer.Option(help="With --all: only this service's dead letters")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every dead letter (of --consumer / --service)")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each re-drive")] = 60.0,
) -> None:
    """Re-drive dead letters to the consumer that failed them (only that one), then remove them."""
    if bool(sequences) == all_:
        _err().print("[red]name dead-letter sequences, or pass --all (narrowed by --consumer / --service); "
                     "not both[/red]")
        raise typer.Exit(2)
    configure_logging()

    async def work(nc: NatsClient, topology: Topology) -> list[Outcome]:
        js = nc.jetstream()
        if all_:
            todo: list[DeadLetter | int] = [d async for d in dead_letters(js, topology, service=service,
                                                                            consumer=consumer)]
            if not todo:
                raise Failed("no dead letters" + (f" of consumer {consumer}" if consumer else "")
                             + (f" of service {service}" if service else ""))
        else:
            todo = [await _letter(js, topology, seq) or seq for seq in sequences or ()]
        outcomes: list[Outcome] = []
        for item in todo:
            if isinstance(item, int):
                outcomes.append(Outcome(None, item, False, f"dead_letter_not_found: no dead letter at sequence "
                                        f"{item} of {topology.dead_letter_stream}"))
            else:
                outcomes.append(await _redrive_one(nc, topology, item, consumer, timeout))
        return outcomes

    outcomes = _run(work)
    table = Table("DLQ seq", "service", "consumer", "original", "event id", "result", "detail",
                  title="re-drive")
    redriven = [o for o in outcomes if o.ok]
    failed = [o for o in outcomes if not o.ok]
    for o in [*failed, *redriven[:SHOWN_REDRIVEN]]:
        d = o.letter
        table.add_row(str(o.sequence), d.service if d else "", d.consumer if d else "",
                      f"{d.original_subject} ({d.original_stream}:{d.original_sequence})" if d else "",
                      (d.event_id or "") if d else "",
                      "[green]re-driven[/green]" if o.ok else "[red]failed[/red]", o.detail)
    _out().print(table)
    if len(redriven) > SHOWN_REDRIVEN:
        _out().print(f"… and {len(redriven) - SHOWN_REDRIVEN} more re-driven")
    _out().print(f"re-driven: {len(redriven)}, failed: {len(failed)}")
    if failed:
        raise typer.Exit(1)
