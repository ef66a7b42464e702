"""The ``redrive`` command every service serves: one dead letter back through the consumer that failed it.

``{ns}.commands.{service}.redrive.v1``, request ``RedriveRequest``, result ``RedriveResult`` (the reply
envelope of ``commands``). The service

1. reads the message: the dead letter at ``dead_letter_sequence`` in the ``{NS}_DLQ`` stream (its subject
   must be ``{ns}.dlq.{this service}.{consumer}``), or the original message at ``sequence`` in the events
   stream for ``consumer`` (when the dead letter is gone, or to run an event through one consumer again);
2. checks that ``consumer`` is one this process registered (``runtime.redrive``: every ``subscribe_events``
   consumer, plus handlers registered by name) and, for an original message, that the consumer reads its
   subject;
3. runs the consumer's re-drive handler (for event consumers the decode + handler path of a live
   delivery; the event keeps its event id, and handlers are idempotent by it, so a repeat changes
   nothing). Nothing is published: the other consumers of the event never see it again.

A handler that fails answers ``redrive_failed`` with the reason; the dead letter is untouched.

**Removing the dead letter is the caller's step, after an ``ok`` reply.** Services may not delete
messages from streams (their NATS users have no ``$JS.API.STREAM.MSG.DELETE``, ``permissions``), so the
operator's tool (``puskesos dlq redrive``, the admin user) deletes the dead letter once the service
answered ok, and logs what it re-drove. A crash between the two leaves the dead letter in place; re-driving
it again is harmless (idempotent handlers).
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

import structlog
from faststream.nats import NatsBroker
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..commands import CommandError, subscribe_command
from ..contracts.registry import InvalidMessage
from ..logging import mask_value
from ..topology import Topology
from . import headers as h
from .redrive import DLQ_ORIGINAL_MSG_ID, REDRIVE_HEADER, RedriveRegistry

log = structlog.get_logger("puskesos.redrive")

REDRIVE_COMMAND = "redrive"
_CONSUMER_PATTERN = r"^[a-z][a-z0-9_-]*$"
#: Longest failure reason a reply carries.
MAX_REASON_CHARS = 500


class RedriveRequest(BaseModel):
    """Which message to re-drive: a dead letter by its sequence, or an original message for one consumer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dead_letter_sequence: int | None = Field(
        default=None, ge=1,
        description="Sequence of the dead letter in the dead-letter stream ({NS}_DLQ); it names its consumer")
    consumer: str | None = Field(
        default=None, min_length=1, max_length=100, pattern=_CONSUMER_PATTERN,
        description="The consumer to re-drive to: required with sequence; with dead_letter_sequence, the dead "
                    "letter must be this consumer's (a check)")
    stream: str | None = Field(
        default=None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_-]+$",
        description="With sequence: the stream of the original message (only the events stream, {NS}_EVENTS, "
                    "the default)")
    sequence: int | None = Field(default=None, ge=1, description="Sequence of the original message in its stream")

    @model_validator(mode="after")
    def _one_source(self) -> RedriveRequest:
        if self.dead_letter_sequence is not None:
            if self.sequence is not None or self.stream is not None:
                raise ValueError("give dead_letter_sequence, or consumer and sequence (and stream), not both")
        elif self.sequence is None or self.consumer is None:
            raise ValueError("give dead_letter_sequence, or consumer and sequence (and stream)")
        return self


class RedriveResult(BaseModel):
    """What was re-driven (the handler succeeded)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    service: str
    consumer: str
    dead_letter_sequence: int | None = Field(
        description="The dead letter re-driven (the caller removes it from the dead-letter stream); null for an "
                    "original message")
    original_subject: str
    original_stream: str
    original_sequence: int
    event_id: str | None
    redriven_at: dt.datetime


class _Source(Protocol):
    """The part of ``ServiceRuntime`` the command needs (shared's service module imports this one)."""

    name: str
    topology: Topology
    broker: NatsBroker

    @property
    def redrive(self) -> RedriveRegistry: ...


def _reason(exc: BaseException) -> str:
    text = exc.reason if isinstance(exc, InvalidMessage) else f"{type(exc).__name__}: {exc}"
    text = str(mask_value("reason", " ".join(text.split())))  # personal data masked, as in logs
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 1] + "…"


