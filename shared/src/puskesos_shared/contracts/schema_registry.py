"""Generated contract artefacts: a JSON Schema and an example per event, and the AsyncAPI document.

Everything lands under ``shared/schemas/`` of the repository::

    events/{EventType}.v{N}.json     JSON Schema (draft 2020-12), self-contained ($defs inside)
    examples/{EventType}.v{N}.json   the example from ``examples.EXAMPLES``, as sent on the wire
    asyncapi.json                    AsyncAPI 3.0: one channel (subject) and one send operation per event

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
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from ..topology import Topology
from .compat import incompatibilities
from .envelope import OPEN_ENUM_KEYWORD, Event
from .examples import EXAMPLES
from .registry import EVENT_TYPES, event_key, subject_for

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
#: The AsyncAPI multi-format schema id of the payload schemas (JSON Schema 2020-12).
ASYNCAPI_SCHEMA_FORMAT = "application/schema+json;version=draft-2020-12"
REF_TEMPLATE = "#/$defs/{model}"
#: Envelope fields a consumer routes on; required on the wire although the models default them.
ROUTING_FIELDS = ("event_type", "schema_version")
PRODUCTION = Topology(namespace="puskesos")


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


def asyncapi_document(
    models: Iterable[type[Event]] = EVENT_TYPES, topology: Topology = PRODUCTION
) -> dict[str, Any]:
    """AsyncAPI 3.0: a channel per event subject, a message per event, a ``send`` per producer."""
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
            "payload": {
                "schemaFormat": ASYNCAPI_SCHEMA_FORMAT,
                "schema": {"$ref": f"./events/{file_name(model)}"},
            },
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
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Puskesos domain events",
            "version": _package_version(),
            "description": (
                "Events exchanged by the Puskesos services (intake, referral, distribution, notification; "
                "audit consumes them all) over NATS JetStream. Every event is a JSON object with the "
                "envelope event_id, event_type, schema_version, occurred_at, producer, correlation_id, "
                "causation_id, actor and village_code, plus its data. Subjects are versioned: a breaking "
                "change is a new version with a new subject. Payload schemas are what a producer sends; a "
                "consumer ignores properties it does not know and accepts unknown values of enums marked "
                f"{OPEN_ENUM_KEYWORD}. Generated by `puskesos contracts generate`."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:4222",
                "protocol": "nats",
                "description": f"NATS with JetStream; events land in the {topology.events_stream} stream.",
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def expected_files(root: Path) -> dict[Path, str]:
    """Every generated file and its exact text."""
    layout = SchemaLayout(root)
    files: dict[Path, str] = {}
    for model in EVENT_TYPES:
        files[layout.schema_path(model)] = render(event_schema(model))
        files[layout.example_path(model)] = render(event_example(model))
    files[layout.asyncapi] = render(asyncapi_document())
    return files


def stray_files(root: Path) -> list[Path]:
    """JSON files under events/ and examples/ that no current event version generates."""
    layout = SchemaLayout(root)
    wanted = {file_name(m) for m in EVENT_TYPES}
    return sorted(
        p for d in (layout.events_dir, layout.examples_dir) if d.is_dir()
        for p in d.glob("*.json") if p.name not in wanted
    )


# operations -----------------------------------------------------------------------------


def generate(root: Path) -> list[Path]:
    """Writes every generated file under ``root``; returns the ones created or changed."""
    changed: list[Path] = []
    for path, text in expected_files(root).items():
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


def check_fresh(root: Path) -> list[str]:
    """Differences between what ``generate`` would write and what is checked in (empty when fresh)."""
    problems: list[str] = []
    for path, text in expected_files(root).items():
        if not path.is_file():
            problems.append(f"missing: {_rel(path, root)}")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"stale: {_rel(path, root)}")
    problems.extend(f"stray (no event model generates it): {_rel(p, root)}" for p in stray_files(root))
    return problems


def incompatibilities_with_published(root: Path) -> list[str]:
    """Incompatible changes of the current models against the checked-in (published) schemas.

    An event version without a checked-in schema is new, so nothing is published yet; a
    checked-in schema without a model is reported by ``check_fresh`` as stray.
    """
    layout = SchemaLayout(root)
    problems: list[str] = []
    for model in EVENT_TYPES:
        path = layout.schema_path(model)
        if not path.is_file():
            continue
        published = json.loads(path.read_text(encoding="utf-8"))
        found = incompatibilities(published, event_schema(model))
        problems.extend(f"{file_name(model)}: {message}" for message in found)
    return problems
