"""Strings in two catalogs (``i18n/id.json``, ``i18n/en.json``; Bahasa Indonesia first) and the ways
Indonesians write money, dates and working days (lokal-id)."""

from __future__ import annotations

import datetime as dt
import json
from functools import cache
from pathlib import Path
from typing import Any

from lokal import count_working_days, format_rupiah

LANGUAGES = ("id", "en")
DEFAULT_LANGUAGE = "id"
CATALOG_DIR = Path(__file__).parent / "i18n"
#: Indonesia's western time (WIB): what "today" is for a working-day count when no village says otherwise.
WIB = dt.timezone(dt.timedelta(hours=7))


@cache
def catalog(lang: str) -> dict[str, str]:
    """``{lang}.json`` and the area catalogs ``{lang}.<area>.json`` (casework, rounds, audit...), merged;
    a key defined twice is an error (``catalog_files`` lets a test check that)."""
    merged: dict[str, str] = {}
    for path in catalog_files(lang):
        for key, text in json.loads(path.read_text(encoding="utf-8")).items():
            if key in merged:
                raise ValueError(f"catalog key {key!r} of {path.name} is defined in another {lang} catalog too")
            merged[key] = text
    return merged


def catalog_files(lang: str) -> list[Path]:
    return [CATALOG_DIR / f"{lang}.json", *sorted(CATALOG_DIR.glob(f"{lang}.*.json"))]


def language(value: str | None) -> str:
    return value if value in LANGUAGES else DEFAULT_LANGUAGE


class Translator:
    def __init__(self, lang: str) -> None:
        self.lang = language(lang)
        self.strings = catalog(self.lang)

    def __call__(self, key: str, **values: Any) -> str:
        text = self.strings.get(key) or catalog(DEFAULT_LANGUAGE).get(key) or key
        return text.format(**values) if values else text

    def has(self, key: str) -> bool:
        return key in self.strings

    def enum(self, group: str, value: object) -> str:
        """A code (``complaint category``, ``status``, ...) in words, or the code when the catalog lacks it."""
        key = f"{group}.{value}"
        return self(key) if self.has(key) else str(value)

    # -- formats -------------------------------------------------------------------------------------
    def date(self, value: dt.date | dt.datetime | str | None) -> str:
        """``5 Desember 2026`` (day without a leading zero, month in words)."""
        day = _as_date(value)
        if day is None:
            return ""
        return f"{day.day} {self(f'month.{day.month}')} {day.year}"

    def datetime(self, value: dt.datetime | str | None) -> str:
        """``5 Desember 2026 14.05 WIB``: Indonesian writes the time with a dot."""
        moment = _as_datetime(value)
        if moment is None:
            return ""
        local = moment.astimezone(WIB)
        sep = "." if self.lang == "id" else ":"
        return f"{self.date(local)} {local:%H}{sep}{local:%M} WIB"

    def rupiah(self, amount: int | float | None) -> str:
        return "" if amount is None else format_rupiah(amount)

    def working_days_since(self, value: dt.datetime | dt.date | str | None, today: dt.date | None = None) -> str:
        """Working days (Indonesian holidays and cuti bersama excluded) from a day until today."""
        start = _as_date(value)
        if start is None:
            return ""
        end = today or dt.datetime.now(WIB).date()
        days = max(count_working_days(start, end), 0) if end >= start else 0
        return self("format.working_days", count=days)


def _as_datetime(value: dt.datetime | str | None) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _as_date(value: dt.date | dt.datetime | str | None) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(WIB).date() if value.tzinfo else value.date()
    if isinstance(value, dt.date):
        return value
    if "T" in value or " " in value.strip():
        moment = _as_datetime(value)
        return moment.astimezone(WIB).date() if moment else None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None