class Redriver:
    """Serves ``redrive`` for one service process (``serve_redrive``)."""

    def __init__(self, source: _Source) -> None:
        self._source = source

    @property
    def _js(self) -> JetStreamContext:
        js: JetStreamContext = self._source.broker.config.connection_state.stream
        return js

    async def handle(self, req: RedriveRequest) -> RedriveResult:
        service, topology = self._source.name, self._source.topology
        if req.dead_letter_sequence is not None:
            consumer, body, headers = await self._dead_letter(req.dead_letter_sequence, req.consumer)
            headers[REDRIVE_HEADER] = f"dlq:{req.dead_letter_sequence}"
        else:
            assert req.consumer is not None and req.sequence is not None  # the request's validator
            consumer = req.consumer
            body, headers = await self._original(consumer, req.stream or topology.events_stream, req.sequence)
        target = self._source.redrive.get(consumer)
        if target is None:
            raise CommandError("unknown_consumer", f"the {service} service has no consumer {consumer!r} to "
                               f"re-drive to (it has: {', '.join(self._source.redrive.consumers()) or 'none'})",
                               status=404)
        subject = headers[h.DLQ_ORIGINAL_SUBJECT]
        if not target.reads(subject):
            raise CommandError("not_for_consumer", f"consumer {consumer!r} does not read {subject}", status=409)
        try:
            await target.handler(body, headers)
        except Exception as exc:
            reason = _reason(exc)
            log.warning("redrive_failed", consumer=consumer, dead_letter_sequence=req.dead_letter_sequence,
                        original_subject=subject, original_sequence=headers[h.DLQ_ORIGINAL_SEQUENCE], reason=reason)
            raise CommandError("redrive_failed", f"the {consumer} handler failed again: {reason}",
                               status=409) from None
        result = RedriveResult(
            service=service, consumer=consumer, dead_letter_sequence=req.dead_letter_sequence,
            original_subject=subject, original_stream=headers[h.DLQ_ORIGINAL_STREAM],
            original_sequence=int(headers[h.DLQ_ORIGINAL_SEQUENCE]), event_id=headers.get(h.MSG_ID),
            redriven_at=dt.datetime.now(dt.UTC))
        log.info("redriven", consumer=consumer, dead_letter_sequence=req.dead_letter_sequence,
                 original_subject=subject, original_sequence=result.original_sequence, event_id=result.event_id)
        return result

    async def _dead_letter(self, seq: int, expected: str | None) -> tuple[str, bytes, dict[str, str]]:
        topology, service = self._source.topology, self._source.name
        try:
            msg = await self._js.get_msg(topology.dead_letter_stream, seq)
        except NotFoundError:
            raise CommandError("dead_letter_not_found", f"no dead letter at sequence {seq} of "
                               f"{topology.dead_letter_stream} (re-driven and removed already?)", status=404) from None
        prefix = f"{topology.namespace}.dlq."
        owner, _, consumer = (msg.subject or "").removeprefix(prefix).partition(".")
        if owner != service:
            raise CommandError("dead_letter_of_other_service", f"dead letter {seq} belongs to the {owner or 'unknown'} "
                               f"service; send the re-drive to it", status=409)
        headers: dict[str, str] = dict(msg.headers or {})
        consumer = headers.get(h.DLQ_CONSUMER) or consumer
        if expected is not None and expected != consumer:
            raise CommandError("not_for_consumer", f"dead letter {seq} is {consumer!r}'s, not {expected!r}'s",
                               status=409)
        if not headers.get(h.DLQ_ORIGINAL_SUBJECT) or not headers.get(h.DLQ_ORIGINAL_SEQUENCE):
            raise CommandError("redrive_failed", f"dead letter {seq} lacks its original subject and sequence "
                               "headers", status=409)
        if original := headers.get(DLQ_ORIGINAL_MSG_ID):
            headers[h.MSG_ID] = original  # the handler sees the original's id (the event id), as live
        else:
            headers.pop(h.MSG_ID, None)
        return consumer, msg.data or b"", headers

    async def _original(self, consumer: str, stream: str, seq: int) -> tuple[bytes, dict[str, str]]:
        topology = self._source.topology
        if stream != topology.events_stream:
            raise CommandError("invalid_request", f"only messages of {topology.events_stream} can be re-driven by "
                               "sequence", [{"loc": ["stream"], "msg": "not the events stream"}], status=422)
        try:
            msg = await self._js.get_msg(stream, seq)
        except NotFoundError:
            raise CommandError("message_not_found", f"no message at sequence {seq} of {stream}", status=404) from None
        headers: dict[str, str] = {k: v for k, v in (msg.headers or {}).items() if k != h.MSG_ID or v}
        headers.update({
            h.DLQ_ORIGINAL_SUBJECT: msg.subject or "", h.DLQ_ORIGINAL_STREAM: stream,
            h.DLQ_ORIGINAL_SEQUENCE: str(seq), h.DLQ_CONSUMER: consumer, REDRIVE_HEADER: f"{stream}:{seq}",
        })
        return msg.data or b"", headers


def serve_redrive(source: _Source) -> str:
    """Serves ``{ns}.commands.{service}.redrive.v1`` for this process's consumers (``ServiceRuntime`` does)."""
    redriver = Redriver(source)
    return subscribe_command(source.broker, source.topology, service=source.name, name=REDRIVE_COMMAND,
                             request=RedriveRequest, handler=redriver.handle)

