"""Generated contract artefacts: a JSON Schema and an example per event, and the AsyncAPI document.

Everything lands under ``shared/schemas/`` of the repository::

    events/{EventType}.v{N}.json     JSON Schema (draft 2020-12), self-contained ($defs inside)
    examples/{EventType}.v{N}.json   the example from ``examples.EXAMPLES``, as sent on the wire
    commands/{service}.{name}.v{N}.json  JSON Schema of one command's request (validation mode)
    commands/CommandReply.v1.json    the reply envelope every command answers with
    feeds/{level}/{EventType}.v{N}.json  JSON Schema of the copy relayed to an external subscriber whose
                                     account says --pii {level} (pseudonymous, none): ``pseudonymous.derived_schema``
    asyncapi.json                    AsyncAPI 3.0: events (a send per producer), commands (a receive with
                                     a reply per command), the dead-letter subjects, servers, security
    asyncapi.md                      the same document for people

Shared knows no service: the commands come in as ``CommandSpec``s from the composition root
(``puskesos_cli.command_catalog``), which every function writing or checking files takes.

Schemas are generated in pydantic's *validation* mode and describe the writer: exactly what a
producer of the version sends (``additionalProperties: false``; every enum value listed, open
enums marked ``x-open-enum``). A reader (``decode_event``) accepts more: it ignores properties it
does not know and any string of an open enum (``compat.reader_view``). ``event_type`` and
``schema_version`` have defaults on the models, but ``decode_event`` routes on them and rejects
a message without them, so the generated schema lists them as required.

Files are written with sorted keys, two-space indent and a trailing newline, so that
regenerating unchanged models is byte-for-byte stable and ``check_fresh`` can compare
text. A published schema is never rewritten incompatibly: ``incompatibilities_with_published``
compares the checked-in schemas with the current models (see ``compat``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ..auth import ALGORITHM, ISSUER
from ..messaging import headers as h
from ..problems import PROBLEMS
from ..topology import Topology
from .compat import incompatibilities
from .envelope import OPEN_ENUM_KEYWORD, Event
from .examples import EXAMPLES
from .pseudonymous import FEED_LEVELS, PiiLevel, derived_schema
from .registry import EVENT_TYPES, event_key, subject_for

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
#: The AsyncAPI multi-format schema id of the payload schemas (JSON Schema 2020-12).
ASYNCAPI_SCHEMA_FORMAT = "application/schema+json;version=draft-2020-12"
REF_TEMPLATE = "#/$defs/{model}"
#: Envelope fields a consumer routes on; required on the wire although the models default them.
ROUTING_FIELDS = ("event_type", "schema_version")
PRODUCTION = Topology(namespace="puskesos")


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One request-reply command a service serves (``puskesos_shared.commands.subscribe_command``).

    ``summary`` is for people. ``parameter`` (with ``parameter_description``) names a last subject token
    saying on whose behalf the request comes (``subscribe_scoped_command``: ``...{name}.v1.{parameter}``).
    """

    service: str
    name: str
    request: type[BaseModel]
    summary: str
    version: int = 1
    parameter: str | None = None
    parameter_description: str = ""

    @property
    def officer_token(self) -> bool:
        """Whether the request carries an officer token in ``token`` that the service checks (otherwise only
        the NATS permissions decide who may send it)."""
        return "token" in self.request.model_fields

    @property
    def key(self) -> str:
        scope = f".by_{self.parameter}" if self.parameter else ""
        return f"{self.service}.{self.name}.v{self.version}{scope}"

    @property
    def file_name(self) -> str:
        return f"{self.key}.json"

    @property
    def operation_id(self) -> str:
        scope = f".by_{self.parameter}" if self.parameter else ""
        return f"{self.service}.receive.{self.name}.v{self.version}{scope}"

    def subject(self, topology: Topology) -> str:
        subject = topology.command_subject(self.service, self.name, self.version)
        return f"{subject}.{{{self.parameter}}}" if self.parameter else subject


#: The reply envelope's schema file (``commands/``).
REPLY_FILE = "CommandReply.v1.json"
REPLY_MESSAGE = "CommandReply"
REPLY_CHANNEL = "commandReplies"
DEAD_LETTER_CHANNEL = "deadLetters"
NATS_SECURITY = "natsUserPassword"
OFFICER_SECURITY = "officerToken"


