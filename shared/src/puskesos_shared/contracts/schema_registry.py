"""Generated contract artefacts: a JSON Schema and an example per event, and the AsyncAPI document.

Everything lands under ``shared/schemas/`` of the repository::

    events/{EventType}.v{N}.json     JSON Schema (draft 2020-12), self-contained ($defs inside)
    examples/{EventType}.v{N}.json   the example from ``examples.EXAMPLES``, as sent on the wire
    commands/{service}.{name}.v{N}.json  JSON Schema of one command's request (validation mode)
    commands/CommandReply.v1.json    the reply envelope every command answers with
    feeds/{level}/{EventType}.v{N}.json  JSON Schema of the copy relayed to an external subscriber whose
                                     account says --pii {level} (pseudonymous, none): ``pseudonymous.derived_schema``
    asyncapi.json                    AsyncAPI 3.0: events (a send per producer), commands (a receive with
                                     a reply per command), the dead-letter subjects, what an external
                                     subscriber receives (a feed channel per event with a message per
                                     personal-data level, the signed CloudEvents webhook), servers, security
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
from ..subscribers import SIGNATURE_HEADER, SIGNATURE_TOLERANCE_SECONDS, sign
from ..topology import FEED_MAX_AGE_SECONDS, Topology
from .compat import incompatibilities
from .envelope import OPEN_ENUM_KEYWORD, Event
from .examples import EXAMPLES
from .primitives import PiiMark
from .pseudonymous import FEED_LEVELS, REDACTED, PiiLevel, Pseudonymiser, derived_schema, feed_schema_id, pii_paths
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
SUBSCRIBER_SECURITY = "subscriberUserPassword"
#: The feed channel of an event version is ``feed.{EventType}.v{N}``; its messages are named by level.
FEED_CHANNEL_PREFIX = "feed."
#: The channel extension listing the x-pii paths of a feed channel's event (what each level removes).
PII_PATHS_EXTENSION = "x-puskesos-pii-paths"
WEBHOOK_SERVER = "subscriberWebhook"
WEBHOOK_CHANNEL = "webhookDeliveries"
WEBHOOK_MESSAGE = "WebhookDelivery"
WEBHOOK_CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
#: The NATS servers every channel but the webhook is on.
NATS_SERVERS = ("production", "local")
#: Headers of a relayed copy in a subscriber's feed (``puskesos_notification.feeds.nats_sink.feed_headers``).
FEED_HEADERS = ("Nats-Msg-Id", "Puskesos-Event-Id", "Puskesos-Source-Seq", "Puskesos-Feed-Generation",
                "Puskesos-Pii", "Content-Type")
#: The examples of the feed and webhook messages: a made-up subscriber, pseudonym key and signing secret.
EXAMPLE_SUBSCRIBER = "rsud-soebandi"
EXAMPLE_PSEUDONYM_KEY = b"asyncapi-example-pseudonym-key-not-a-real-one"
EXAMPLE_WEBHOOK_SECRET = b"asyncapi-example-signing-secret"
EXAMPLE_TIMESTAMP = 1767225600  # 2026-01-01T00:00:00Z
EXAMPLE_SEQUENCE = 1042


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


# external subscribers -------------------------------------------------------------------


def _feed_headers(level: PiiLevel, topology: Topology) -> dict[str, Any]:
    """The headers of a relayed copy in a subscriber's feed (``nats_sink.feed_headers``)."""
    return {
        "type": "object",
        "required": list(FEED_HEADERS),
        "properties": {
            "Nats-Msg-Id": {
                "type": "string",
                "description": "<subscriber>:<feed generation>:<source sequence>: a copy the relay publishes twice "
                               "(after a crash) is stored once; a replay (a new generation) stores the events again",
            },
            "Puskesos-Event-Id": {
                "type": "string", "format": "uuid",
                "description": "The event's event_id, the same in every generation and every repeat: recognise a "
                               "repeat by it",
            },
            "Puskesos-Source-Seq": {
                "type": "string", "pattern": "^[1-9][0-9]*$",
                "description": f"The original's sequence in the {topology.events_stream} stream (decimal); "
                               "ascending within a feed generation",
            },
            "Puskesos-Feed-Generation": {
                "type": "string", "pattern": "^[1-9][0-9]*$",
                "description": "The feed's generation (decimal): 1, then one more after each replay of the feed "
                               "(the notification service's feed_replay command)",
            },
            "Puskesos-Pii": {
                "type": "string", "const": level.value,
                "description": "The account's personal-data level this copy was made for (full, pseudonymous, none)",
            },
            "Content-Type": {"type": "string", "const": "application/json", "description": "The body is the "
                             "event's JSON (UTF-8)"},
        },
    }


