"""The household form (pendataan): form fields <-> the intake API's ``Household``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from lokal import normalize_phone
from puskesos_shared.contracts.intake import (
    Asset,
    Electricity,
    FloorType,
    Relationship,
    RoofType,
    WallType,
    WaterSource,
)
from starlette.datastructures import FormData

DEFAULT_MEMBER_ROWS = 3
MAX_MEMBER_ROWS = 30
MEMBER_FIELDS = ("nik", "name", "birth_date", "sex", "relationship")
SCALAR_FIELDS = ("kk_number", "village_code", "street", "rt", "rw", "phone", "monthly_income", "floor", "wall",
                 "roof", "water", "electricity", "dependants")
#: The form's name of an API location that differs from it.
API_TO_FORM = {f"address.{f}": f for f in ("village_code", "street", "rt", "rw")} | {
    f"socio_economic.{f}": f for f in ("monthly_income", "floor", "wall", "roof", "water", "electricity",
                                       "dependants", "assets")}

CHOICES: dict[str, tuple[str, ...]] = {
    "floor": tuple(v.value for v in FloorType), "wall": tuple(v.value for v in WallType),
    "roof": tuple(v.value for v in RoofType), "water": tuple(v.value for v in WaterSource),
    "electricity": tuple(v.value for v in Electricity), "assets": tuple(v.value for v in Asset),
    "relationship": tuple(v.value for v in Relationship), "sex": ("L", "P"),
}


class HouseholdForm:
    """The values as typed (strings), by form field name; ``rows`` member rows."""

    def __init__(self, values: dict[str, str], assets: list[str], rows: int) -> None:
        self.values, self.assets, self.rows = values, assets, rows

    @classmethod
    def empty(cls) -> HouseholdForm:
        return cls({}, [], DEFAULT_MEMBER_ROWS)

    @classmethod
    def from_form(cls, form: FormData) -> HouseholdForm:
        try:
            rows = int(str(form.get("member_rows", DEFAULT_MEMBER_ROWS)))
        except ValueError:
            rows = DEFAULT_MEMBER_ROWS
        rows = min(max(rows, 1), MAX_MEMBER_ROWS)
        values = {name: str(form.get(name, "")).strip() for name in SCALAR_FIELDS}
        for i in range(rows):
            for f in MEMBER_FIELDS:
                values[f"members.{i}.{f}"] = str(form.get(f"members.{i}.{f}", "")).strip()
        assets = [a for a in form.getlist("assets") if isinstance(a, str) and a in CHOICES["assets"]]
        return cls(values, assets, rows)

    @classmethod
    def from_record(cls, household: Mapping[str, Any]) -> HouseholdForm:
        address, socio = household.get("address", {}), household.get("socio_economic", {})
        values = {"kk_number": str(household.get("kk_number", "")), "phone": str(household.get("phone") or "")}
        values |= {f: str(address.get(f, "")) for f in ("village_code", "street", "rt", "rw")}
        values |= {f: str(socio.get(f, "")) for f in ("monthly_income", "floor", "wall", "roof", "water",
                                                       "electricity", "dependants")}
        members = list(household.get("members", []))
        for i, member in enumerate(members):
            for f in MEMBER_FIELDS:
                values[f"members.{i}.{f}"] = str(member.get(f, ""))
        return cls(values, list(socio.get("assets", [])), max(len(members), 1))

    def member_filled(self, i: int) -> bool:
        return any(self.values.get(f"members.{i}.{f}") for f in ("nik", "name", "birth_date"))

    def body(self) -> tuple[dict[str, Any], dict[str, str]]:
        """The ``Household`` to send and the form name of each API location that moved (members are
        renumbered when empty rows are left out)."""
        v = self.values
        members: list[dict[str, str]] = []
        rename = dict(API_TO_FORM)
        for i in range(self.rows):
            if not self.member_filled(i):
                continue
            j = len(members)
            members.append({f: v.get(f"members.{i}.{f}", "") for f in MEMBER_FIELDS})
            for f in MEMBER_FIELDS:
                rename[f"members.{j}.{f}"] = f"members.{i}.{f}"
            if not members[-1]["sex"]:
                members[-1].pop("sex")
        body: dict[str, Any] = {
            "kk_number": v.get("kk_number", ""),
            "address": {"village_code": v.get("village_code", ""), "street": v.get("street", ""),
                        "rt": v.get("rt", ""), "rw": v.get("rw", "")},
            "members": members,
            "socio_economic": {"monthly_income": _number(v.get("monthly_income", "")),
                               "floor": v.get("floor", ""), "wall": v.get("wall", ""), "roof": v.get("roof", ""),
                               "water": v.get("water", ""), "electricity": v.get("electricity", ""),
                               "assets": self.assets, "dependants": _number(v.get("dependants", ""))},
        }
        if v.get("phone"):
            body["phone"] = normalize_phone(v["phone"]) or v["phone"]
        return body, rename


def _number(text: str) -> int | str:
    """``Rp 1.250.000`` or ``1250000`` as a whole number; anything else as typed (the API names the field)."""
    digits = re.sub(r"^rp\s*|[.\s]", "", text.strip().lower())
    return int(digits) if digits.isdigit() else text