@dataclass(frozen=True, slots=True)
class SchemaLayout:
    """Where the generated files live below the repository root."""

    root: Path

    @property
    def base(self) -> Path:
        return self.root / "shared" / "schemas"

    @property
    def events_dir(self) -> Path:
        return self.base / "events"

    @property
    def examples_dir(self) -> Path:
        return self.base / "examples"

    @property
    def asyncapi(self) -> Path:
        return self.base / "asyncapi.json"

    @property
    def commands_dir(self) -> Path:
        return self.base / "commands"

    @property
    def reply_schema(self) -> Path:
        return self.commands_dir / REPLY_FILE

    @property
    def asyncapi_markdown(self) -> Path:
        return self.base / "asyncapi.md"

    @property
    def feeds_dir(self) -> Path:
        return self.base / "feeds"

    def feed_dir(self, level: PiiLevel) -> Path:
        """``feeds/{level}/``: the schemas of the copies relayed at one personal-data level."""
        return self.feeds_dir / PiiLevel(level).value

    def feed_schema_path(self, model: type[Event], level: PiiLevel) -> Path:
        return self.feed_dir(level) / file_name(model)

    def command_schema_path(self, command: CommandSpec) -> Path:
        return self.commands_dir / command.file_name

    def schema_path(self, model: type[Event]) -> Path:
        return self.events_dir / file_name(model)

    def example_path(self, model: type[Event]) -> Path:
        return self.examples_dir / file_name(model)


def file_name(model: type[Event]) -> str:
    event_type, schema_version = event_key(model)
    return f"{event_type}.v{schema_version}.json"


def render(document: Any) -> str:
    """The canonical text of a generated file."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# documents ------------------------------------------------------------------------------


def event_schema(model: type[Event]) -> dict[str, Any]:
    """The JSON Schema of one event version, self-contained."""
    schema = model.model_json_schema(mode="validation", ref_template=REF_TEMPLATE)
    event_type, schema_version = event_key(model)
    required = list(schema.get("required", []))
    schema["required"] = [*[f for f in ROUTING_FIELDS if f not in required], *required]
    schema["$schema"] = SCHEMA_DIALECT
    schema["description"] = (
        f"{event_type} v{schema_version}, produced by the {model.PRODUCER} service on "
        f"{subject_for(model, PRODUCTION)}. Generated from the pydantic model; do not edit. "
        "This is what a producer sends. A consumer of this version ignores properties it does not know "
        f"(at any depth) and accepts any string where an enum is marked {OPEN_ENUM_KEYWORD}."
    )
    return schema


def event_example(model: type[Event]) -> dict[str, Any]:
    """The example of one event version, as ``model_dump(mode="json")`` puts it on the wire."""
    event_type, _ = event_key(model)
    example = EXAMPLES[event_type]()
    if not isinstance(example, model):
        raise TypeError(f"EXAMPLES[{event_type!r}] built a {type(example).__name__}, not a {model.__name__}")
    return example.model_dump(mode="json")


def _package_version() -> str:
    try:
        return version("puskesos-shared")
    except PackageNotFoundError:  # pragma: no cover - running from a bare source tree
        return "0.0.0"


def command_schema(command: CommandSpec, topology: Topology = PRODUCTION) -> dict[str, Any]:
    """The JSON Schema of one command's request body, self-contained (validation mode)."""
    schema = command.request.model_json_schema(mode="validation", ref_template=REF_TEMPLATE)
    schema["$schema"] = SCHEMA_DIALECT
    own = schema.get("description")
    token = (" It carries the officer's token (a JWT) in `token`." if command.officer_token else
             " It carries no officer token: the NATS account permissions decide who may send it.")
    schema["description"] = (
        f"Request of the {command.name} command of the {command.service} service, sent (NATS request-reply) "
        f"to {command.subject(topology)}. {command.summary}{token} Generated from the pydantic model "
        f"{command.request.__name__}; do not edit."
        + (f" {own}" if own else "")
    )
    return schema