def _feed_example(model: type[Event], level: PiiLevel) -> dict[str, Any]:
    """The example of the event as relayed at ``level`` (pseudonyms made with a documentation key)."""
    example = event_example(model)
    if level is PiiLevel.FULL:
        return example
    relayed = Pseudonymiser(EXAMPLE_PSEUDONYM_KEY, level).transform(render(example).encode())
    if relayed is None:  # pragma: no cover - every example matches its schema (test_contract_registry)
        raise ValueError(f"the example of {file_name(model)} cannot be relayed at {level.value}")
    out: dict[str, Any] = json.loads(relayed)
    return out


def _pii_effect(mark: str, level: PiiLevel) -> str:
    """What a feed at ``level`` does with a value marked ``mark``."""
    if mark == PiiMark.PSEUDONYM.value or level is PiiLevel.FULL:
        return "kept"
    if mark == PiiMark.IDENTIFIER.value and level is PiiLevel.PSEUDONYMOUS:
        return "pseudonymised"
    return "removed"


_LEVEL_SUMMARY = {
    PiiLevel.FULL: "the stored event, unchanged",
    PiiLevel.PSEUDONYMOUS: "every identifier (x-pii identifier: NIK, KK number, phone number, ...) replaced by a "
                           "keyed pseudonym of this subscriber; personal data (x-pii personal) removed",
    PiiLevel.NONE: "identifiers and personal data removed",
}
ALL_LEVELS = (PiiLevel.FULL, *FEED_LEVELS)


def _feed_parts(model: type[Event], topology: Topology) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The feed channel of one event version, its subscribers' receive operation and its messages (by level)."""
    event_type, schema_version = event_key(model)
    key = f"{event_type}.v{schema_version}"
    channel_id = f"{FEED_CHANNEL_PREFIX}{key}"
    tail = subject_for(model, topology).removeprefix(f"{topology.namespace}.events.")
    messages: dict[str, Any] = {}
    for level in ALL_LEVELS:
        ref = f"./events/{file_name(model)}" if level is PiiLevel.FULL else f"./feeds/{level.value}/{file_name(model)}"
        example = _feed_example(model, level)
        headers = {"Nats-Msg-Id": f"{EXAMPLE_SUBSCRIBER}:1:{EXAMPLE_SEQUENCE}",
                   "Puskesos-Event-Id": example["event_id"], "Puskesos-Source-Seq": str(EXAMPLE_SEQUENCE),
                   "Puskesos-Feed-Generation": "1", "Puskesos-Pii": level.value, "Content-Type": "application/json"}
        messages[f"{channel_id}.{level.value}"] = {
            "name": f"{event_type}.{level.value}",
            "title": f"{event_type} v{schema_version}, {level.value} copy",
            "summary": f"{event_type} v{schema_version} for an account with --pii {level.value}: "
                       f"{_LEVEL_SUMMARY[level]}.",
            "contentType": "application/json",
            "headers": _feed_headers(level, topology),
            "payload": _payload(ref),
            "examples": [{"name": f"{event_type}-{level.value}-example", "headers": headers, "payload": example}],
            "tags": [{"name": "subscriber"}, {"name": model.PRODUCER}],
        }
    paths = [{"path": p.path, "mark": p.mark.value, **({"kind": p.kind} if p.kind else {})} for p in pii_paths(model)]
    channel = {
        "address": f"{topology.namespace}.feed.{{subscriber}}.{tail}",
        "title": f"{event_type} v{schema_version}, an external subscriber's feed",
        "description": (
            f"Copies of {event_type} v{schema_version} relayed by the notification service to one external "
            f"subscriber granted them, in the {topology.feeds_stream} stream (the subscriber's subjects "
            f"{topology.namespace}.feed.{{subscriber}}.>). Each copy is made for the account's personal-data level "
            "(--pii, UU No. 27/2022), which the Puskesos-Pii header names: full is the stored event (the event's own "
            f"schema), pseudonymous and none follow feeds/{{level}}/{file_name(model)} (the {PII_PATHS_EXTENSION} "
            "extension lists the marked fields). Copies come in the order of the events stream, at least once: "
            "recognise a repeat by event_id (the Puskesos-Event-Id header)."
        ),
        "parameters": {"subscriber": {
            "description": "The subscriber's name: its NATS user and its durable consumer (2-40 lower-case "
                           "letters, digits and '-')",
            "examples": [EXAMPLE_SUBSCRIBER],
        }},
        "messages": {level.value: {"$ref": f"#/components/messages/{channel_id}.{level.value}"}
                     for level in ALL_LEVELS},
        PII_PATHS_EXTENSION: paths,
    }
    operation = {
        "action": "receive",
        "title": f"An external subscriber reads {event_type} v{schema_version}",
        "summary": f"Through its one durable consumer on {topology.feeds_stream}, named as the subscriber.",
        "channel": {"$ref": f"#/channels/{channel_id}"},
        "messages": [{"$ref": f"#/channels/{channel_id}/messages/{level.value}"} for level in ALL_LEVELS],
        "security": [{"$ref": f"#/components/securitySchemes/{SUBSCRIBER_SECURITY}"}],
        "tags": [{"name": "subscriber"}],
    }
    return {channel_id: channel}, {f"subscribers.receive.{channel_id}": operation}, messages


