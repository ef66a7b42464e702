"""Copies for external subscribers (UU No. 27/2022): no identifier or personal data below ``full``.

Every example event is relayed at ``none`` and ``pseudonymous``; the copy must hold no NIK-shaped run,
no phone number and none of the original's personal values (found through the ``x-pii`` paths), and
must validate against its feed schema. A further test keeps the marks honest: a contract field whose
name looks personal must be marked, or be in the commented allow-list below.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from puskesos_shared.contracts import EVENT_TYPES, Event
from puskesos_shared.contracts.examples import EXAMPLES, HEAD_NIK, KK
from puskesos_shared.contracts.primitives import PII_KEYWORD, PiiMark
from puskesos_shared.contracts.pseudonymous import (
    REDACTED,
    PiiLevel,
    Pseudonymiser,
    derived_schema,
    feed_schema_id,
    pii_paths,
)
from puskesos_shared.contracts.registry import event_key
from puskesos_shared.contracts.schema_registry import SchemaLayout, event_schema, file_name

REPO_ROOT = Path(__file__).resolve().parents[2]
KEY = b"subscriber-key-one-0123456789abcdef"
OTHER_KEY = b"subscriber-key-two-0123456789abcdef"
LEVELS = (PiiLevel.NONE, PiiLevel.PSEUDONYMOUS)
SIXTEEN_DIGITS = re.compile(r"[0-9]{16}")
PHONE = re.compile(r"(?<![0-9])(?:\+62|62|08)[0-9]{8,13}(?![0-9])")
PSEUDONYM = re.compile(r"^ps-[a-z2-7]{24}$")
IDS = [file_name(m) for m in EVENT_TYPES]


def _example(model: type[Event]) -> bytes:
    return EXAMPLES[event_key(model)[0]]().model_dump_json().encode()


def _values_at(node: Any, path: str) -> list[Any]:
    """Values at a dotted path (``[]``: every array item, ``*``: every map value); absent ones skipped."""
    found = [node]
    for step in path.split("."):
        many = step.endswith("[]")
        name = step.removesuffix("[]")
        nxt: list[Any] = []
        for item in found:
            if not isinstance(item, dict):
                continue
            if name == "*":
                nxt.extend(item.values())
            elif name in item:
                nxt.append(item[name])
        if many:
            nxt = [x for value in nxt if isinstance(value, list) for x in value]
        found = nxt
    return [v for v in found if v is not None]


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (k, *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


# every example, both levels -------------------------------------------------------------------------


@pytest.mark.parametrize("level", LEVELS, ids=[level.value for level in LEVELS])
@pytest.mark.parametrize("model", EVENT_TYPES, ids=IDS)
def test_relayed_copy_holds_no_personal_data(model: type[Event], level: PiiLevel) -> None:
    body = _example(model)
    original = json.loads(body)
    out = Pseudonymiser(KEY, level).transform(body)
    assert out is not None
    text = out.decode()
    copy = json.loads(out)

    assert not SIXTEEN_DIGITS.search(text)
    assert not PHONE.search(text)
    for found in pii_paths(model):
        for value in _values_at(original, found.path):
            for leaf in _strings(value):
                if found.mark is PiiMark.PERSONAL or len(leaf) >= 8:
                    assert json.dumps(leaf, ensure_ascii=False) not in text, (found.path, leaf)
        if found.mark is PiiMark.PERSONAL or level is PiiLevel.NONE:
            assert _values_at(copy, found.path) == [], found.path
    # the identifiers of the examples, in any form, are gone too
    for secret in (KK, HEAD_NIK, "81234567890"):
        assert secret not in text


@pytest.mark.parametrize("level", LEVELS, ids=[level.value for level in LEVELS])
@pytest.mark.parametrize("model", EVENT_TYPES, ids=IDS)
def test_relayed_copy_validates_against_its_feed_schema(model: type[Event], level: PiiLevel) -> None:
    out = Pseudonymiser(KEY, level).transform(_example(model))
    assert out is not None
    errors = [e.message for e in _validator(derived_schema(model, level)).iter_errors(json.loads(out))]
    assert errors == []


@pytest.mark.parametrize("model", EVENT_TYPES, ids=IDS)
def test_identifiers_become_this_subscribers_pseudonyms(model: type[Event]) -> None:
    original = json.loads(_example(model))
    mine = Pseudonymiser(KEY, PiiLevel.PSEUDONYMOUS)
    copy = json.loads(mine.transform(_example(model)) or b"null")
    for found in pii_paths(model):
        if found.mark is not PiiMark.IDENTIFIER:
            continue
        assert found.kind is not None
        before, after = _values_at(original, found.path), _values_at(copy, found.path)
        assert after == [mine.pseudonym(found.kind, v) for v in before], found.path
        assert all(PSEUDONYM.fullmatch(v) for v in after)


@pytest.mark.parametrize("model", EVENT_TYPES, ids=IDS)
def test_order_and_everything_else_are_kept(model: type[Event]) -> None:
    original = json.loads(_example(model))
    copy = json.loads(Pseudonymiser(KEY, PiiLevel.PSEUDONYMOUS).transform(_example(model)) or b"null")
    assert list(copy) == list(original)  # the envelope keeps every field, in order
    for name in ("event_id", "event_type", "schema_version", "occurred_at", "producer", "actor", "village_code"):
        assert copy[name] == original[name]
    marked = {f.path.split(".")[1].removesuffix("[]") for f in pii_paths(model) if f.mark is PiiMark.PERSONAL
              and f.path.count(".") == 1}
    assert [k for k in copy["data"]] == [k for k in original["data"] if k not in marked]


def test_full_gets_the_bytes_unchanged() -> None:
    pseudonymiser = Pseudonymiser(b"", PiiLevel.FULL)
    for model in EVENT_TYPES:
        body = _example(model)
        assert pseudonymiser.transform(body) == body
    assert derived_schema(EVENT_TYPES[0], PiiLevel.FULL) == event_schema(EVENT_TYPES[0])


# the safety net ----------------------------------------------------------------------------------------


def _household_event(**envelope: Any) -> bytes:
    raw = json.loads(_example(EVENT_TYPES[0]))
    raw.update(envelope)
    return json.dumps(raw).encode()


def test_correlation_id_with_a_kk_number_is_scrubbed() -> None:
    body = _household_event()
    assert json.loads(body)["correlation_id"] == f"household:{KK}"
    pseudonymous = Pseudonymiser(KEY, PiiLevel.PSEUDONYMOUS)
    copy = json.loads(pseudonymous.transform(body) or b"null")
    assert copy["correlation_id"] == f"household:{pseudonymous.pseudonym('digits16', KK)}"
    # stable: every event about the household has the same correlation id in the feed
    again = json.loads(pseudonymous.transform(_example(EVENT_TYPES[1])) or b"null")
    assert again["correlation_id"] == copy["correlation_id"]
    none = json.loads(Pseudonymiser(KEY, PiiLevel.NONE).transform(body) or b"null")
    assert none["correlation_id"] == f"household:{REDACTED}"


@pytest.mark.parametrize("phone", ["+6281234567890", "6281234567890", "081234567890", "0812345678"])
def test_phone_numbers_in_any_string_are_scrubbed(phone: str) -> None:
    body = _household_event(causation_id=f"call from {phone}.")
    pseudonymous = Pseudonymiser(KEY, PiiLevel.PSEUDONYMOUS)
    copy = json.loads(pseudonymous.transform(body) or b"null")
    assert copy["causation_id"] == f"call from {pseudonymous.pseudonym('phone', phone)}."
    none = json.loads(Pseudonymiser(KEY, PiiLevel.NONE).transform(body) or b"null")
    assert none["causation_id"] == f"call from {REDACTED}."


def test_a_phone_number_found_by_the_net_joins_the_phone_field() -> None:
    p = Pseudonymiser(KEY, PiiLevel.PSEUDONYMOUS)
    assert p.pseudonym("phone", "081234567890") == p.pseudonym("phone", "+6281234567890")
    assert p.pseudonym("phone", "6281234567890") == p.pseudonym("phone", "+6281234567890")


def test_short_numbers_uuids_and_digests_are_left_alone() -> None:
    p = Pseudonymiser(KEY, PiiLevel.NONE)
    assert p.scrub("import:42, row 1234567, Rp 19000500000") == "import:42, row 1234567, Rp 19000500000"
    digest = "0123456789012345678901234567890123456789012345678901234567890123"
    raw = json.loads(_example(next(m for m in EVENT_TYPES if m.__name__ == "CaseAssessed")))
    raw["data"]["inputs_digest"] = digest
    raw["event_id"] = "62812345-6789-4012-8456-081234567890"
    copy = json.loads(p.transform(json.dumps(raw).encode()) or b"null")
    assert copy["data"]["inputs_digest"] == digest
    assert copy["event_id"] == raw["event_id"]


def test_unknown_properties_are_dropped_at_every_depth() -> None:
    raw = json.loads(_example(EVENT_TYPES[0]))
    raw["mother_name"] = "Sumiati"
    raw["data"]["household"]["members"][0]["nama_ibu"] = "Sumiati"
    for level in LEVELS:
        out = Pseudonymiser(KEY, level).transform(json.dumps(raw).encode())
        assert out is not None
        assert b"Sumiati" not in out


# what cannot be made safe ---------------------------------------------------------------------------------


@pytest.mark.parametrize("level", LEVELS, ids=[level.value for level in LEVELS])
@pytest.mark.parametrize(
    "body",
    [
        b'{"event_type": "HouseholdMoved", "schema_version": 1, "data": {"nik": "3573010101800003"}}',
        b'{"event_type": "HouseholdRegistered", "schema_version": 9, "data": {}}',
        b'{"event_type": "HouseholdRegistered", "schema_version": "1"}',
        b'{"schema_version": 1}',
        b"[1, 2]",
        b"not json",
        b"\xff\xfe",
        b'{"event_type": "HouseholdRegistered", "schema_version": 1, "x": NaN}',
    ],
    ids=["unknown-type", "unknown-version", "mistyped-version", "no-type", "array", "garbage", "bad-utf8", "nan"],
)
def test_what_this_release_cannot_read_is_refused(body: bytes, level: PiiLevel) -> None:
    assert Pseudonymiser(KEY, level).transform(body) is None


@pytest.mark.parametrize("level", LEVELS, ids=[level.value for level in LEVELS])
def test_a_message_of_the_wrong_shape_is_refused(level: PiiLevel) -> None:
    raw = json.loads(_example(EVENT_TYPES[0]))
    # members as an object: its names would not be where the schema says
    raw["data"]["household"]["members"] = {"head": raw["data"]["household"]["members"][0]}
    assert Pseudonymiser(KEY, level).transform(json.dumps(raw).encode()) is None
    raw = json.loads(_example(EVENT_TYPES[0]))
    raw["data"]["household"]["members"][0]["nik"] = 3573010101800003  # a number, not a string
    out = Pseudonymiser(KEY, level).transform(json.dumps(raw).encode())
    if level is PiiLevel.NONE:  # removed whatever it is
        assert out is not None
        assert b"3573010101800003" not in out
    else:  # no pseudonym of something that is not a NIK
        assert out is None
    raw = json.loads(_example(EVENT_TYPES[0]))
    raw["data"]["revision"] = 3573010101800003  # a NIK-sized number where a number belongs
    assert Pseudonymiser(KEY, level).transform(json.dumps(raw).encode()) is None


# pseudonyms ---------------------------------------------------------------------------------------------


def test_pseudonyms_are_stable_per_key_and_differ_between_keys() -> None:
    one, again = Pseudonymiser(KEY, PiiLevel.PSEUDONYMOUS), Pseudonymiser(KEY, PiiLevel.PSEUDONYMOUS)
    other = Pseudonymiser(OTHER_KEY, PiiLevel.PSEUDONYMOUS)
    assert one.pseudonym("nik", HEAD_NIK) == again.pseudonym("nik", HEAD_NIK) == one.pseudonym("nik", HEAD_NIK)
    assert one.pseudonym("nik", HEAD_NIK) != other.pseudonym("nik", HEAD_NIK)
    body = _example(EVENT_TYPES[0])
    assert one.transform(body) == again.transform(body) != other.transform(body)


def test_a_nik_and_a_kk_number_of_the_same_digits_differ() -> None:
    p = Pseudonymiser(KEY, PiiLevel.PSEUDONYMOUS)
    assert p.pseudonym("nik", KK) != p.pseudonym("kk", KK)


def test_pseudonyms_are_never_nik_shaped() -> None:
    p = Pseudonymiser(KEY, PiiLevel.PSEUDONYMOUS)
    for n in range(2000):
        for kind in ("nik", "kk", "phone", "digits16"):
            value = p.pseudonym(kind, f"{3573010101800000 + n}")
            assert PSEUDONYM.fullmatch(value)
            assert not value.isdigit()
            assert not SIXTEEN_DIGITS.search(value)


def test_a_short_key_is_refused_and_never_shown() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        Pseudonymiser(b"short", PiiLevel.PSEUDONYMOUS)
    assert KEY.decode() not in repr(Pseudonymiser(KEY, PiiLevel.PSEUDONYMOUS))


# feed schemas ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", LEVELS, ids=[level.value for level in LEVELS])
@pytest.mark.parametrize("model", EVENT_TYPES, ids=IDS)
def test_feed_schema_has_no_identifier_or_personal_property(model: type[Event], level: PiiLevel) -> None:
    schema = derived_schema(model, level)
    text = json.dumps(schema)
    assert f'"{PII_KEYWORD}": "identifier"' not in text
    assert f'"{PII_KEYWORD}": "personal"' not in text
    if level is PiiLevel.NONE:
        assert f'"{PII_KEYWORD}": "pseudonym"' not in text
    assert not SIXTEEN_DIGITS.search(text)  # not even in examples
    assert schema["$id"] == feed_schema_id(model, level)
    assert schema["title"] != event_schema(model)["title"]
    checked_in = SchemaLayout(REPO_ROOT).feed_schema_path(model, level)
    assert json.loads(checked_in.read_text(encoding="utf-8")) == schema


# the marks are complete --------------------------------------------------------------------------------------

#: Field names that suggest personal data.
LOOKS_PERSONAL = re.compile(
    r"name|alamat|address|street|birth|tanggal_lahir|description|note|phone|nik|kk|reason|detail|message"
    r"|instructions|occupation"
)
#: (model, field) that look personal by name but are not; each with why.
ALLOWED_UNMARKED = {
    # the name of an institution (a hospital, a program office), not of a person
    ("ReferralTarget", "name"),
    # the name of an aid round ("BLT DBHCHT Kota Malang 2026")
    ("AidRoundOpenedData", "name"),
    # its personal parts (street, rt, rw) are marked inside Address; the village code is a public region code
    ("Household", "address"),
    # written by the referral service's rules ("SLA breached: ...", "referral rejected 3 times"), not by people
    ("CaseEscalatedData", "reason"),
    # closed lists of reasons (RejectionReason, FailureReason) and counts per reason
    ("AidAllocationRejectedData", "reason"),
    ("NotificationFailedData", "reason"),
    ("RoundTotals", "rejected_by_reason"),
    # why the assessment rules decided so, written by the rules
    ("ProgramEligibility", "reasons"),
}


def _directly_marked(root: dict[str, Any], schema: Any) -> bool:
    """Marked on the property itself, its $ref target, a non-null anyOf branch, or its items."""
    if not isinstance(schema, dict):
        return False
    if PII_KEYWORD in schema:
        return True
    if "$ref" in schema:
        target = root["$defs"][schema["$ref"].removeprefix("#/$defs/")]
        if PII_KEYWORD in target:
            return True
    branches = [*schema.get("anyOf", []), *schema.get("oneOf", [])]
    if any(_directly_marked(root, b) for b in branches if b != {"type": "null"}):
        return True
    return _directly_marked(root, schema.get("items"))


def test_every_field_that_looks_personal_is_marked() -> None:
    unmarked: set[tuple[str, str]] = set()
    for model in EVENT_TYPES:
        schema = event_schema(model)
        objects = [(schema["title"], schema), *schema.get("$defs", {}).items()]
        for title, node in objects:
            for name, prop in node.get("properties", {}).items():
                if LOOKS_PERSONAL.search(name) and not _directly_marked(schema, prop):
                    unmarked.add((title, name))
    assert unmarked - ALLOWED_UNMARKED == set(), "mark them x-pii (identifier or personal) or allow-list them"
    assert ALLOWED_UNMARKED - unmarked == set(), "stale allow-list entries"