def reply_schema() -> dict[str, Any]:
    """The reply envelope of every command (``puskesos_shared.commands.CommandReply``)."""
    codes = sorted(PROBLEMS)
    error = {
        "type": "object",
        "title": "CommandErrorBody",
        "additionalProperties": False,
        "required": ["code", "message", "fields"],
        "properties": {
            "code": {
                "type": "string", "enum": codes, OPEN_ENUM_KEYWORD: True,
                "description": "Stable error code (the registry of puskesos_shared.problems, the same codes as "
                               "the HTTP problem details). A later release may add codes: treat an unknown one "
                               "as a refusal.",
            },
            "message": {"type": "string", "description": "For people; never echoes an input value"},
            "fields": {
                "type": "array",
                "description": "The fields at fault (empty when the error is not about one field)",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["loc", "msg", "type"],
                    "properties": {
                        "loc": {"type": "array", "items": {"type": ["string", "integer"]},
                                "description": "Keys and indexes down to the field, as in pydantic"},
                        "msg": {"type": "string"},
                        "type": {"type": "string", "description": "The kind of problem (pydantic's error type "
                                 "or the error code)"},
                    },
                },
            },
        },
    }
    return {
        "$schema": SCHEMA_DIALECT,
        "title": REPLY_MESSAGE,
        "description": (
            "The reply to every Puskesos command: {\"ok\": true, \"result\": {...}} or {\"ok\": false, "
            "\"error\": {\"code\", \"message\", \"fields\": [{\"loc\", \"msg\", \"type\"}]}}; the other member "
            "is null. The result's shape is the command's own. Generated; do not edit."
        ),
        "type": "object",
        "required": ["ok"],
        "oneOf": [
            {
                "title": "CommandSucceeded",
                "type": "object",
                "additionalProperties": False,
                "required": ["ok", "result"],
                "properties": {"ok": {"const": True}, "result": {"type": "object"}, "error": {"type": "null"}},
            },
            {
                "title": "CommandFailed",
                "type": "object",
                "additionalProperties": False,
                "required": ["ok", "error"],
                "properties": {"ok": {"const": False}, "result": {"type": "null"}, "error": {"$ref": "#/$defs/Error"}},
            },
        ],
        "$defs": {"Error": error},
    }


def _payload(ref: str) -> dict[str, Any]:
    return {"schemaFormat": ASYNCAPI_SCHEMA_FORMAT, "schema": {"$ref": ref}}


def _dead_letter_headers() -> dict[str, Any]:
    def text(description: str) -> dict[str, Any]:
        return {"type": "string", "description": description}

    return {
        "type": "object",
        "required": [h.MSG_ID, h.DLQ_REASON, h.DLQ_ORIGINAL_SUBJECT, h.DLQ_ORIGINAL_STREAM, h.DLQ_ORIGINAL_SEQUENCE,
                     h.DLQ_CONSUMER, h.DLQ_DELIVERIES, h.DLQ_FAILED_AT],
        "properties": {
            h.MSG_ID: text("dlq:{consumer}:{original stream}:{original sequence}: a message dead-lettered twice "
                           "is stored once"),
            h.DLQ_REASON: text(f"Why no retry can help; one line, at most {h.MAX_REASON_CHARS} characters"),
            h.DLQ_ORIGINAL_SUBJECT: text("The subject the message was published on"),
            h.DLQ_ORIGINAL_STREAM: text("The stream it was read from"),
            h.DLQ_ORIGINAL_SEQUENCE: text("Its sequence number in that stream (decimal)"),
            h.DLQ_CONSUMER: text("The durable consumer that gave up"),
            h.DLQ_DELIVERIES: text("How many times it was delivered (decimal)"),
            h.DLQ_FAILED_AT: text("When it was dead-lettered (ISO 8601, UTC)"),
            "Puskesos-Dlq-Original-Msg-Id": text("The original Nats-Msg-Id, when it had one"),
            h.EVENT_TYPE: text("Kept from the original message (every header except Nats-*)"),
            h.SCHEMA_VERSION: text("Kept from the original message"),
            h.CORRELATION_ID: text("Kept from the original message"),
            h.CAUSATION_ID: text("Kept from the original message"),
        },
    }