def _subscriber_security(topology: Topology) -> dict[str, Any]:
    return {
        "type": "userPassword",
        "description": (
            "An external subscriber that reads a NATS feed logs in with a NATS user of its own, named as the "
            "subscriber, and a password (both given to its operator with `puskesos subscribers add`). It may "
            f"create, inspect, read from and delete exactly one durable pull consumer on the {topology.feeds_stream} "
            "stream, named as the subscriber, whose filter lies inside its own feed "
            f"({topology.namespace}.feed.<name>.>), and acknowledge what it read. Replies (pull fetches) come on "
            "its private inbox prefix _INBOX_<name> (set the client's inbox prefix to it; the default _INBOX is "
            "refused). It publishes nothing else: no event, no command; a referral target may in addition answer "
            f"the referrals issued to it on {topology.command_subject('referral', 'respond_referral')}.<target>."
        ),
    }


def _cloud_event_schema() -> dict[str, Any]:
    levels = "|".join(level.value for level in ALL_LEVELS)
    return {
        "type": "object",
        "title": "PuskesosCloudEvent",
        "description": "A CloudEvents 1.0 event in structured mode (JSON): the attributes and the event in data.",
        "additionalProperties": False,
        "required": ["specversion", "id", "source", "type", "time", "datacontenttype", "dataschema",
                     "puskesossequence", "data"],
        "properties": {
            "specversion": {"type": "string", "const": "1.0"},
            "id": {"type": "string", "description": "The event's event_id: the same in every repeat (a retry, a "
                                                    "replay, a redrive); a receiver that has seen it ignores it"},
            "source": {"type": "string", "pattern": "^urn:puskesos:[a-z][a-z0-9_]*:[a-z][a-z0-9_]*$",
                       "description": "urn:puskesos:<namespace>:<producing service>"},
            "type": {"type": "string", "pattern": "^id\\.puskesos\\.[a-z][a-z0-9_]*\\.[a-z][a-z0-9_]*\\.v[0-9]+$",
                     "description": "id.puskesos.<producer>.<event>.v<n>: the event's subject without the "
                                    "namespace (intake.complaint_filed.v1 is id.puskesos.intake.complaint_filed.v1)"},
            "time": {"type": "string", "format": "date-time", "description": "When it happened (occurred_at)"},
            "datacontenttype": {"type": "string", "const": "application/json"},
            "dataschema": {
                "type": "string", "pattern": f"^urn:puskesos:schema:feeds:({levels}):[A-Za-z0-9]+\\.v[0-9]+$",
                "description": "urn:puskesos:schema:feeds:<level>:<EventType>.v<n>: the $id of "
                               "feeds/<level>/<EventType>.v<n>.json (pseudonymous, none); for full, the event's own "
                               "schema events/<EventType>.v<n>.json",
            },
            "puskesossequence": {"type": "integer", "minimum": 1,
                                 "description": "The event's sequence in the events stream: ascending, with gaps "
                                                "(events the subscriber is not granted)"},
            "data": {"type": "object",
                     "description": "The event as made safe for the account (the same JSON a NATS feed carries)"},
        },
    }


