"""Pure rules: NIK warnings, changed fields, transfers, case numbers, the progress fold."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from intake_testkit import household, member, nik
from puskesos_intake.domain.complaints import case_year, format_case_number, village_year
from puskesos_intake.domain.households import (
    TransferRefused,
    changed_fields,
    household_event_id,
    household_id,
    nik_warnings,
    with_member,
    without_member,
)
from puskesos_intake.domain.progress import ComplaintStatus, Progress, apply, entry_for, fold
from puskesos_shared.contracts.examples import example
from puskesos_shared.contracts.intake import Household, Member, Relationship
from pydantic import ValidationError


def test_impossible_nik_is_rejected_with_lokal_reason() -> None:
    data = household(members=[member("3573013213900003", "kepala_keluarga")])  # day 32, month 13
    with pytest.raises(ValidationError) as info:
        Household.model_validate(data)
    text = str(info.value)
    assert "invalid NIK" in text and "birth_date" in text


def test_nik_disagreeing_with_member_gives_warnings_not_errors() -> None:
    female_nik = nik(dt.date(1990, 3, 4), female=True)
    hh = Household.model_validate(household(members=[
        member(female_nik, "kepala_keluarga", birth=dt.date(1991, 3, 4), sex="L"),
    ]))
    codes = {(w.code, w.field) for w in nik_warnings(hh)}
    assert codes == {("nik_sex_mismatch", "members.0.sex"), ("nik_birth_date_mismatch", "members.0.birth_date")}
    consistent = Household.model_validate(household(members=[member(nik(dt.date(1980, 1, 1)), "kepala_keluarga")]))
    assert nik_warnings(consistent) == ()


def test_two_digit_year_in_nik_matches_either_century() -> None:
    hh = Household.model_validate(household(members=[
        member(nik(dt.date(2012, 3, 20)), "kepala_keluarga", birth=dt.date(2012, 3, 20)),
    ]))
    assert nik_warnings(hh) == ()


def test_changed_fields_match_members_by_nik() -> None:
    head, spouse, child = nik(), nik(dt.date(1985, 5, 17), female=True), nik(dt.date(2012, 3, 20))
    base = household(members=[member(head, "kepala_keluarga"),
                              member(spouse, "pasangan", birth=dt.date(1985, 5, 17), sex="P")])
    old = Household.model_validate(base)
    new_data = {**base, "socio_economic": {**base["socio_economic"], "monthly_income": 900_000},
                "members": [member(head, "kepala_keluarga"), {**base["members"][1], "name": "Siti A."},
                            member(child, "anak", birth=dt.date(2012, 3, 20))]}
    new = Household.model_validate(new_data)
    assert changed_fields(old, new) == ("members", "members.1.name", "socio_economic.monthly_income")
    assert changed_fields(old, old) == ()


def test_member_moves_follow_the_household_rules() -> None:
    hh = example("HouseholdRegistered").data.household  # type: ignore[attr-defined]
    with pytest.raises(TransferRefused, match="head"):
        without_member(hh, hh.head.nik)
    child = hh.members[2]
    smaller = without_member(hh, child.nik)
    assert [m.nik for m in smaller.members] == [m.nik for m in hh.members[:2]]
    with pytest.raises(TransferRefused, match="already a member"):
        with_member(hh, child, Relationship.CHILD)
    with pytest.raises(TransferRefused, match="already has a head"):
        with_member(smaller, child, Relationship.HEAD)
    moved = with_member(smaller, child, Relationship.GRANDCHILD)
    assert moved.members[-1].relationship is Relationship.GRANDCHILD
    assert isinstance(moved.members[-1], Member)


def test_ids_are_deterministic() -> None:
    kk = "3573010502200001"
    assert household_id(kk) == household_id(kk)
    assert household_event_id(household_id(kk), 2) != household_event_id(household_id(kk), 3)


def test_case_numbers_use_the_village_clock_and_five_digits() -> None:
    new_year_wib = dt.datetime(2026, 12, 31, 17, 30, tzinfo=dt.UTC)  # 00:30 on 1 Jan 2027 in Malang (UTC+7)
    assert case_year("35.73.01.1001", new_year_wib) == 2027
    assert case_year("35.73.01.1001", new_year_wib - dt.timedelta(hours=1)) == 2026
    assert case_year("51.71.01.1001", dt.datetime(2026, 12, 31, 16, 30, tzinfo=dt.UTC)) == 2027  # Bali, UTC+8
    vy = village_year("35.73.01.1001", new_year_wib)
    assert format_case_number(vy, 7) == "3573011001/2027/00007"
    assert format_case_number(vy, 123456) == "3573011001/2027/123456"


def test_progress_fold_is_order_independent_and_closed_stays_closed() -> None:
    events = [example(t) for t in ("CaseOpened", "CaseAssessed", "ReferralIssued", "ReferralResolved",
                                   "CaseEscalated", "CaseClosed")]
    forward = Progress()
    for e in events:
        forward = apply(forward, e)
    backward = Progress()
    for e in reversed(events):
        backward = apply(backward, e)
    assert forward == backward
    assert forward.status is ComplaintStatus.CLOSED
    assert forward.case_id == str(events[0].data.case_id)  # type: ignore[attr-defined]
    assert apply(forward, events[1]) is forward  # a redelivery changes nothing
    partial = fold([entry_for(events[0]), entry_for(events[2])])
    assert partial.status is ComplaintStatus.REFERRED
    late = events[1].model_copy(update={"event_id": uuid.uuid4(),
                                        "occurred_at": events[0].occurred_at + dt.timedelta(seconds=1)})
    assert fold([*partial.history, entry_for(late)]).status is ComplaintStatus.REFERRED
