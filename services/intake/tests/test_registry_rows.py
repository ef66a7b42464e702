"""The registry CSV's pure rules: rows <-> household, and rejections that point at row and column."""

from __future__ import annotations

from intake_testkit import household, member, nik
from puskesos_intake.domain.registry_rows import (
    Group,
    Rejection,
    Row,
    group_rows,
    header_problems,
    parse_household,
    rows_of,
)
from puskesos_shared.contracts.intake import Household


def group_of(body: dict[str, object], first_line: int = 2) -> Group:
    rows = rows_of(Household.model_validate(body))
    return next(group_rows(Row(first_line + i, r) for i, r in enumerate(rows)))


def test_rows_round_trip_to_the_same_household() -> None:
    body = household()
    body["members"].append(member(nik(), "anak"))
    assert parse_household(group_of(body)) == Household.model_validate(body)


def test_later_rows_may_leave_household_columns_empty_but_not_contradict_them() -> None:
    body = household()
    group = group_of(body)
    blanked = Group(group.kk_number, (group.rows[0], Row(group.rows[1].number, {
        **{k: "" for k in group.rows[1].fields}, **{k: group.rows[1].fields[k] for k in ("kk_number", "nik", "name",
                                                                                         "birth_date", "sex",
                                                                                         "relationship")}})))
    assert parse_household(blanked) == Household.model_validate(body)
    contradicting = Group(group.kk_number, (group.rows[0], Row(3, {**group.rows[1].fields, "rw": "009"})))
    assert parse_household(contradicting) == [Rejection(3, "rw", "household_columns_differ",
                                                        "differs from the first row of this KK (row 2); leave it "
                                                        "empty or repeat the same value")]


def test_rejections_name_row_and_column_never_the_value() -> None:
    body = household()
    group = group_of(body, first_line=10)
    bad_nik = "3573013201800001"  # day 32
    rows = (group.rows[0], Row(11, {**group.rows[1].fields, "nik": bad_nik, "sex": "X"}))
    rejected = parse_household(Group(group.kk_number, rows))
    assert isinstance(rejected, list)
    assert {(r.row, r.column) for r in rejected} == {(11, "nik"), (11, "sex")}
    assert all(bad_nik not in r.reason for r in rejected)
    income = (Row(10, {**group.rows[0].fields, "monthly_income": "banyak"}),
              Row(11, {**group.rows[1].fields, "monthly_income": ""}))
    rejected = parse_household(Group(group.kk_number, income))
    assert isinstance(rejected, list) and [(r.row, r.column) for r in rejected] == [(10, "monthly_income")]
    no_head = (Row(10, {**group.rows[0].fields, "relationship": "anak"}), group.rows[1])
    rejected = parse_household(Group(group.kk_number, no_head))
    assert isinstance(rejected, list) and [(r.row, r.column) for r in rejected] == [(10, "relationship")]


def test_groups_are_consecutive_rows_of_one_kk_and_headers_are_checked() -> None:
    rows = [Row(2, {"kk_number": "a"}), Row(3, {"kk_number": "a "}), Row(4, {"kk_number": "b"}),
            Row(5, {"kk_number": "a"})]
    assert [(g.kk_number, g.first_row, len(g.rows)) for g in group_rows(rows)] == [("a", 2, 2), ("b", 4, 1),
                                                                                  ("a", 5, 1)]
    assert header_problems(["kk_number", "nik", "nik", "colour"])[:1] == ["missing column village_code"]
    assert "unknown column at position 2" in header_problems(["nik", "colour"])  # by place: never echoed
    assert "column nik appears twice" in header_problems(["nik", "nik"])
