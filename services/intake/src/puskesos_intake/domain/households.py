"""The household registry's pure rules: NIK warnings, what changed, moving a member, the events.

No I/O here: ids, clocks and the current state come in as arguments.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from lokal import parse_nik
from puskesos_shared.contracts.envelope import Actor
from puskesos_shared.contracts.intake import (
    DataWarning,
    Household,
    HouseholdChangeKind,
    HouseholdRegistered,
    HouseholdRegisteredData,
    HouseholdUpdated,
    HouseholdUpdatedData,
    Member,
    Relationship,
)
from puskesos_shared.contracts.registry import describe_validation_error
from puskesos_shared.ids import stable_id
from pydantic import ValidationError


def household_id(kk_number: str) -> uuid.UUID:
    """A household's id follows from its KK number: registering the same KK twice is one household."""
    return stable_id("household", kk_number)


def household_event_id(hid: uuid.UUID | str, revision: int) -> uuid.UUID:
    """Each revision of a household produces at most one event, so its id is derived from both."""
    return stable_id("household-event", hid, revision)


def correlation_of(kk_number: str) -> str:
    return f"household:{kk_number}"


def nik_warnings(household: Household) -> tuple[DataWarning, ...]:
    """Facts the NIK contradicts but that are accepted (NIKs are not reissued when a record is corrected).

    Impossible NIKs never get here: the contract rejects them with lokal-id's reason.
    """
    out: list[DataWarning] = []
    for i, member in enumerate(household.members):
        info = parse_nik(member.nik)
        for w in info.warnings:
            out.append(DataWarning(code=f"nik_{w.code}"[:50], field=f"members.{i}.nik", message=w.message[:500]))
        if info.gender and info.gender != member.sex.value:
            out.append(DataWarning(
                code="nik_sex_mismatch", field=f"members.{i}.sex",
                message=f"the NIK encodes sex {info.gender} but the member is recorded as {member.sex.value}; "
                        "accepted as recorded",
            ))
        if info.birth_date:
            encoded = dt.date.fromisoformat(info.birth_date)
            recorded = member.birth_date
            # the NIK carries a two-digit year: compare day, month and the year within its century
            if (encoded.day, encoded.month, encoded.year % 100) != (recorded.day, recorded.month, recorded.year % 100):
                out.append(DataWarning(
                    code="nik_birth_date_mismatch", field=f"members.{i}.birth_date",
                    message=f"the NIK encodes birth date {encoded:%d-%m-%y} but the member is recorded as "
                            f"{recorded:%d-%m-%Y}; accepted as recorded",
                ))
    return tuple(out)


def niks_of(household: Household | None) -> set[str]:
    return {m.nik for m in household.members} if household is not None else set()


def _flat(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(_flat(inner, f"{prefix}.{key}" if prefix else key))
        return out
    return {prefix: value}


def changed_fields(old: Household, new: Household) -> tuple[str, ...]:
    """Dotted paths that differ. Members are matched by NIK; positions are those in ``new``.

    ``members`` itself is listed when members were added, removed or reordered.
    """
    before = old.model_dump(mode="json", exclude={"members"})
    after = new.model_dump(mode="json", exclude={"members"})
    flat_before, flat_after = _flat(before, ""), _flat(after, "")
    paths = {k for k in flat_before.keys() | flat_after.keys() if flat_before.get(k) != flat_after.get(k)}
    old_members = {m.nik: m for m in old.members}
    if [m.nik for m in old.members] != [m.nik for m in new.members]:
        paths.add("members")
    for i, member in enumerate(new.members):
        previous = old_members.get(member.nik)
        if previous is None:
            continue
        a, b = previous.model_dump(mode="json"), member.model_dump(mode="json")
        paths.update(f"members.{i}.{k}" for k in b if a.get(k) != b.get(k))
    return tuple(sorted(paths))


class TransferRefused(ValueError):
    """A transfer that the households' rules do not allow (moving the head, a second head, too many members)."""


def without_member(household: Household, nik: str) -> Household:
    member = next((m for m in household.members if m.nik == nik), None)
    if member is None:
        raise TransferRefused("the person is not a member of this household")
    if member.relationship is Relationship.HEAD:
        raise TransferRefused("the head of the household cannot be moved out; register the new head "
                              "(PUT /households) first")
    return household.model_copy(update={"members": tuple(m for m in household.members if m.nik != nik)})


def with_member(household: Household, member: Member, relationship: Relationship) -> Household:
    if any(m.nik == member.nik for m in household.members):
        raise TransferRefused("the person is already a member of the receiving household")
    if relationship is Relationship.HEAD:
        raise TransferRefused("the receiving household already has a head; move the person in with another "
                              "relationship and change the head with PUT /households")
    moved = member.model_copy(update={"relationship": relationship})
    try:
        return Household.model_validate({**household.model_dump(), "members": (*household.members, moved)})
    except ValidationError as exc:  # its text carries the values; the description does not
        raise TransferRefused(f"the receiving household would not be valid: {describe_validation_error(exc)}"
                              ) from None


def registered_event(*, hid: uuid.UUID, household: Household, warnings: Sequence[DataWarning], actor: Actor,
                     at: dt.datetime, causation_id: str | None) -> HouseholdRegistered:
    return HouseholdRegistered(
        event_id=household_event_id(hid, 1), occurred_at=at, producer="intake",
        correlation_id=correlation_of(household.kk_number), causation_id=causation_id, actor=actor,
        village_code=household.address.village_code,
        data=HouseholdRegisteredData(household_id=hid, household=household, warnings=tuple(warnings), revision=1),
    )


def updated_event(*, hid: uuid.UUID, household: Household, revision: int, change: HouseholdChangeKind,
                  fields: Sequence[str], warnings: Sequence[DataWarning], actor: Actor, at: dt.datetime,
                  causation_id: str | None, transferred_nik: str | None = None,
                  counterpart_kk: str | None = None) -> HouseholdUpdated:
    return HouseholdUpdated(
        event_id=household_event_id(hid, revision), occurred_at=at, producer="intake",
        correlation_id=correlation_of(household.kk_number), causation_id=causation_id, actor=actor,
        village_code=household.address.village_code,
        data=HouseholdUpdatedData(
            household_id=hid, household=household, change=change, changed_fields=tuple(fields),
            transferred_nik=transferred_nik, counterpart_kk=counterpart_kk, warnings=tuple(warnings),
            revision=revision,
        ),
    )
