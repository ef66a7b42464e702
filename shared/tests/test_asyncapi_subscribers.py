"""The AsyncAPI document describes what an external subscriber receives: a feed channel per event version
(a ``subscriber`` parameter, a message per personal-data level referencing the schema of that copy, the feed
headers, a subscriber's ``receive``), the subscriber's security, and the signed CloudEvents webhook; and
asyncapi.md has a section for them. Checked against the relay itself (``puskesos_notification.feeds``)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, cast

import pytest
from jsonschema import Draft7Validator, Draft202012Validator
from puskesos_notification.feeds.nats_sink import feed_headers
from puskesos_notification.feeds.webhook import CONTENT_TYPE, cloud_event
from puskesos_notification.feeds.worker import Relayed
from puskesos_shared.contracts import EVENT_TYPES, Event
from puskesos_shared.contracts.pseudonymous import FEED_LEVELS, PiiLevel, feed_schema_id, pii_paths
from puskesos_shared.contracts.registry import event_key, subject_for
from puskesos_shared.contracts.schema_registry import (
    EXAMPLE_SEQUENCE,
    EXAMPLE_TIMESTAMP,
    EXAMPLE_WEBHOOK_SECRET,
    FEED_HEADERS,
    NATS_SERVERS,
    PII_PATHS_EXTENSION,
    SUBSCRIBER_SECURITY,
    WEBHOOK_CHANNEL,
    WEBHOOK_MESSAGE,
    WEBHOOK_SERVER,
    SchemaLayout,
    file_name,
)
from puskesos_shared.subscribers import SIGNATURE_HEADER, Subscriber, verify
from puskesos_shared.topology import Topology

REPO_ROOT = Path(__file__).resolve().parents[2]
LAYOUT = SchemaLayout(REPO_ROOT)
PRODUCTION = Topology(namespace="puskesos")
LEVELS = (PiiLevel.FULL, *FEED_LEVELS)
IDS = [file_name(m) for m in EVENT_TYPES]


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _pointer(doc: Any, ref: str) -> Any:
    node = doc
    for token in ref.removeprefix("#/").split("/"):
        node = node[token.replace("~1", "/").replace("~0", "~")]
    return node


@pytest.fixture(scope="module")
def asyncapi() -> dict[str, Any]:
    doc: dict[str, Any] = _load(LAYOUT.asyncapi)
    return doc


def _feed_channel(asyncapi: dict[str, Any], model: type[Event]) -> dict[str, Any]:
    event_type, version = event_key(model)
    channel: dict[str, Any] = asyncapi["channels"][f"feed.{event_type}.v{version}"]
    return channel


def _message(asyncapi: dict[str, Any], model: type[Event], level: PiiLevel) -> dict[str, Any]:
    message: dict[str, Any] = _pointer(asyncapi, _feed_channel(asyncapi, model)["messages"][level.value]["$ref"])
    return message


@pytest.mark.parametrize("model", EVENT_TYPES, ids=IDS)
def test_every_event_has_a_feed_channel_with_a_message_per_level(asyncapi: dict[str, Any],
                                                                  model: type[Event]) -> None:
    event_type, version = event_key(model)
    channel = _feed_channel(asyncapi, model)
    event_subject = subject_for(model, PRODUCTION)
    assert channel["address"] == event_subject.replace("puskesos.events.", "puskesos.feed.{subscriber}.", 1)
    # what the relay publishes to (nats_sink), with the parameter filled in
    assert channel["address"].replace("{subscriber}", "rsud-soebandi") == PRODUCTION.feed_subject("rsud-soebandi",
                                                                                                  event_subject)
    assert set(channel["parameters"]) == {"subscriber"}
    assert "PUSKESOS_FEEDS" in channel["description"]
    assert set(channel["messages"]) == {level.value for level in LEVELS}
    for level in LEVELS:
        message = _message(asyncapi, model, level)
        ref = message["payload"]["schema"]["$ref"]
        if level is PiiLevel.FULL:
            assert ref == f"./events/{file_name(model)}"
        else:
            assert ref == f"./feeds/{level.value}/{file_name(model)}"
            assert LAYOUT.base / ref == LAYOUT.feed_schema_path(model, level)
        schema_file = LAYOUT.base / ref
        assert schema_file.is_file(), ref
        schema = _load(schema_file)
        if level is not PiiLevel.FULL:
            assert schema["$id"] == feed_schema_id(model, level)
        headers = message["headers"]
        assert headers["required"] == list(FEED_HEADERS)
        assert set(headers["properties"]) == set(FEED_HEADERS)
        assert headers["properties"]["Puskesos-Pii"]["const"] == level.value
    [(op_id, op)] = [(k, v) for k, v in asyncapi["operations"].items()
                     if v["channel"]["$ref"] == f"#/channels/feed.{event_type}.v{version}"]
    assert op_id.startswith("subscribers.receive.")
    assert op["action"] == "receive"
    assert op["security"] == [{"$ref": f"#/components/securitySchemes/{SUBSCRIBER_SECURITY}"}]
    assert sorted(m["$ref"].rsplit("/", 1)[-1] for m in op["messages"]) == sorted(level.value for level in LEVELS)
    expected_paths = [{"path": p.path, "mark": p.mark.value, **({"kind": p.kind} if p.kind else {})}
                      for p in pii_paths(model)]
    assert channel[PII_PATHS_EXTENSION] == expected_paths


@pytest.mark.parametrize("model", EVENT_TYPES, ids=IDS)
def test_feed_examples_match_their_schemas_and_the_relay_headers(asyncapi: dict[str, Any],
                                                                  model: type[Event]) -> None:
    # the parser does not check examples; this does
    for level in LEVELS:
        message = _message(asyncapi, model, level)
        [example] = message["examples"]
        schema = _load(LAYOUT.base / message["payload"]["schema"]["$ref"])
        validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                  for e in validator.iter_errors(example["payload"])]
        assert errors == [], level
        assert list(Draft7Validator(message["headers"]).iter_errors(example["headers"])) == []
        if level is not PiiLevel.FULL:
            assert not re.search(r"[0-9]{16}", json.dumps(example["payload"])), "a NIK-shaped value in a feed example"
        # the headers the relay writes are the ones described
        subscriber = Subscriber(name="rsud-soebandi", events=(">",), pii=level)
        relayed = Relayed(msg=cast(Any, None), subject=subject_for(model, PRODUCTION), body=b"{}",
                          sequence=EXAMPLE_SEQUENCE, event_id=example["payload"]["event_id"])
        written = feed_headers(subscriber, 1, relayed)
        assert written == example["headers"]
        assert list(Draft7Validator(message["headers"]).iter_errors(written)) == []


def test_subscriber_security_is_described(asyncapi: dict[str, Any]) -> None:
    scheme = asyncapi["components"]["securitySchemes"][SUBSCRIBER_SECURITY]
    assert scheme["type"] == "userPassword"
    subscriber = Subscriber(name="rsud-soebandi", events=(">",))
    assert subscriber.inbox_prefix == "_INBOX_rsud-soebandi"
    for words in ("_INBOX_<name>", "one durable pull consumer", "named as the subscriber", "PUSKESOS_FEEDS",
                  "puskesos.feed.<name>.>"):
        assert words in scheme["description"]


def test_nats_channels_are_on_the_nats_servers_and_the_webhook_on_its_own(asyncapi: dict[str, Any]) -> None:
    nats = [{"$ref": f"#/servers/{name}"} for name in NATS_SERVERS]
    for key, channel in asyncapi["channels"].items():
        if key == WEBHOOK_CHANNEL:
            assert channel["servers"] == [{"$ref": f"#/servers/{WEBHOOK_SERVER}"}]
        else:
            assert channel["servers"] == nats, key
    assert all(asyncapi["servers"][name]["protocol"] == "nats" for name in NATS_SERVERS)
    assert asyncapi["servers"][WEBHOOK_SERVER]["protocol"] == "https"


def test_webhook_delivery_is_what_the_relay_posts(asyncapi: dict[str, Any]) -> None:
    channel = asyncapi["channels"][WEBHOOK_CHANNEL]
    message = _pointer(asyncapi, channel["messages"][WEBHOOK_MESSAGE]["$ref"])
    assert message["contentType"] == CONTENT_TYPE
    [example] = message["examples"]
    payload, headers = example["payload"], example["headers"]
    # the relay's own function builds the same CloudEvents document from the same copy
    built = json.loads(cloud_event(json.dumps(payload["data"]).encode(), namespace="puskesos",
                                   sequence=EXAMPLE_SEQUENCE, pii=PiiLevel.PSEUDONYMOUS.value))
    assert built == payload
    model = next(m for m in EVENT_TYPES if event_key(m)[0] == payload["data"]["event_type"])
    assert payload["dataschema"] == feed_schema_id(model, PiiLevel.PSEUDONYMOUS)
    assert list(Draft7Validator(message["payload"]).iter_errors(payload)) == []
    assert list(Draft7Validator(message["headers"]).iter_errors(headers)) == []
    feed_schema = _load(LAYOUT.feed_schema_path(model, PiiLevel.PSEUDONYMOUS))
    assert Draft202012Validator(feed_schema).is_valid(payload["data"])
    # the example signature verifies as a receiver would check it, over the compact sorted body
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
    assert verify(EXAMPLE_WEBHOOK_SECRET, body, headers[SIGNATURE_HEADER], now=EXAMPLE_TIMESTAMP)
    assert not verify(EXAMPLE_WEBHOOK_SECRET, body + b" ", headers[SIGNATURE_HEADER], now=EXAMPLE_TIMESTAMP)
    assert not verify(EXAMPLE_WEBHOOK_SECRET, body, headers[SIGNATURE_HEADER], now=EXAMPLE_TIMESTAMP + 301)
    for words in ("CloudEvents 1.0", "structured mode", SIGNATURE_HEADER, "HMAC-SHA256", "At least once",
                  "In order", "same id"):
        assert words in channel["description"]
    [operation] = [v for v in asyncapi["operations"].values()
                   if v["channel"]["$ref"] == f"#/channels/{WEBHOOK_CHANNEL}"]
    assert operation["action"] == "send"
    assert operation["bindings"]["http"]["method"] == "POST"


def test_markdown_has_a_section_for_external_subscribers(asyncapi: dict[str, Any]) -> None:
    text = LAYOUT.asyncapi_markdown.read_text(encoding="utf-8")
    section = text.split("## For external subscribers", 1)[1]
    for model in EVENT_TYPES:
        event_type, version = event_key(model)
        assert f"`{_feed_channel(asyncapi, model)['address']}`" in section
        for level in FEED_LEVELS:
            assert f"](feeds/{level.value}/{file_name(model)})" in section
        for path in pii_paths(model):
            assert f"| {event_type}.v{version} | `{path.path}` | {path.mark.value} |" in section
    for words in ("### The three levels", "`pseudonymous`", "`none`", "`full`", "### Webhook", SIGNATURE_HEADER,
                  "hmac.compare_digest", "_INBOX_<name>", "PUSKESOS_FEEDS"):
        assert words in section
