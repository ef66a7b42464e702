"""A published v1 schema never changes incompatibly, in either direction; the check really catches breaking changes.

Backward: this release reads what producers of the published schema sent. Forward: readers still on
the published release read what current producers send (they ignore unknown properties and accept
any value of an open enum, nothing more).
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from puskesos_shared.contracts import EVENT_TYPES, Event, HouseholdRegistered
from puskesos_shared.contracts.compat import FORWARD_SUFFIX, incompatibilities, reader_view
from puskesos_shared.contracts.schema_registry import (
    SchemaLayout,
    event_schema,
    file_name,
    incompatibilities_with_published,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
LAYOUT = SchemaLayout(REPO_ROOT)
Schema = dict[str, Any]


def _published(name: str) -> Schema:
    schema: Schema = json.loads((LAYOUT.events_dir / name).read_text(encoding="utf-8"))
    return schema


@pytest.mark.parametrize("model", EVENT_TYPES, ids=[file_name(m) for m in EVENT_TYPES])
def test_current_model_is_compatible_with_published_schema(model: type[Event]) -> None:
    assert incompatibilities(_published(file_name(model)), event_schema(model)) == []


def test_whole_registry_is_compatible() -> None:
    assert incompatibilities_with_published(REPO_ROOT) == []


# the check can fail -----------------------------------------------------------------------

MEMBER = "data.household.members[]"


def _member(s: Schema) -> Schema:
    member: Schema = s["$defs"]["Member"]
    return member


def _remove_property(s: Schema) -> None:
    del _member(s)["properties"]["occupation"]


def _retype_property(s: Schema) -> None:
    _member(s)["properties"]["nik"]["type"] = "integer"


def _add_required_property(s: Schema) -> None:
    _member(s)["properties"]["religion"] = {"type": "string"}
    _member(s)["required"].append("religion")


def _remove_enum_value(s: Schema) -> None:
    s["$defs"]["Sex"]["enum"].remove("P")


def _optional_becomes_required(s: Schema) -> None:
    _member(s)["required"].append("occupation")


def _drop_null_branch(s: Schema) -> None:
    phone = s["$defs"]["Household"]["properties"]["phone"]
    phone["anyOf"] = [b for b in phone["anyOf"] if b.get("type") != "null"]


def _change_const(s: Schema) -> None:
    s["properties"]["schema_version"]["const"] = 2


def _change_pattern(s: Schema) -> None:
    s["$defs"]["Address"]["properties"]["rt"]["pattern"] = "^[0-9]{3}$"


def _change_format(s: Schema) -> None:
    s["properties"]["occurred_at"]["format"] = "date"


def _tighten_bound(s: Schema) -> None:
    _member(s)["properties"]["name"]["maxLength"] = 50


def _nested_def_envelope(s: Schema) -> None:
    s["$defs"]["Actor"]["properties"]["id"]["type"] = "integer"


def _new_required_in_data(s: Schema) -> None:
    s["$defs"]["HouseholdRegisteredData"]["required"].append("warnings")


def _add_enum_value(s: Schema) -> None:
    s["$defs"]["Relationship"]["enum"].append("anak_angkat")


def _make_nullable(s: Schema) -> None:
    prop = _member(s)["properties"]["occupation"]
    _member(s)["properties"]["occupation"] = {"anyOf": [prop, {"type": "null"}], "default": ""}


def _relax_bound(s: Schema) -> None:
    _member(s)["properties"]["name"]["maxLength"] = 500


def _remove_pattern(s: Schema) -> None:
    del s["$defs"]["Address"]["properties"]["rt"]["pattern"]


def _required_becomes_optional(s: Schema) -> None:
    _member(s)["required"].remove("birth_date")


BREAKING: list[tuple[str, Callable[[Schema], None], str]] = [
    ("remove a property", _remove_property, f"{MEMBER}.occupation: property removed"),
    ("retype a property", _retype_property, f"{MEMBER}.nik: type changed string -> integer"),
    ("add a required property", _add_required_property, f"{MEMBER}.religion: new required property"),
    ("remove an enum value", _remove_enum_value, f"{MEMBER}.sex: enum values removed: ['P']"),
    ("optional becomes required", _optional_becomes_required,
     f"{MEMBER}.occupation: optional property became required"),
    ("drop an anyOf branch", _drop_null_branch, "data.household.phone: anyOf branch removed (null)"),
    ("change a const", _change_const, "schema_version: const changed 1 -> 2"),
    ("change a pattern", _change_pattern, "data.household.address.rt: pattern changed"),
    ("change a format", _change_format, "occurred_at: format changed 'date-time' -> 'date'"),
    ("tighten a bound", _tighten_bound, f"{MEMBER}.name: maxLength tightened 200 -> 50"),
    ("retype inside a shared $def", _nested_def_envelope, "actor.id: type changed string -> integer"),
    ("default-valued field becomes required", _new_required_in_data,
     "data.warnings: optional property became required"),
    # forward: readers still on the published release would dead-letter what current producers send
    ("add a value to a closed enum", _add_enum_value,
     f"{MEMBER}.relationship: enum values added: ['anak_angkat']{FORWARD_SUFFIX}"),
    ("make a property nullable", _make_nullable, f"{MEMBER}.occupation: anyOf branch added (null){FORWARD_SUFFIX}"),
    ("relax a bound", _relax_bound, f"{MEMBER}.name: maxLength relaxed 200 -> 500{FORWARD_SUFFIX}"),
    ("remove a pattern", _remove_pattern,
     f"data.household.address.rt: pattern '^([0-9]{{1,3}})?$' removed{FORWARD_SUFFIX}"),
    ("required becomes optional", _required_becomes_optional,
     f"{MEMBER}.birth_date: required property became optional{FORWARD_SUFFIX}"),
]


@pytest.mark.parametrize(
    ("mutation", "expected"), [(m, e) for _, m, e in BREAKING], ids=[n for n, _, _ in BREAKING]
)
def test_breaking_change_is_reported(mutation: Callable[[Schema], None], expected: str) -> None:
    published = _published(file_name(HouseholdRegistered))
    current = copy.deepcopy(published)
    mutation(current)
    problems = incompatibilities(published, current)
    assert any(p.startswith(expected) for p in problems), problems
    assert len(problems) == 1, problems


def _add_optional_property(s: Schema) -> None:
    _member(s)["properties"]["religion"] = {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}


def _add_optional_object(s: Schema) -> None:
    _member(s)["properties"]["school"] = {"anyOf": [{"$ref": "#/$defs/Address"}, {"type": "null"}], "default": None}


def _reword(s: Schema) -> None:
    _member(s)["properties"]["nik"]["description"] = "NIK, the 16-digit national id"
    _member(s)["title"] = "HouseholdMember"


COMPATIBLE: list[tuple[str, Callable[[Schema], None]]] = [
    ("add an optional property", _add_optional_property),
    ("add an optional nested object", _add_optional_object),
    ("change only annotations", _reword),
]


@pytest.mark.parametrize("mutation", [m for _, m in COMPATIBLE], ids=[n for n, _ in COMPATIBLE])
def test_compatible_change_is_not_reported(mutation: Callable[[Schema], None]) -> None:
    published = _published(file_name(HouseholdRegistered))
    current = copy.deepcopy(published)
    mutation(current)
    assert incompatibilities(published, current) == []


def test_renamed_defs_are_compared_by_use_not_by_name() -> None:
    published = _published(file_name(HouseholdRegistered))
    current = json.loads(json.dumps(published).replace("#/$defs/Member", "#/$defs/HouseholdMember"))
    current["$defs"]["HouseholdMember"] = current["$defs"].pop("Member")
    assert incompatibilities(published, current) == []


REJECTED = "AidAllocationRejected.v1.json"


def test_an_open_enum_may_gain_and_stop_sending_values() -> None:
    published = _published(REJECTED)
    assert published["$defs"]["RejectionReason"]["x-open-enum"] is True
    current = copy.deepcopy(published)
    current["$defs"]["RejectionReason"]["enum"].append("income_above_threshold")
    assert incompatibilities(published, current) == []
    current["$defs"]["RejectionReason"]["enum"].remove("round_closed")
    assert incompatibilities(published, current) == []


def test_opening_a_closed_enum_is_compatible_but_a_value_added_while_closed_is_not() -> None:
    published = _published(REJECTED)
    del published["$defs"]["RejectionReason"]["x-open-enum"]  # as published before it was marked open
    assert incompatibilities(published, _published(REJECTED)) == []
    current = copy.deepcopy(published)
    current["$defs"]["RejectionReason"]["enum"].append("income_above_threshold")
    assert incompatibilities(published, current) == [
        f"data.reason: enum values added: ['income_above_threshold']{FORWARD_SUFFIX}"]


def test_reader_view_ignores_unknown_properties_and_opens_marked_enums() -> None:
    reader = reader_view(_published(REJECTED))
    assert "additionalProperties" not in reader and "additionalProperties" not in reader["$defs"]["Actor"]
    assert "enum" not in reader["$defs"]["RejectionReason"]
    assert reader["$defs"]["ActorKind"]["enum"] == ["officer", "system", "external"]  # closed stays closed


def test_dictionary_values_and_keys_are_compared() -> None:
    name = "AidRoundClosed.v1.json"
    published = _published(name)
    del published["$defs"]["RejectionReason"]["x-open-enum"]  # a closed enum as dictionary keys
    current = copy.deepcopy(published)
    by_reason = current["$defs"]["RoundTotals"]["properties"]["rejected_by_reason"]
    by_reason["additionalProperties"] = {"type": "string"}
    current["$defs"]["RejectionReason"]["enum"].remove("round_closed")
    problems = incompatibilities(published, current)
    assert "data.totals.rejected_by_reason.*: type changed integer -> string" in problems
    assert "data.totals.rejected_by_reason.(keys): enum values removed: ['round_closed']" in problems
    assert "data.reason: enum values removed: ['round_closed']" not in problems  # not in this event


def test_closing_an_open_dictionary_is_reported() -> None:
    published = _published("CaseAssessed.v1.json")
    current = copy.deepcopy(published)
    current["$defs"]["CaseAssessedData"]["properties"]["inputs"]["additionalProperties"] = False
    assert incompatibilities(published, current) == ["data.inputs: additional properties no longer allowed"]


def test_recursive_schemas_terminate() -> None:
    node: Schema = {
        "$defs": {"Node": {"type": "object", "properties": {
            "name": {"type": "string"},
            "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
        }, "required": ["name"]}},
        "$ref": "#/$defs/Node",
    }
    changed = copy.deepcopy(node)
    changed["$defs"]["Node"]["properties"]["name"]["type"] = "integer"
    assert incompatibilities(node, copy.deepcopy(node)) == []
    assert incompatibilities(node, changed) == ["name: type changed string -> integer"]


def test_registry_check_reports_a_mutated_published_schema(tmp_path: Path) -> None:
    shutil.copytree(LAYOUT.base, SchemaLayout(tmp_path).base)
    path = SchemaLayout(tmp_path).schema_path(HouseholdRegistered)
    published = json.loads(path.read_text(encoding="utf-8"))
    published["$defs"]["Member"]["properties"]["nickname"] = {"type": "string"}
    path.write_text(json.dumps(published), encoding="utf-8")
    assert incompatibilities_with_published(tmp_path) == [
        "HouseholdRegistered.v1.json: data.household.members[].nickname: property removed"
    ]