def asyncapi_document(
    models: Iterable[type[Event]] = EVENT_TYPES, topology: Topology = PRODUCTION,
    commands: Sequence[CommandSpec] = (),
) -> dict[str, Any]:
    """AsyncAPI 3.0: a channel per event subject (``send`` per producer) and per command subject
    (``receive`` with a reply by the owning service), the dead-letter subjects, servers and security."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for model in models:
        event_type, schema_version = event_key(model)
        key = f"{event_type}.v{schema_version}"
        subject = subject_for(model, topology)
        messages[key] = {
            "name": event_type,
            "title": f"{event_type} v{schema_version}",
            "contentType": "application/json",
            "payload": _payload(f"./events/{file_name(model)}"),
            "examples": [{"name": f"{event_type}-example", "payload": event_example(model)}],
            "tags": [{"name": model.PRODUCER}],
        }
        channels[key] = {
            "address": subject,
            "title": f"{event_type} v{schema_version}",
            "description": (
                f"{event_type} v{schema_version} events, published by the {model.PRODUCER} service; "
                f"stored in the {topology.events_stream} stream."
            ),
            "messages": {event_type: {"$ref": f"#/components/messages/{key}"}},
        }
        operations[f"{model.PRODUCER}.send.{key}"] = {
            "action": "send",
            "title": f"{model.PRODUCER} publishes {event_type} v{schema_version}",
            "channel": {"$ref": f"#/channels/{key}"},
            "messages": [{"$ref": f"#/channels/{key}/messages/{event_type}"}],
            "tags": [{"name": model.PRODUCER}],
        }
    if commands:
        messages[REPLY_MESSAGE] = {
            "name": REPLY_MESSAGE,
            "title": "Command reply",
            "summary": "The reply envelope of every command: ok and result, or an error with a stable code.",
            "contentType": "application/json",
            "payload": _payload(f"./commands/{REPLY_FILE}"),
        }
        channels[REPLY_CHANNEL] = {
            "address": None,
            "title": "Command replies",
            "description": (
                "The requester's inbox: NATS request-reply sends the reply to the reply subject of the request "
                "(by default _INBOX.>, chosen by the requester's client)."
            ),
            "messages": {REPLY_MESSAGE: {"$ref": f"#/components/messages/{REPLY_MESSAGE}"}},
        }
    for command in sorted(commands, key=lambda c: c.key):
        key = f"command.{command.key}"
        subject = command.subject(topology)
        message_name = f"{command.service}.{command.name}" + (f".by_{command.parameter}" if command.parameter else "")
        messages[key] = {
            "name": message_name,
            "title": f"{command.name} request (v{command.version})",
            "summary": command.summary,
            "contentType": "application/json",
            "payload": _payload(f"./commands/{command.file_name}"),
            "tags": [{"name": command.service}, {"name": "command"}],
        }
        channels[key] = {
            "address": subject,
            "title": f"{command.service} command {command.name} v{command.version}",
            "description": (
                f"{command.summary} Core NATS request-reply (not stored in a stream): served by the "
                f"{command.service} service in the queue group {command.service}-commands; the reply is a "
                f"{REPLY_MESSAGE}. Requests larger than 256 KiB are refused (payload_too_large); an invalid "
                "one never reaches the service (invalid_request, with the fields at fault)."
            ),
            "messages": {message_name: {"$ref": f"#/components/messages/{key}"}},
        }
        if command.parameter:
            channels[key]["parameters"] = {command.parameter: {"description": command.parameter_description}}
        operation: dict[str, Any] = {
            "action": "receive",
            "title": f"{command.service} serves {command.name}",
            "summary": command.summary,
            "channel": {"$ref": f"#/channels/{key}"},
            "messages": [{"$ref": f"#/channels/{key}/messages/{message_name}"}],
            "reply": {
                "channel": {"$ref": f"#/channels/{REPLY_CHANNEL}"},
                "messages": [{"$ref": f"#/channels/{REPLY_CHANNEL}/messages/{REPLY_MESSAGE}"}],
            },
            "tags": [{"name": command.service}, {"name": "command"}],
        }
        if command.officer_token:
            operation["security"] = [{"$ref": f"#/components/securitySchemes/{OFFICER_SECURITY}"}]
        operations[command.operation_id] = operation
    messages["DeadLetter"] = {
        "name": "DeadLetter",
        "title": "Dead letter",
        "summary": "A message no retry can help, copied byte for byte, with why in the headers.",
        "contentType": "application/octet-stream",
        "headers": _dead_letter_headers(),
        "payload": {
            "description": "The original message body, byte for byte (usually one event's JSON, but whatever "
                           "arrived: it may not be JSON at all)",
        },
    }
    channels[DEAD_LETTER_CHANNEL] = {
        "address": f"{topology.namespace}.dlq.{{service}}.{{consumer}}",
        "title": "Dead letters",
        "description": (
            f"Stored in the {topology.dead_letter_stream} stream. A service's consumer that cannot process a "
            "message (a contract violation, an unknown event version, retries exhausted) copies it here with "
            "the original subject, stream, sequence, consumer, delivery count and reason in headers, then "
            "acknowledges the original. Each service may publish only under its own service token."
        ),
        "parameters": {
            "service": {"description": "The service whose consumer gave up (intake, referral, distribution, "
                                       "notification, audit)"},
            "consumer": {"description": "The durable consumer's name (lower-case letters, digits, '_' or '-')"},
        },
        "messages": {"DeadLetter": {"$ref": "#/components/messages/DeadLetter"}},
    }
    operations["services.send.deadLetter"] = {
        "action": "send",
        "title": "A service dead-letters a message",
        "channel": {"$ref": f"#/channels/{DEAD_LETTER_CHANNEL}"},
        "messages": [{"$ref": f"#/channels/{DEAD_LETTER_CHANNEL}/messages/DeadLetter"}],
    }
    security_schemes = {
        NATS_SECURITY: {
            "type": "userPassword",
            "description": (
                "Every connection logs in with a NATS user and password (deploy/nats/accounts.conf, passwords "
                "from the environment). The user's permissions decide which subjects it may publish and "
                "subscribe to: a service publishes its own events and dead letters and serves its own "
                "commands; an outside system gets a user of its own with exactly the subjects it needs."
            ),
        },
        OFFICER_SECURITY: {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": (
                f"An officer's token: a JWT signed with {ALGORITHM} and the secret the services share "
                f"(PUSKESOS_AUTH_SECRET), issuer {ISSUER!r}, claims sub (officer id), role, scope (village, "
                "kecamatan or regency codes), iat and exp. Over NATS it travels in the command body's "
                "`token` field (over the services' HTTP APIs, as Authorization: Bearer). A missing, "
                "malformed, tampered or expired token is refused (unauthenticated, invalid_token, "
                "token_expired); a role or scope that does not allow the command too (forbidden, outside_scope)."
            ),
        },
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Puskesos domain events and commands",
            "version": _package_version(),
            "description": (
                "Events exchanged by the Puskesos services (intake, referral, distribution, notification; "
                "audit consumes them all) over NATS JetStream, the request-reply commands the services "
                "serve, and the dead-letter subjects. Every event is a JSON object with the "
                "envelope event_id, event_type, schema_version, occurred_at, producer, correlation_id, "
                "causation_id, actor and village_code, plus its data. Subjects are versioned: a breaking "
                "change is a new version with a new subject. Payload schemas are what a producer sends; a "
                "consumer ignores properties it does not know and accepts unknown values of enums marked "
                f"{OPEN_ENUM_KEYWORD}. Addresses are those of the production namespace {topology.namespace!r} "
                "(the server's namespace variable): another namespace replaces the first token. "
                "Generated by `puskesos contracts generate`."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "production": {
                "host": "{host}:{port}",
                "protocol": "nats",
                "title": "Production NATS cluster",
                "description": (
                    f"NATS with JetStream. Subjects begin with the namespace ({topology.namespace!r} in production; "
                    f"every subject in this document is shown with it); events land in the "
                    f"{topology.events_stream} stream and dead letters in {topology.dead_letter_stream}."
                ),
                "variables": {
                    "host": {"description": "The cluster's host name (given to each team with its user)",
                             "default": "nats.example.invalid"},
                    "port": {"description": "The client port", "default": "4222"},
                    "namespace": {
                        "description": "The first token of every subject and the prefix of the stream names "
                                       f"({topology.events_stream}, {topology.dead_letter_stream}); every address "
                                       "in this document is shown with the production value",
                        "default": topology.namespace,
                    },
                },
                "security": [{"$ref": f"#/components/securitySchemes/{NATS_SECURITY}"}],
                "bindings": {"nats": {"bindingVersion": "0.1.0"}},
            },
            "local": {
                "host": "127.0.0.1:4222",
                "protocol": "nats",
                "description": f"NATS with JetStream; events land in the {topology.events_stream} stream.",
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "securitySchemes": security_schemes},
    }


def _md(text: str) -> str:
    """One table cell or line: no newlines, no unescaped pipes."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for token in ref.removeprefix("#/").split("/"):
        node = node[token.replace("~1", "/").replace("~0", "~")]
    return node


