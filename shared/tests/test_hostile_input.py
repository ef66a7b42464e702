"""Property-based tests: no input crashes decoding; every bad input gets a clear error."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from puskesos_shared.commands import CommandError, parse_request
from puskesos_shared.contracts import EVENT_TYPES, InvalidMessage, decode_event
from puskesos_shared.contracts.examples import EXAMPLES
from pydantic import BaseModel, Field

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=15), children, max_size=6),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_are_decoded_or_refused_with_a_reason(body: bytes) -> None:
    try:
        decode_event(body)
    except InvalidMessage as exc:
        assert exc.reason


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_arbitrary_json_is_decoded_or_refused_with_a_reason(value: Any) -> None:
    try:
        decode_event(json.dumps(value).encode())
    except InvalidMessage as exc:
        assert exc.reason


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(sorted(EXAMPLES)),
    st.lists(st.text(max_size=12), min_size=1, max_size=3),
    json_values,
)
def test_mutated_real_events_are_decoded_or_refused(event_type: str, path: list[str], value: Any) -> None:
    """Take a valid event, overwrite or add one field somewhere with junk: never a crash."""
    raw = json.loads(EXAMPLES[event_type]().model_dump_json())
    node = raw
    for key in path[:-1]:
        child = node.get(key) if isinstance(node, dict) else None
        if not isinstance(child, dict):
            break
        node = child
    if isinstance(node, dict):
        node[path[-1]] = value
    try:
        event = decode_event(json.dumps(raw).encode())
    except InvalidMessage as exc:
        assert exc.reason
    else:
        assert type(event) in EVENT_TYPES


class Sample(BaseModel):
    idempotency_key: str = Field(min_length=8, max_length=64)
    amount: int = Field(ge=0)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=500) | json_values.map(lambda v: json.dumps(v).encode()))
def test_commands_answer_every_body_with_a_result_or_a_clear_error(body: bytes) -> None:
    try:
        parse_request(Sample, body)
    except CommandError as exc:
        assert exc.code in {"malformed_json", "invalid_request", "payload_too_large"}
        assert exc.message


def test_command_errors_do_not_echo_the_input() -> None:
    secret = "NIK 3573010101800003"
    try:
        parse_request(Sample, json.dumps({"idempotency_key": "x", "amount": secret}).encode())
    except CommandError as exc:
        assert secret not in json.dumps(exc.body())
        assert {tuple(f["loc"]) for f in exc.fields} == {("idempotency_key",), ("amount",)}
    else:  # pragma: no cover
        raise AssertionError("an invalid request was accepted")
