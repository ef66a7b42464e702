"""The checked-in contract registry (shared/schemas/) matches the models and is internally consistent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

# the command catalog lives in the composition root (shared imports no service)
from puskesos_cli.command_catalog import COMMANDS
from puskesos_shared.commands import CommandError, CommandReply
from puskesos_shared.contracts import EVENT_TYPES, Event, decode_event
from puskesos_shared.contracts.examples import EXAMPLES
from puskesos_shared.contracts.pseudonymous import FEED_LEVELS
from puskesos_shared.contracts.registry import event_key, subject_for
from puskesos_shared.contracts.schema_registry import (
    SchemaLayout,
    asyncapi_markdown,
    check_fresh,
    command_schema,
    event_schema,
    file_name,
    generate,
    render,
)
from puskesos_shared.messaging import headers
from puskesos_shared.problems import PROBLEMS
from puskesos_shared.topology import Topology

REPO_ROOT = Path(__file__).resolve().parents[2]
LAYOUT = SchemaLayout(REPO_ROOT)
IDS = [file_name(m) for m in EVENT_TYPES]


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("model", EVENT_TYPES, ids=IDS)
def test_example_validates_against_checked_in_schema(model: type[Event]) -> None:
    schema = _load(LAYOUT.schema_path(model))
    example = _load(LAYOUT.example_path(model))
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(example)]
    assert errors == []


@pytest.mark.parametrize("model", EVENT_TYPES, ids=IDS)
def test_example_parses_with_the_model(model: type[Event]) -> None:
    path = LAYOUT.example_path(model)
    event = decode_event(path.read_bytes())
    assert type(event) is model
    assert event == EXAMPLES[event_key(model)[0]]()
    assert event.model_dump(mode="json") == _load(path)


@pytest.mark.parametrize("model", EVENT_TYPES, ids=IDS)
def test_schema_is_self_contained_and_requires_routing_fields(model: type[Event]) -> None:
    schema = _load(LAYOUT.schema_path(model))
    text = json.dumps(schema)
    for ref in _refs(schema):
        assert ref.startswith("#/$defs/"), ref
        assert ref.removeprefix("#/$defs/") in schema["$defs"]
    assert '"$ref": "http' not in text
    assert {"event_type", "schema_version", "event_id", "occurred_at", "data"} <= set(schema["required"])
    event_type, version = event_key(model)
    assert schema["properties"]["event_type"]["const"] == event_type
    assert schema["properties"]["schema_version"]["const"] == version


def test_a_message_without_routing_fields_fails_the_schema() -> None:
    model = EVENT_TYPES[0]
    example = _load(LAYOUT.example_path(model))
    del example["event_type"]
    assert not Draft202012Validator(_load(LAYOUT.schema_path(model))).is_valid(example)


def test_every_event_has_one_schema_and_one_example_and_nothing_else() -> None:
    expected = {file_name(m) for m in EVENT_TYPES}
    assert len(expected) == len(EVENT_TYPES) == len(EXAMPLES)
    assert {p.name for p in LAYOUT.events_dir.glob("*")} == expected
    assert {p.name for p in LAYOUT.examples_dir.glob("*")} == expected
    assert set(EXAMPLES) == {event_key(m)[0] for m in EVENT_TYPES}


def test_checked_in_files_are_fresh(tmp_path: Path) -> None:
    written = generate(tmp_path, COMMANDS)
    # an event's schema and example, its feed schema per level, a command's schema, the reply, asyncapi.json and .md
    assert len(written) == (2 + len(FEED_LEVELS)) * len(EVENT_TYPES) + len(COMMANDS) + 3
    stale = []
    for path in written:
        checked_in = REPO_ROOT / path.relative_to(tmp_path)
        if not checked_in.is_file() or checked_in.read_bytes() != path.read_bytes():
            stale.append(path.relative_to(tmp_path).as_posix())
    assert stale == [], "run `uv run puskesos contracts generate`"
    assert check_fresh(REPO_ROOT, COMMANDS) == []


def test_generation_is_byte_stable(tmp_path: Path) -> None:
    generate(tmp_path, COMMANDS)
    assert generate(tmp_path, COMMANDS) == []
    assert check_fresh(tmp_path, COMMANDS) == []
    schema = event_schema(EVENT_TYPES[0])
    assert render(schema) == render(json.loads(render(schema)))
    assert render(schema).endswith("}\n")


def test_check_fresh_reports_stale_missing_and_stray_files(tmp_path: Path) -> None:
    generate(tmp_path, COMMANDS)
    layout = SchemaLayout(tmp_path)
    first, second = EVENT_TYPES[0], EVENT_TYPES[1]
    layout.schema_path(first).write_text("{}\n", encoding="utf-8")
    layout.example_path(second).unlink()
    (layout.events_dir / "Retired.v1.json").write_text("{}\n", encoding="utf-8")
    (layout.commands_dir / "intake.retired.v1.json").write_text("{}\n", encoding="utf-8")
    problems = check_fresh(tmp_path, COMMANDS)
    assert f"stale: shared/schemas/events/{file_name(first)}" in problems
    assert f"missing: shared/schemas/examples/{file_name(second)}" in problems
    assert any("stray" in p and "Retired.v1.json" in p for p in problems)
    assert any("stray" in p and "intake.retired.v1.json" in p for p in problems)
    assert len(problems) == 4


# AsyncAPI ---------------------------------------------------------------------------------


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _pointer(doc: Any, ref: str) -> Any:
    node = doc
    for token in ref.removeprefix("#/").split("/"):
        node = node[token.replace("~1", "/").replace("~0", "~")]
    return node


@pytest.fixture(scope="module")
def asyncapi() -> dict[str, Any]:
    doc: dict[str, Any] = _load(LAYOUT.asyncapi)
    return doc


def test_asyncapi_lists_every_event_subject(asyncapi: dict[str, Any]) -> None:
    assert asyncapi["asyncapi"] == "3.0.0"
    assert {"title", "version", "description"} <= set(asyncapi["info"])
    addresses = {c["address"] for c in asyncapi["channels"].values() if ".events." in (c["address"] or "")}
    assert addresses == {subject_for(m, Topology(namespace="puskesos")) for m in EVENT_TYPES}
    assert "puskesos.events.intake.complaint_filed.v1" in addresses


def test_asyncapi_references_every_schema(asyncapi: dict[str, Any]) -> None:
    external = {r for r in _refs(asyncapi) if not r.startswith("#")}
    assert external == ({f"./events/{file_name(m)}" for m in EVENT_TYPES}
                        | {f"./feeds/{level.value}/{file_name(m)}" for m in EVENT_TYPES for level in FEED_LEVELS}
                        | {f"./commands/{c.file_name}" for c in COMMANDS} | {"./commands/CommandReply.v1.json"})
    for ref in external:
        assert (LAYOUT.base / ref).is_file()
    for ref in (r for r in _refs(asyncapi) if r.startswith("#")):
        _pointer(asyncapi, ref)  # every internal reference resolves


def test_asyncapi_operations_are_sends_by_the_producer(asyncapi: dict[str, Any]) -> None:
    operations = {k: v for k, v in asyncapi["operations"].items() if ".send." in k and not k.startswith("services.")}
    assert len(operations) == len(EVENT_TYPES)
    for model in EVENT_TYPES:
        event_type, version = event_key(model)
        subject = subject_for(model, Topology())
        [(op_id, op)] = [(k, v) for k, v in operations.items()
                         if _pointer(asyncapi, v["channel"]["$ref"])["address"] == subject]
        assert op["action"] == "send"
        assert op_id.startswith(f"{model.PRODUCER}.")
        assert {"name": model.PRODUCER} in op["tags"]
        message = _pointer(asyncapi, _pointer(asyncapi, op["messages"][0]["$ref"])["$ref"])
        assert message["name"] == event_type
        assert message["payload"]["schema"]["$ref"] == f"./events/{event_type}.v{version}.json"
        assert message["examples"][0]["payload"] == _load(LAYOUT.example_path(model))


def test_asyncapi_has_a_nats_server(asyncapi: dict[str, Any]) -> None:
    assert any(s["protocol"] == "nats" for s in asyncapi["servers"].values())


def test_asyncapi_has_a_receive_with_reply_per_command(asyncapi: dict[str, Any]) -> None:
    operations = asyncapi["operations"]
    # the other receives are an external subscriber's feeds (test_asyncapi_subscribers.py)
    commands = {k: v for k, v in operations.items() if v["action"] == "receive" and not k.startswith("subscribers.")}
    assert len(commands) == len(COMMANDS)
    for command in COMMANDS:
        op = operations[command.operation_id]
        channel = _pointer(asyncapi, op["channel"]["$ref"])
        scope = f".{{{command.parameter}}}" if command.parameter else ""  # a last token: on whose behalf
        assert channel["address"] == f"puskesos.commands.{command.service}.{command.name}.v1{scope}"
        assert set(channel.get("parameters", {})) == ({command.parameter} if command.parameter else set())
        message = _pointer(asyncapi, _pointer(asyncapi, op["messages"][0]["$ref"])["$ref"])
        assert message["payload"]["schema"]["$ref"] == f"./commands/{command.file_name}"
        [reply] = op["reply"]["messages"]
        reply_message = _pointer(asyncapi, _pointer(asyncapi, reply["$ref"])["$ref"])
        assert reply_message["payload"]["schema"]["$ref"] == "./commands/CommandReply.v1.json"
        assert ("security" in op) == command.officer_token
        schema = _load(LAYOUT.command_schema_path(command))
        Draft202012Validator.check_schema(schema)
        assert schema == command_schema(command)
        assert ("token" in schema["properties"]) == ("token" in command.request.model_fields)
    responses = operations["referral.receive.respond_referral.v1"]
    outcome = _load(LAYOUT.commands_dir / "referral.respond_referral.v1.json")["$defs"]["ReferralOutcome"]
    assert set(outcome["enum"]) == {"accepted", "rejected", "completed"}
    assert "security" not in responses


def test_reply_schema_accepts_what_the_command_kit_sends() -> None:
    schema = _load(LAYOUT.reply_schema)
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    ok = CommandReply(ok=True, result={"case_id": "x"}).model_dump(mode="json")
    failed = CommandReply(ok=False, error=CommandError("invalid_request", "the request does not match", [
        {"loc": "body.members.1.nik", "msg": "bad", "type": "string_pattern_mismatch"}]).body()).model_dump(mode="json")
    assert validator.is_valid(ok)
    assert validator.is_valid(failed)
    assert not validator.is_valid({"ok": True, "result": None, "error": {"code": "x"}})
    assert not validator.is_valid({"ok": False, "result": None, "error": {"code": "conflict"}})
    codes = schema["$defs"]["Error"]["properties"]["code"]
    assert set(codes["enum"]) == set(PROBLEMS)
    assert codes["x-open-enum"] is True


def test_asyncapi_describes_dead_letters_security_and_servers(asyncapi: dict[str, Any]) -> None:
    dlq = asyncapi["channels"]["deadLetters"]
    assert dlq["address"] == "puskesos.dlq.{service}.{consumer}"
    assert set(dlq["parameters"]) == {"service", "consumer"}
    message = _pointer(asyncapi, dlq["messages"]["DeadLetter"]["$ref"])
    dlq_headers = [getattr(headers, name) for name in dir(headers) if name.startswith("DLQ_")]
    assert set(dlq_headers) <= set(message["headers"]["required"])
    assert all(name.startswith("Puskesos-Dlq-") for name in dlq_headers)
    schemes = asyncapi["components"]["securitySchemes"]
    assert schemes["natsUserPassword"]["type"] == "userPassword"
    assert schemes["officerToken"]["bearerFormat"] == "JWT"
    assert "HS256" in schemes["officerToken"]["description"]
    production = asyncapi["servers"]["production"]
    assert production["protocol"] == "nats"
    assert production["variables"]["namespace"]["default"] == "puskesos"
    assert production["security"] == [{"$ref": "#/components/securitySchemes/natsUserPassword"}]


def test_asyncapi_markdown_is_generated_from_the_document(asyncapi: dict[str, Any]) -> None:
    text = LAYOUT.asyncapi_markdown.read_text(encoding="utf-8")
    assert text == asyncapi_markdown(asyncapi)
    for channel in asyncapi["channels"].values():
        if channel["address"]:
            assert f"`{channel['address']}`" in text
    for command in COMMANDS:
        assert f"](commands/{command.file_name})" in text
    assert "](events/ComplaintFiled.v1.json)" in text
