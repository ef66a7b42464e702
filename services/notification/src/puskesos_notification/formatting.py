"""Indonesian formatting for message text: Rupiah, terbilang, dates, masks, phone numbers.

Rupiah, terbilang, phone normalisation and masking come from lokal-id; lokal-id has no date
formatter, so dates are spelled here with the Indonesian month and day names. Times are shown in
the recipient's zone (WIB, WITA or WIT), chosen by the province of the village code; Indonesia has
no daylight saving, so fixed offsets are exact.
"""

from __future__ import annotations

import datetime as dt
import re

from lokal import PiiType, format_rupiah, mask_pii, parse_phone, partial_mask, terbilang
from puskesos_shared.regions import village_name

MONTHS = ("Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus", "September",
          "Oktober", "November", "Desember")
DAYS = ("Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu")

WIB = dt.timezone(dt.timedelta(hours=7), "WIB")
WITA = dt.timezone(dt.timedelta(hours=8), "WITA")
WIT = dt.timezone(dt.timedelta(hours=9), "WIT")
_WITA_PROVINCES = {"51", "52", "53", "63", "64", "65"}  # Bali, NTB, NTT, Kalimantan Selatan/Timur/Utara

#: Identity numbers that never appear in clear in a message (free text included).
IDENTITY_TYPES: tuple[PiiType, ...] = ("NIK", "KK", "BANK_ACCOUNT", "NPWP", "BPJS", "CARD")
_SPACES = re.compile(r"[ \t]+")


def tanggal(day: dt.date, *, with_weekday: bool = False) -> str:
    """``16 November 2026`` (or ``Senin, 16 November 2026``)."""
    text = f"{day.day} {MONTHS[day.month - 1]} {day.year}"
    return f"{DAYS[day.weekday()]}, {text}" if with_weekday else text


def zone_of(village_code: str | None) -> dt.timezone:
    """The time zone of a village by its province code (WIB when unknown)."""
    province = (village_code or "")[:2]
    if province in _WITA_PROVINCES or province.startswith("7"):  # Sulawesi
        return WITA
    if province.startswith(("8", "9")):  # Maluku, Papua
        return WIT
    return WIB


def waktu(at: dt.datetime, village_code: str | None) -> str:
    """``2 November 2026 pukul 09.30 WIB`` in the village's zone."""
    zone = zone_of(village_code)
    local = at.astimezone(zone)
    return f"{tanggal(local.date())} pukul {local:%H.%M} {zone.tzname(None)}"


def rupiah(amount: int) -> str:
    """``Rp300.000``."""
    return format_rupiah(amount)


def rupiah_in_words(amount: int) -> str:
    """``Rp300.000 (tiga ratus ribu rupiah)``, as on a kuitansi."""
    return f"{format_rupiah(amount)} ({terbilang(amount, currency=True)})"


def mask_nik(nik: str) -> str:
    return partial_mask("NIK", nik)


def mask_kk(kk_number: str) -> str:
    return partial_mask("KK", kk_number)


def mask_account(number: str) -> str:
    return partial_mask("BANK_ACCOUNT", number)


def mask_phone(phone: str) -> str:
    return partial_mask("PHONE", phone)


def mask_identity_numbers(text: str) -> str:
    """Free text (an officer's note) with every identity number partially masked."""
    return mask_pii(text, mode="partial", types=IDENTITY_TYPES).text


def free_text(text: str, limit: int) -> str:
    """Free text fit for a message: identity numbers masked, one line, at most ``limit`` characters."""
    one_line = " ".join(mask_identity_numbers(text).split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1].rstrip() + "…"


def tidy(text: str) -> str:
    """Collapses the spaces an empty optional part leaves behind."""
    return _SPACES.sub(" ", text).replace(" .", ".").replace(" ,", ",").strip()


def whatsapp_number(raw: str) -> str | None:
    """The number in E.164 form (``+6281234567890``) if it can receive WhatsApp/SMS (a mobile), else None."""
    info = parse_phone(raw)
    if not info.valid or info.type != "mobile" or info.e164 is None:
        return None
    return info.e164


def puskesos_of(village_code: str | None) -> str:
    """``Puskesos Balearjosari``, or ``Puskesos setempat`` when the village is unknown."""
    name = village_name(village_code) if village_code else None
    return f"Puskesos {name}" if name else "Puskesos setempat"
