"""The registry CSV: one row per member, as on a family card (KK); a household is its KK's rows.

Pure: turns rows into a ``Household`` (the registration's contract, so lokal-id validates every
NIK and KK exactly as ``POST /households`` does) or into rejections that name the row, the
column and the rule, never the value (the report must not echo personal data).

Columns (header names, any order, case-insensitive):

* household: ``kk_number``, ``village_code``, ``street``, ``rt``, ``rw``, ``phone``,
  ``monthly_income``, ``floor``, ``wall``, ``roof``, ``water``, ``electricity``,
  ``assets`` (``;``-separated), ``dependants``;
* member: ``nik``, ``name``, ``birth_date`` (YYYY-MM-DD), ``sex`` (L/P), ``relationship``,
  ``disability``, ``occupation``.

A KK's rows are consecutive. The household columns are read from its first row; a later row may
leave them empty or repeat them, and a value that differs rejects the household.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from puskesos_shared.contracts.intake import Household
from pydantic import ValidationError

HOUSEHOLD_COLUMNS = ("kk_number", "village_code", "street", "rt", "rw", "phone", "monthly_income", "floor", "wall",
                     "roof", "water", "electricity", "assets", "dependants")
MEMBER_COLUMNS = ("nik", "name", "birth_date", "sex", "relationship", "disability", "occupation")
COLUMNS = HOUSEHOLD_COLUMNS + MEMBER_COLUMNS
REQUIRED_COLUMNS = ("kk_number", "village_code", "monthly_income", "floor", "wall", "roof", "water", "electricity",
                    "dependants", "nik", "name", "birth_date", "sex", "relationship")
ASSET_SEPARATOR = ";"
#: Where a household-level error is reported: the contract's path -> the CSV column.
_PATHS = {"address": "", "socio_economic": "", "members": "relationship"}


@dataclass(frozen=True, slots=True)
class Row:
    number: int  # the line in the file (the header is line 1)
    fields: dict[str, str]


@dataclass(frozen=True, slots=True)
class Rejection:
    row: int
    column: str
    code: str
    reason: str


@dataclass(frozen=True, slots=True)
class Group:
    """One KK's rows."""

    kk_number: str
    rows: tuple[Row, ...]

    @property
    def first_row(self) -> int:
        return self.rows[0].number


def header_problems(columns: Sequence[str]) -> list[str]:
    """What makes a header unusable: missing required columns, unknown or repeated ones. An unknown column is
    named by its position (1 is the first): an answer never repeats what was sent."""
    problems = [f"missing column {c}" for c in REQUIRED_COLUMNS if c not in columns]
    problems += [f"unknown column at position {i}" for i, c in enumerate(columns, start=1) if c not in COLUMNS]
    problems += [f"column {c} appears twice" for c in sorted(set(columns) & set(COLUMNS)) if columns.count(c) > 1]
    return problems


def group_rows(rows: Iterable[Row]) -> Iterator[Group]:
    """Consecutive rows with the same ``kk_number`` (stripped) form one group."""
    current: list[Row] = []
    for row in rows:
        if current and row.fields.get("kk_number", "").strip() != current[0].fields.get("kk_number", "").strip():
            yield Group(current[0].fields.get("kk_number", "").strip(), tuple(current))
            current = []
        current.append(row)
    if current:
        yield Group(current[0].fields.get("kk_number", "").strip(), tuple(current))


def _value(row: Row, column: str) -> str:
    return row.fields.get(column, "").strip()


def _member(row: Row) -> dict[str, object]:
    member: dict[str, object] = {c: _value(row, c) for c in ("nik", "name", "birth_date", "sex", "relationship")}
    for optional in ("disability", "occupation"):
        if _value(row, optional):
            member[optional] = _value(row, optional)
    return member


def _household_body(first: Row, members: list[dict[str, object]]) -> dict[str, object]:
    v = {c: _value(first, c) for c in HOUSEHOLD_COLUMNS}
    assets = [a.strip() for a in v["assets"].split(ASSET_SEPARATOR) if a.strip()]
    return {
        "kk_number": v["kk_number"],
        "address": {"village_code": v["village_code"], "street": v["street"], "rt": v["rt"], "rw": v["rw"]},
        "members": members,
        "socio_economic": {"monthly_income": v["monthly_income"], "floor": v["floor"], "wall": v["wall"],
                           "roof": v["roof"], "water": v["water"], "electricity": v["electricity"],
                           "assets": assets, "dependants": v["dependants"]},
        "phone": v["phone"] or None,
    }


def _inconsistent(group: Group) -> list[Rejection]:
    first = group.rows[0]
    out: list[Rejection] = []
    for row in group.rows[1:]:
        for column in HOUSEHOLD_COLUMNS:
            value = _value(row, column)
            if value and value != _value(first, column):
                out.append(Rejection(row.number, column, "household_columns_differ",
                                     f"differs from the first row of this KK (row {first.number}); leave it empty "
                                     "or repeat the same value"))
    return out


def _located(group: Group, loc: Sequence[int | str]) -> tuple[int, str]:
    """The row and column a contract error path points at."""
    if len(loc) >= 2 and loc[0] == "members" and isinstance(loc[1], int) and loc[1] < len(group.rows):
        return group.rows[loc[1]].number, str(loc[2]) if len(loc) > 2 else "relationship"
    if not loc:
        return group.first_row, "relationship"  # the household's own rules (one head, unique NIKs)
    column = str(loc[-1]) if loc[0] in _PATHS and len(loc) > 1 else str(loc[0])
    if loc[0] == "socio_economic" and len(loc) > 2:  # an asset's position
        column = str(loc[1])
    return group.first_row, column if column in COLUMNS else _PATHS.get(column, column)


def parse_household(group: Group) -> Household | list[Rejection]:
    """The household of a KK's rows, or why it cannot be registered (one entry per problem)."""
    inconsistent = _inconsistent(group)
    if inconsistent:
        return inconsistent
    body = _household_body(group.rows[0], [_member(row) for row in group.rows])
    try:
        return Household.model_validate(body)
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False)
        if any(len(e["loc"]) > 1 and e["loc"][0] == "members" for e in errors):
            # a member that failed is left out of the tuple; the resulting "too short" says nothing more
            errors = [e for e in errors if tuple(e["loc"]) != ("members",)]
        out: list[Rejection] = []
        for error in errors:
            row, column = _located(group, error["loc"])
            reason = str(error["msg"]).removeprefix("Value error, ")
            out.append(Rejection(row, column, str(error["type"])[:50], reason[:300]))
        return out


def rows_of(household: Household) -> list[dict[str, str]]:
    """The CSV rows of a household (the inverse of ``parse_household``; used to write sample files)."""
    socio = household.socio_economic
    shared = {
        "kk_number": household.kk_number, "village_code": household.address.village_code,
        "street": household.address.street, "rt": household.address.rt, "rw": household.address.rw,
        "phone": household.phone or "", "monthly_income": str(socio.monthly_income), "floor": socio.floor.value,
        "wall": socio.wall.value, "roof": socio.roof.value, "water": socio.water.value,
        "electricity": socio.electricity.value, "assets": ASSET_SEPARATOR.join(a.value for a in socio.assets),
        "dependants": str(socio.dependants),
    }
    return [{**shared, "nik": m.nik, "name": m.name, "birth_date": m.birth_date.isoformat(), "sex": m.sex.value,
             "relationship": m.relationship.value, "disability": m.disability.value, "occupation": m.occupation}
            for m in household.members]