def _webhook_parts(models: Sequence[type[Event]], topology: Topology) -> tuple[dict[str, Any], dict[str, Any],
                                                                                    dict[str, Any], dict[str, Any]]:
    """The webhook server, channel, operation and message: the notification service POSTs CloudEvents."""
    model = next((m for m in models if event_key(m)[0] == "ComplaintFiled"), models[0])
    event_type, schema_version = event_key(model)
    level = PiiLevel.PSEUDONYMOUS
    data = _feed_example(model, level)
    payload = {
        "specversion": "1.0", "id": data["event_id"], "source": f"urn:puskesos:{topology.namespace}:{model.PRODUCER}",
        "type": f"id.puskesos.{subject_for(model, topology).removeprefix(f'{topology.namespace}.events.')}",
        "time": data["occurred_at"], "datacontenttype": "application/json",
        "dataschema": feed_schema_id(model, level), "puskesossequence": EXAMPLE_SEQUENCE, "data": data,
    }
    signature = sign(EXAMPLE_WEBHOOK_SECRET, _compact(payload), EXAMPLE_TIMESTAMP)
    server = {
        "host": "{webhookHost}",
        "pathname": "{webhookPath}",
        "protocol": "https",
        "title": "A webhook subscriber's endpoint",
        "description": (
            "The HTTPS URL a webhook subscriber registered (`puskesos subscribers add --webhook-url`); the "
            "notification service is the client. Plain http only to localhost."
        ),
        "variables": {
            "webhookHost": {"description": "The subscriber's host (and port)", "default": "subscriber.example.invalid"},
            "webhookPath": {"description": "The path of its URL", "default": "/puskesos/events"},
        },
    }
    channel = {
        "address": None,
        "title": "Webhook deliveries",
        "description": (
            "A webhook subscriber receives each event its account grants as one HTTP POST of a CloudEvents 1.0 "
            f"document in structured mode (Content-Type: {WEBHOOK_CONTENT_TYPE}), with data the event made safe "
            "for its --pii level (full, pseudonymous, none: the same copy a NATS feed carries). Signed: the "
            f"{SIGNATURE_HEADER} header is t=<unix seconds>,v1=<hex HMAC-SHA256(signing secret, '<t>.' + body)>; "
            "the receiver computes the HMAC over the raw body bytes as received (never re-serialised), compares it "
            f"in constant time and refuses a t more than {SIGNATURE_TOLERANCE_SECONDS} seconds from its clock (a "
            "captured request cannot be replayed). In order: the next event is sent only once the previous one "
            "was answered 2xx. At least once: a timeout, a connection error, 408, 425, 429 or 5xx is retried with "
            "exponential backoff for up to 24 hours (each try newly signed); any other 4xx, or running out of "
            "time, dead-letters the event and the feed goes on (an operator may redrive it later). A repeat has "
            "the same id (the event_id): answer it 2xx and ignore it."
        ),
        "messages": {WEBHOOK_MESSAGE: {"$ref": f"#/components/messages/{WEBHOOK_MESSAGE}"}},
        "servers": [{"$ref": f"#/servers/{WEBHOOK_SERVER}"}],
    }
    message = {
        "name": WEBHOOK_MESSAGE,
        "title": "Webhook delivery (CloudEvents 1.0, structured)",
        "summary": "One event, made safe for the subscriber's account, as a signed CloudEvents JSON document.",
        "contentType": WEBHOOK_CONTENT_TYPE,
        "headers": {
            "type": "object",
            "required": [SIGNATURE_HEADER, "Content-Type"],
            "properties": {
                SIGNATURE_HEADER: {
                    "type": "string", "pattern": "^t=[0-9]+,v1=[0-9a-f]{64}$",
                    "description": "t=<unix seconds>,v1=<hex HMAC-SHA256(the subscriber's signing secret, "
                                   "'<t>.' + the raw body)>; refuse it when it does not match or t is more than "
                                   f"{SIGNATURE_TOLERANCE_SECONDS} seconds away",
                },
                "Content-Type": {"type": "string", "const": WEBHOOK_CONTENT_TYPE,
                                 "description": f"{WEBHOOK_CONTENT_TYPE} (CloudEvents structured mode)"},
            },
        },
        "payload": _cloud_event_schema(),
        "examples": [{
            "name": f"{event_type}-{level.value}-webhook-example",
            "summary": f"{event_type} v{schema_version} for a pseudonymous account; the signature is over the "
                       "compact JSON of this payload with sorted keys, with the example secret "
                       f"{EXAMPLE_WEBHOOK_SECRET.decode()!r} at t={EXAMPLE_TIMESTAMP}",
            "headers": {SIGNATURE_HEADER: signature, "Content-Type": WEBHOOK_CONTENT_TYPE},
            "payload": payload,
        }],
        "tags": [{"name": "subscriber"}, {"name": "webhook"}],
    }
    operation = {
        "action": "send",
        "title": "The notification service POSTs an event to a webhook subscriber",
        "channel": {"$ref": f"#/channels/{WEBHOOK_CHANNEL}"},
        "messages": [{"$ref": f"#/channels/{WEBHOOK_CHANNEL}/messages/{WEBHOOK_MESSAGE}"}],
        "bindings": {"http": {"method": "POST", "bindingVersion": "0.3.0"}},
        "tags": [{"name": "subscriber"}, {"name": "webhook"}],
    }
    return ({WEBHOOK_SERVER: server}, {WEBHOOK_CHANNEL: channel}, {"notification.post.webhookDelivery": operation},
            {WEBHOOK_MESSAGE: message})