def _schema_link(message: dict[str, Any]) -> str:
    ref = message.get("payload", {}).get("schema", {}).get("$ref")
    if isinstance(ref, str):
        path = ref.removeprefix("./")
        return f"[`{path}`]({path})"
    return f"inline ({message.get('contentType', 'application/json')}; see below)"


def asyncapi_markdown(document: dict[str, Any]) -> str:
    """The AsyncAPI document for people: servers, security, every channel with its operations and messages."""
    info = document["info"]
    lines = [
        f"# {info['title']} (AsyncAPI {document['asyncapi']})",
        "",
        "Generated from `asyncapi.json` by `puskesos contracts generate`; do not edit. "
        f"Version {info['version']}.",
        "",
        _md(info["description"]),
        "",
        "## Servers",
        "",
        "| server | host | protocol | security | description |",
        "|---|---|---|---|---|",
    ]
    for name, server in sorted(document["servers"].items()):
        security = ", ".join(ref["$ref"].rsplit("/", 1)[-1] for ref in server.get("security", [])) or "none"
        lines.append(f"| {name} | `{server['host']}` | {server['protocol']} | {security} | "
                     f"{_md(server.get('description', ''))} |")
        for var, spec in sorted(server.get("variables", {}).items()):
            lines.append(f"|  | `{{{var}}}` |  |  | {_md(spec.get('description', ''))} "
                         f"(default `{spec.get('default', '')}`) |")
    lines += ["", "## Security", "", "| scheme | type | description |", "|---|---|---|"]
    for name, scheme in sorted(document["components"].get("securitySchemes", {}).items()):
        kind = scheme["type"] + (f" ({scheme['scheme']}, {scheme['bearerFormat']})" if "bearerFormat" in scheme else "")
        lines.append(f"| {name} | {kind} | {_md(scheme.get('description', ''))} |")
    by_channel: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for op_id, op in document["operations"].items():
        by_channel.setdefault(op["channel"]["$ref"].rsplit("/", 1)[-1], []).append((op_id, op))
    lines += ["", "## Channels", ""]
    for key, channel in sorted(document["channels"].items(), key=lambda kv: (kv[1]["address"] or "", kv[0])):
        address = channel["address"]
        lines += [f"### {channel.get('title', key)}", "",
                  f"- address: `{address}`" if address else "- address: the requester's reply subject (dynamic)",
                  f"- channel id: `{key}`"]
        for param, spec in sorted(channel.get("parameters", {}).items()):
            lines.append(f"- parameter `{{{param}}}`: {_md(spec.get('description', ''))}")
        lines += ["", _md(channel.get("description", "")), "", "| message | content type | payload |",
                  "|---|---|---|"]
        for name, ref in sorted(channel["messages"].items()):
            message = _resolve(document, ref["$ref"])
            lines.append(f"| {name} | {message.get('contentType', document['defaultContentType'])} | "
                         f"{_schema_link(message)} |")
        for name, ref in sorted(channel["messages"].items()):
            message = _resolve(document, ref["$ref"])
            if "headers" in message:
                headers = message["headers"]
                lines += ["", f"Headers of {name} (required: {', '.join(headers.get('required', []))}):", ""]
                lines += [f"- `{header}`: {_md(spec.get('description', ''))}"
                          for header, spec in sorted(headers["properties"].items())]
                lines += ["", f"Body of {name}: {_md(message['payload'].get('description', ''))}"]
        operations = sorted(by_channel.get(key, []))
        if operations:
            lines += ["", "| operation | action | title | reply | security |", "|---|---|---|---|---|"]
            for op_id, op in operations:
                reply = "-"
                if "reply" in op:
                    reply = ", ".join(_schema_link(_resolve(document, _resolve(document, m["$ref"])["$ref"]))
                                      for m in op["reply"]["messages"])
                security = ", ".join(r["$ref"].rsplit("/", 1)[-1] for r in op.get("security", [])) or "-"
                lines.append(f"| `{op_id}` | {op['action']} | {_md(op.get('title', ''))} | {reply} | {security} |")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def expected_files(root: Path, commands: Sequence[CommandSpec] = ()) -> dict[Path, str]:
    """Every generated file and its exact text (``commands``: the catalog of the composition root)."""
    layout = SchemaLayout(root)
    files: dict[Path, str] = {}
    for model in EVENT_TYPES:
        files[layout.schema_path(model)] = render(event_schema(model))
        files[layout.example_path(model)] = render(event_example(model))
        for level in FEED_LEVELS:
            files[layout.feed_schema_path(model, level)] = render(derived_schema(model, level))
    if commands:
        for command in commands:
            files[layout.command_schema_path(command)] = render(command_schema(command))
        files[layout.reply_schema] = render(reply_schema())
    document = asyncapi_document(commands=commands)
    files[layout.asyncapi] = render(document)
    files[layout.asyncapi_markdown] = asyncapi_markdown(document)
    return files


