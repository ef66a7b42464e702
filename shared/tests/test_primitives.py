"""Domain primitives and the envelope rules every contract shares; decoding failures are explicit."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from puskesos_shared.contracts import (
    ComplaintFiled,
    HouseholdRegistered,
    InvalidMessage,
    UnknownEventVersion,
    decode_event,
)
from puskesos_shared.contracts.examples import EXAMPLES
from puskesos_shared.contracts.intake import Member, Relationship
from puskesos_shared.contracts.primitives import Sex, check_kk_number, check_nik
from pydantic import ValidationError


def _example(event_type: str) -> dict[str, Any]:
    dumped: dict[str, Any] = EXAMPLES[event_type]().model_dump(mode="json")
    return dumped


def _body(raw: Any) -> bytes:
    return json.dumps(raw).encode()


# NIK and KK ---------------------------------------------------------------------------------


@pytest.mark.parametrize("nik", ["3573010101800003", "3573015705850002"])  # male; female (day + 40)
def test_valid_nik(nik: str) -> None:
    assert check_nik(nik) == nik


@pytest.mark.parametrize(
    ("nik", "reason"),
    [
        ("357301010180000", "format"),  # 15 digits
        ("9973010101800003", "province"),
        ("3573013213800003", "birth_date"),
        ("3573010101800000", "serial"),
    ],
)
def test_invalid_nik_gives_lokal_id_reason(nik: str, reason: str) -> None:
    with pytest.raises(ValueError, match=rf"invalid NIK \(.*{reason}:"):
        check_nik(nik)


def test_valid_kk_number() -> None:
    assert check_kk_number("3573010502200001") == "3573010502200001"


@pytest.mark.parametrize(
    ("kk", "reason"),
    [
        ("357301050220001", "format"),  # 15 digits
        ("35730105022000a1", "format"),
        ("9973010502200001", "province"),
        ("3500010502200001", "wilayah"),
        ("3573013213200001", "issue_date"),
        ("3573010502200000", "serial"),
    ],
)
def test_invalid_kk_number(kk: str, reason: str) -> None:
    with pytest.raises(ValueError, match=rf"invalid KK number \({reason}:"):
        check_kk_number(kk)


def test_models_apply_the_nik_check() -> None:
    with pytest.raises(ValidationError, match="province"):
        Member(nik="9973010101800003", name="X", birth_date=dt.date(1980, 1, 1), sex=Sex.MALE,
               relationship=Relationship.HEAD)


# envelope rules -----------------------------------------------------------------------------


def test_extra_fields_are_rejected() -> None:
    raw = _example("ComplaintFiled")
    with pytest.raises(ValidationError) as top:
        ComplaintFiled.model_validate({**raw, "priority": "high"})
    assert top.value.errors()[0]["type"] == "extra_forbidden"
    raw["data"]["complainant"]["religion"] = "islam"
    with pytest.raises(ValidationError, match=r"data\.complainant\.religion"):
        ComplaintFiled.model_validate(raw)


def test_events_are_frozen() -> None:
    event = EXAMPLES["HouseholdRegistered"]()
    assert isinstance(event, HouseholdRegistered)
    with pytest.raises(ValidationError, match="frozen"):
        event.correlation_id = "case:other"
    with pytest.raises(ValidationError, match="frozen"):
        event.data.household.address.rt = "009"
    assert isinstance(event.data.household.members, tuple)


def test_naive_occurred_at_is_rejected() -> None:
    raw = _example("ComplaintFiled")
    with pytest.raises(ValidationError) as err:
        ComplaintFiled.model_validate({**raw, "occurred_at": dt.datetime(2026, 11, 2, 9, 30)})
    assert err.value.errors()[0]["type"] == "timezone_aware"
    with pytest.raises(InvalidMessage, match="occurred_at"):
        decode_event(_body({**raw, "occurred_at": "2026-11-02T09:30:00"}))


# decode_event -------------------------------------------------------------------------------


def test_decode_event_round_trips_every_example() -> None:
    for factory in EXAMPLES.values():
        event = factory()
        assert decode_event(event.model_dump_json().encode()) == event


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", b""])
def test_malformed_json_is_invalid(body: bytes) -> None:
    with pytest.raises(InvalidMessage, match="malformed JSON"):
        decode_event(body)


@pytest.mark.parametrize("raw", [[1, 2], "HouseholdRegistered", 42, None])
def test_non_object_json_is_invalid(raw: Any) -> None:
    with pytest.raises(InvalidMessage, match="JSON object"):
        decode_event(_body(raw))


def test_missing_routing_fields_are_invalid() -> None:
    raw = _example("ComplaintFiled")
    del raw["schema_version"]
    with pytest.raises(InvalidMessage, match="schema_version"):
        decode_event(_body(raw))


def test_unknown_event_type_is_invalid() -> None:
    with pytest.raises(UnknownEventVersion, match="unknown event_type 'HouseholdDemolished'"):
        decode_event(_body({**_example("ComplaintFiled"), "event_type": "HouseholdDemolished"}))


def test_unknown_schema_version_names_the_known_versions() -> None:
    with pytest.raises(UnknownEventVersion) as err:
        decode_event(_body({**_example("ComplaintFiled"), "schema_version": 7}))
    assert "schema_version 7" in err.value.reason
    assert "[1]" in err.value.reason
    assert isinstance(err.value, InvalidMessage)


def test_contract_violation_gives_the_field_path_not_the_value() -> None:
    bad_nik = "9973010101800003"
    raw = _example("HouseholdRegistered")
    raw["data"]["household"]["members"][1]["nik"] = bad_nik
    with pytest.raises(InvalidMessage) as err:
        decode_event(_body(raw))
    reason = err.value.reason
    assert "HouseholdRegistered v1 does not match its contract" in reason
    assert "data.household.members.1.nik" in reason
    assert "province" in reason
    assert bad_nik not in reason
    assert bad_nik not in str(err.value)


def test_contract_violation_does_not_echo_other_personal_values() -> None:
    raw = _example("ComplaintFiled")
    raw["data"]["complainant"]["contact_phone"] = "0812-3456-7890"
    raw["data"]["description"] = ""
    with pytest.raises(InvalidMessage) as err:
        decode_event(_body(raw))
    assert "data.complainant.contact_phone" in err.value.reason
    assert "data.description" in err.value.reason
    assert "0812-3456-7890" not in err.value.reason


def test_decode_event_can_restrict_to_expected_types() -> None:
    body = EXAMPLES["ComplaintFiled"]().model_dump_json().encode()
    assert isinstance(decode_event(body, expected=[ComplaintFiled]), ComplaintFiled)
    with pytest.raises(InvalidMessage, match="not consumed here"):
        decode_event(body, expected=[HouseholdRegistered])