def _compact(document: Any) -> bytes:
    """Compact JSON with sorted keys (the example webhook body the example signature is over)."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def asyncapi_document(
    models: Iterable[type[Event]] = EVENT_TYPES, topology: Topology = PRODUCTION,
    commands: Sequence[CommandSpec] = (),
) -> dict[str, Any]:
    """AsyncAPI 3.0: a channel per event subject (``send`` per producer) and per command subject
    (``receive`` with a reply by the owning service), the dead-letter subjects, what an external subscriber
    receives (a feed channel per event version with a ``subscriber`` parameter and a message per personal-data
    level, read by a subscriber's ``receive``; the webhook as an https server), servers and security."""
    models = list(models)
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
    for model in models:
        feed_channel, feed_operation, feed_messages = _feed_parts(model, topology)
        channels |= feed_channel
        operations |= feed_operation
        messages |= feed_messages
    for channel in channels.values():
        channel["servers"] = [{"$ref": f"#/servers/{name}"} for name in NATS_SERVERS]
    webhook_server: dict[str, Any] = {}
    if models:
        webhook_server, webhook_channel, webhook_operation, webhook_message = _webhook_parts(models, topology)
        channels |= webhook_channel
        operations |= webhook_operation
        messages |= webhook_message
    security_schemes = {
        SUBSCRIBER_SECURITY: _subscriber_security(topology),
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
                "External subscribers (a hospital, the Dinas Sosial, a bank) never read the events stream: the "
                "notification service relays each event their account grants, made safe for its personal-data "
                f"level (--pii full, pseudonymous or none), into their own feed in {topology.feeds_stream} (the feed "
                "channels, one per event version with a subscriber parameter) or POSTs it to their webhook as a "
                f"signed CloudEvents 1.0 document (the {WEBHOOK_CHANNEL} channel). "
                "Generated by `puskesos contracts generate`."
            ),
            "tags": [
                {"name": "subscriber", "description": (
                    "What an external subscriber receives: its feed (NATS, user/password, one durable consumer "
                    "named as itself, inbox prefix _INBOX_<name>) or its webhook (CloudEvents 1.0 structured JSON, "
                    f"signed with {SIGNATURE_HEADER}); in order, at least once, a repeat recognisable by the "
                    "event id; identifiers pseudonymised or removed and personal data removed as its account says."
                )},
                {"name": "webhook", "description": (
                    f"HTTP POST of application/cloudevents+json; verify {SIGNATURE_HEADER} "
                    "(t=<unix seconds>,v1=<hex HMAC-SHA256(secret, '<t>.' + raw body)>, at most "
                    f"{SIGNATURE_TOLERANCE_SECONDS} s old); answer 2xx once stored; a repeat has the same id."
                )},
            ],
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
            **webhook_server,
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
    lines += ["", "## Channels", "",
              "The feed channels and the webhook, what an external subscriber receives, are described in "
              "[For external subscribers](#for-external-subscribers) below.", ""]
    for key, channel in sorted(document["channels"].items(), key=lambda kv: (kv[1]["address"] or "", kv[0])):
        if _for_subscribers(key):
            continue
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
    lines += _subscriber_markdown(document)
    return "\n".join(lines).rstrip("\n") + "\n"


def _for_subscribers(channel_id: str) -> bool:
    return channel_id.startswith(FEED_CHANNEL_PREFIX) or channel_id == WEBHOOK_CHANNEL


def _subscriber_markdown(document: dict[str, Any]) -> list[str]:
    """The section "For external subscribers": feed subjects, levels and what each removes, the webhook."""
    feeds = sorted((key, channel) for key, channel in document["channels"].items()
                   if key.startswith(FEED_CHANNEL_PREFIX))
    if not feeds:
        return []
    security = document["components"]["securitySchemes"][SUBSCRIBER_SECURITY]
    feed_topology = Topology(namespace=feeds[0][1]["address"].split(".", 1)[0])
    first = _resolve(document, feeds[0][1]["messages"][PiiLevel.PSEUDONYMOUS.value]["$ref"])
    lines = [
        "## For external subscribers", "",
        "An external subscriber (a hospital, the Dinas Sosial, a bank, the Ministry's reporting) never reads the "
        "events stream. The notification service relays each event its account grants, made safe for the "
        "account's personal-data level (`--pii`, UU No. 27/2022), into the subscriber's own feed on NATS or "
        "POSTs it to the subscriber's webhook. Either way: in the order of the events stream, at least once, a "
        "repeat recognisable by the event's `event_id`.", "",
        "### Feed subjects", "",
        f"A NATS subscriber's copies are in the `{feed_topology.feeds_stream}` stream on "
        f"`{feed_topology.namespace}.feed.{{subscriber}}.<producer>.<event>.v<n>` (the event's own subject with "
        f"`{feed_topology.namespace}.events` replaced by `{feed_topology.namespace}.feed.{{subscriber}}`), kept "
        f"{FEED_MAX_AGE_SECONDS // 86400} days. Each copy is made for the account's level, which the `Puskesos-Pii` "
        "header names; the three messages of a feed channel are the three levels' copies.", "",
        f"Connecting ({SUBSCRIBER_SECURITY}): {_md(security['description'])}", "",
        "| event | feed subject | full | pseudonymous | none | operation |", "|---|---|---|---|---|---|",
    ]
    by_channel = {op["channel"]["$ref"].rsplit("/", 1)[-1]: op_id for op_id, op in document["operations"].items()}
    for key, channel in feeds:
        links = [_schema_link(_resolve(document, channel["messages"][level.value]["$ref"])) for level in ALL_LEVELS]
        lines.append(f"| {key.removeprefix(FEED_CHANNEL_PREFIX)} | `{channel['address']}` | {' | '.join(links)} | "
                     f"`{by_channel.get(key, '-')}` |")
    lines += ["", "Headers of every copy in a feed (required: " + ", ".join(first["headers"]["required"]) + "):", ""]
    lines += [f"- `{header}`: {_md(spec.get('description', ''))}"
              + (f" (`{spec['const']}`)" if "const" in spec and header == "Content-Type" else "")
              for header, spec in sorted(first["headers"]["properties"].items())]
    lines += [
        "", "### The three levels", "",
        "| level | identifiers (`x-pii: identifier`) | personal data (`x-pii: personal`) | schema |",
        "|---|---|---|---|",
        "| `full` | kept | kept | `events/{EventType}.v{N}.json` (the stored event, unchanged) |",
        "| `pseudonymous` | replaced by a keyed pseudonym `ps-` + 24 base32 characters (per subscriber) | removed "
        "| `feeds/pseudonymous/{EventType}.v{N}.json` |",
        "| `none` | removed | removed | `feeds/none/{EventType}.v{N}.json` |",
        "",
        "Properties a release does not know are dropped from the pseudonymous and none copies, and a safety net "
        "replaces any run of 16 or more digits and any Indonesian phone number left in any string (by its "
        f"pseudonym, or by `{REDACTED}` for none). The marked fields of each event, and what each level does "
        "with them (`[]` an array item, `*` a map value):", "",
        "| event | field | x-pii | kind | pseudonymous | none |", "|---|---|---|---|---|---|",
    ]
    for key, channel in feeds:
        event = key.removeprefix(FEED_CHANNEL_PREFIX)
        paths = channel.get(PII_PATHS_EXTENSION, [])
        if not paths:
            lines.append(f"| {event} | (none marked: the three copies are alike) | | | | |")
        for entry in paths:
            effects = " | ".join(_pii_effect(entry["mark"], level) for level in FEED_LEVELS)
            lines.append(f"| {event} | `{entry['path']}` | {entry['mark']} | {entry.get('kind', '')} | {effects} |")
    webhook = document["channels"].get(WEBHOOK_CHANNEL)
    if webhook is None:
        return lines
    message = _resolve(document, webhook["messages"][WEBHOOK_MESSAGE]["$ref"])
    example = message["examples"][0]
    lines += ["", "### Webhook", "", _md(webhook["description"]), "",
              "| CloudEvents attribute | required | description |", "|---|---|---|"]
    payload = message["payload"]
    names = [*payload["required"], *sorted(set(payload["properties"]) - set(payload["required"]))]  # spec order
    for name in names:
        spec = payload["properties"][name]
        what = spec.get("description") or (f"`{spec['const']}`" if "const" in spec else "")
        lines.append(f"| `{name}` | {'yes' if name in payload['required'] else 'no'} | {_md(what)} |")
    lines += [
        "", "Headers: " + "; ".join(f"`{header}`: {_md(spec.get('description', spec.get('const', '')))}"
                                      for header, spec in sorted(message["headers"]["properties"].items())), "",
        f"Verifying `{SIGNATURE_HEADER}` (as `puskesos_shared.subscribers.verify` does):", "",
        "```python",
        "import hashlib, hmac, time",
        "",
        "def verify(secret: bytes, body: bytes, header: str) -> bool:  # body: the raw request body",
        "    fields = dict(part.split(\"=\", 1) for part in header.split(\",\"))",
        "    t = int(fields[\"t\"])",
        f"    if abs(time.time() - t) > {SIGNATURE_TOLERANCE_SECONDS}:",
        "        return False",
        "    expected = hmac.new(secret, f\"{t}.\".encode() + body, hashlib.sha256).hexdigest()",
        "    return hmac.compare_digest(expected, fields.get(\"v1\", \"\"))",
        "```", "",
        f"Example ({_md(example.get('summary', ''))}):", "",
        "```http",
        "POST /puskesos/events HTTP/1.1",
        *[f"{header}: {value}" for header, value in sorted(example["headers"].items())],
        "",
        _compact(example["payload"]).decode(),
        "```",
    ]
    return lines


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