def stray_files(root: Path, commands: Sequence[CommandSpec] = ()) -> list[Path]:
    """JSON files under events/, examples/, feeds/ and commands/ that no current event version or command
    generates."""
    layout = SchemaLayout(root)
    wanted = {file_name(m) for m in EVENT_TYPES}
    wanted_commands = {c.file_name for c in commands} | ({REPLY_FILE} if commands else set())
    return sorted(
        [p for d in (layout.events_dir, layout.examples_dir) if d.is_dir()
         for p in d.glob("*.json") if p.name not in wanted]
        + [p for p in layout.feeds_dir.glob("**/*.json")
           if p.parent.name not in {level.value for level in FEED_LEVELS} or p.name not in wanted]
        + [p for p in layout.commands_dir.glob("*.json") if p.name not in wanted_commands]
    )


# operations -----------------------------------------------------------------------------


def generate(root: Path, commands: Sequence[CommandSpec] = ()) -> list[Path]:
    """Writes every generated file under ``root``; returns the ones created or changed."""
    changed: list[Path] = []
    for path, text in expected_files(root, commands).items():
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="\n")
        changed.append(path)
    return changed


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:  # pragma: no cover - defensive
        return path.as_posix()


def check_fresh(root: Path, commands: Sequence[CommandSpec] = ()) -> list[str]:
    """Differences between what ``generate`` would write and what is checked in (empty when fresh)."""
    problems: list[str] = []
    for path, text in expected_files(root, commands).items():
        if not path.is_file():
            problems.append(f"missing: {_rel(path, root)}")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"stale: {_rel(path, root)}")
    problems.extend(f"stray (no event model or command generates it): {_rel(p, root)}"
                    for p in stray_files(root, commands))
    return problems


def incompatibilities_with_published(root: Path) -> list[str]:
    """Incompatible changes of the current models against the checked-in (published) schemas.

    An event version without a checked-in schema is new, so nothing is published yet; a
    checked-in schema without a model is reported by ``check_fresh`` as stray. The feed schemas
    (``feeds/{level}/``) are published to external subscribers and compared the same way: marking a
    property ``x-pii`` later removes it from a feed, which breaks that feed's readers.
    """
    layout = SchemaLayout(root)
    problems: list[str] = []
    for model in EVENT_TYPES:
        path = layout.schema_path(model)
        if path.is_file():
            published = json.loads(path.read_text(encoding="utf-8"))
            found = incompatibilities(published, event_schema(model))
            problems.extend(f"{file_name(model)}: {message}" for message in found)
        for level in FEED_LEVELS:
            feed = layout.feed_schema_path(model, level)
            if feed.is_file():
                published = json.loads(feed.read_text(encoding="utf-8"))
                found = incompatibilities(published, derived_schema(model, level))
                problems.extend(f"feeds/{level.value}/{file_name(model)}: {message}" for message in found)
    return problems
