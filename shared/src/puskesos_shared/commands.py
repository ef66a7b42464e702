"""Commands over NATS request-reply: one validated request model, one reply shape.

Replies are JSON ``{"ok": true, "result": {...}}`` or
``{"ok": false, "error": {"code": ..., "message": ..., "fields": [{"loc": [...], "msg": ..., "type": ...}]}}``
(``loc`` a list of keys and indexes, as in pydantic). The codes are those of the HTTP problem details
(``problems.PROBLEMS``): a ``CommandError`` raised under an HTTP endpoint becomes one.
Invalid requests never reach the handler and never echo input values back.
Subjects follow ``Topology.command_subject`` (``{ns}.commands.{service}.{name}.v1``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import structlog
from faststream.nats import NatsBroker, NatsMessage
from nats.aio.client import Client as NatsClient
from pydantic import BaseModel, ConfigDict, ValidationError

from .topology import Topology

log = structlog.get_logger("puskesos.commands")
Req = TypeVar("Req", bound=BaseModel)

#: Largest command body accepted (bytes); the broker's own limit is 1 MiB by default.
MAX_COMMAND_BYTES = 256 * 1024


Loc = list[str | int]


def as_loc(loc: str | Iterable[str | int]) -> Loc:
    """A field's location as a list: ``"body.members.1.nik"`` -> ``["body", "members", 1, "nik"]``."""
    parts: Iterable[str | int] = loc.split(".") if isinstance(loc, str) else loc
    return [int(p) if isinstance(p, str) and p.isdigit() else p for p in parts if p != ""]


class CommandError(Exception):
    """A command that cannot be carried out; ``code`` is stable (``problems.PROBLEMS``), ``message`` is
    for people and names no input value; ``fields`` are ``{"loc", "msg", "type"}`` (``loc`` a list)."""

    def __init__(self, code: str, message: str, fields: Sequence[Mapping[str, Any]] | None = None,
                 status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status
        self.fields: list[dict[str, Any]] = [
            {"loc": as_loc(f.get("loc", ())), "msg": str(f.get("msg", "")), "type": str(f.get("type", code))}
            for f in fields or ()]

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "fields": self.fields}


class CommandReply(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ok: bool
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


def validation_fields(exc: ValidationError) -> list[dict[str, Any]]:
    return [{"loc": list(err["loc"]), "msg": err["msg"], "type": err["type"]}
            for err in exc.errors(include_input=False, include_url=False)]


def parse_request(model: type[Req], body: bytes) -> Req:
    if len(body) > MAX_COMMAND_BYTES:
        raise CommandError("payload_too_large", f"command body is {len(body)} bytes; the limit is {MAX_COMMAND_BYTES}",
                           status=413)
    try:
        raw = json.loads(body)
    except json.JSONDecodeError as exc:
        raise CommandError("malformed_json", f"body is not valid JSON: {exc.msg} at position {exc.pos}") from None
    except UnicodeDecodeError:
        raise CommandError("malformed_json", "body is not UTF-8 text") from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise CommandError("invalid_request", "the request does not match the command's schema",
                           validation_fields(exc), status=422) from None


CommandHandler = Callable[[Req], Awaitable[BaseModel | dict[str, Any]]]
#: A handler of a scoped command: the request and the subject's last token (``subscribe_scoped_command``).
ScopedHandler = Callable[[Req, str], Awaitable[BaseModel | dict[str, Any]]]


async def _answer(name: str, request: type[Req], body: bytes,
                  handle: Callable[[Req], Awaitable[BaseModel | dict[str, Any]]]) -> bytes:
    structlog.contextvars.bind_contextvars(command=name)
    try:
        req = parse_request(request, body)
        result = await handle(req)
        payload = result.model_dump(mode="json") if isinstance(result, BaseModel) else result
        reply = CommandReply(ok=True, result=payload)
    except CommandError as exc:
        reply = CommandReply(ok=False, error=exc.body())
    except Exception as exc:  # the caller gets an answer, the log gets the detail
        log.exception("command_failed", error=type(exc).__name__)
        reply = CommandReply(ok=False, error={"code": "internal_error", "message": "the command failed; "
                                              "it may be retried with the same idempotency key", "fields": []})
    finally:
        structlog.contextvars.unbind_contextvars("command")
    return reply.model_dump_json().encode()


def subscribe_command(
    broker: NatsBroker,
    topology: Topology,
    *,
    service: str,
    name: str,
    request: type[Req],
    handler: CommandHandler[Req],
    version: int = 1,
    every_replica: bool = False,
) -> str:
    """Serves ``{ns}.commands.{service}.{name}.v{version}``; replicas share it through a queue group, or
    with ``every_replica`` each replica gets it (the requester takes the first answer)."""
    subject = topology.command_subject(service, name, version)

    @broker.subscriber(subject, queue="" if every_replica else f"{service}-commands", title=f"{service}.{name}",
                       description=f"Command {name} of the {service} service ({request.__name__})")
    async def _serve(msg: NatsMessage) -> bytes:
        return await _answer(name, request, msg.body, handler)

    return subject


def subscribe_scoped_command(
    broker: NatsBroker,
    topology: Topology,
    *,
    service: str,
    name: str,
    request: type[Req],
    handler: ScopedHandler[Req],
    parameter: str,
    version: int = 1,
) -> str:
    """Serves ``{ns}.commands.{service}.{name}.v{version}.*`` (same queue group, same reply shape): the last
    token (``parameter``, e.g. a referral target's code) says on whose behalf the request comes. Only the
    NATS permissions decide who may publish which token, so the handler trusts the subject, not the body."""
    base = topology.command_subject(service, name, version)
    subject = f"{base}.*"

    @broker.subscriber(subject, queue=f"{service}-commands", title=f"{service}.{name}.{{{parameter}}}",
                       description=f"Command {name} of the {service} service on behalf of a {parameter} "
                                   f"({request.__name__})")
    async def _serve(msg: NatsMessage) -> bytes:
        scope = msg.raw_message.subject.rsplit(".", 1)[-1]

        async def handle(req: Req) -> BaseModel | dict[str, Any]:
            return await handler(req, scope)

        return await _answer(f"{name}.{parameter}", request, msg.body, handle)

    return subject


async def send_command(nc: NatsClient, subject: str, request: BaseModel | dict[str, Any] | bytes,
                       *, timeout: float = 5.0) -> CommandReply:
    """Client side: sends a command and parses the reply."""
    if isinstance(request, bytes):
        body = request
    elif isinstance(request, BaseModel):
        body = request.model_dump_json().encode()
    else:
        body = json.dumps(request).encode()
    msg = await nc.request(subject, body, timeout=timeout)
    return CommandReply.model_validate_json(msg.data)
