"""Domain value types shared by every contract: NIK, KK number, village code, phone, Rupiah.

Personal data (UU No. 27/2022) is marked in the models and so in the published JSON Schemas with
the keyword ``x-pii`` (``PII_KEYWORD``): ``"identifier"`` on NIK, KK number and phone (and a few
other values that single a person out), with ``x-pii-kind`` naming what it identifies, and
``"personal"`` on names, addresses, birth dates and free text written by people. The relay to
external subscribers (``contracts.pseudonymous``) is guided by these marks.

Validation of NIKs uses lokal-id (structure, province, birth date). Whether a village code
exists in the Kemendagri data is checked by the service that accepts it from a person
(see ``puskesos_shared.regions``); a contract only checks the form, so that events written
under one release of the region data still parse under another.
"""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum
from typing import Annotated, Final

from lokal import PROVINCES, parse_nik
from pydantic import AfterValidator, Field
from pydantic.config import JsonDict

_SIXTEEN_DIGITS = re.compile(r"^[0-9]{16}$")

#: JSON Schema keyword marking personal data in the published schemas: ``"identifier"`` (replaced by a
#: keyed pseudonym or removed for external subscribers), ``"personal"`` (never relayed outside ``full``),
#: ``"pseudonym"`` (only in the feed schemas: a keyed pseudonym that replaced an identifier).
PII_KEYWORD: Final = "x-pii"
#: Beside ``x-pii: identifier``: what the value identifies (``nik``, ``kk``, ``phone``, ...). Pseudonyms are
#: keyed with it, so a NIK and a KK number of the same digits get different pseudonyms.
PII_KIND_KEYWORD: Final = "x-pii-kind"


class PiiMark(StrEnum):
    """Values of ``x-pii``."""

    IDENTIFIER = "identifier"
    PERSONAL = "personal"
    PSEUDONYM = "pseudonym"


def identifier(kind: str) -> JsonDict:
    """``json_schema_extra`` of a value that identifies a person (``kind``: ``nik``, ``kk``, ``phone``, ...)."""
    return {PII_KEYWORD: PiiMark.IDENTIFIER.value, PII_KIND_KEYWORD: kind}


def personal() -> JsonDict:
    """``json_schema_extra`` of personal data that is not an identifier: a name, an address, a birth date,
    free text written by people."""
    return {PII_KEYWORD: PiiMark.PERSONAL.value}


def check_nik(value: str) -> str:
    """Rejects a number that cannot be a NIK, with lokal-id's reason."""
    info = parse_nik(value)
    if not info.valid:
        reasons = "; ".join(f"{issue.code}: {issue.message}" for issue in info.errors)
        raise ValueError(f"invalid NIK ({reasons})")
    return value


def check_kk_number(value: str) -> str:
    """A family card (KK) number: region code, issue date (DDMMYY) and serial, 16 digits."""
    if not _SIXTEEN_DIGITS.fullmatch(value):
        raise ValueError("invalid KK number (format: must be exactly 16 digits)")
    province, regency, district = value[0:2], value[2:4], value[4:6]
    if province not in PROVINCES:
        raise ValueError(f"invalid KK number (province: unknown province code {province!r})")
    if regency == "00" or district == "00":
        raise ValueError("invalid KK number (wilayah: regency and district codes must not be 00)")
    day, month, yy = int(value[6:8]), int(value[8:10]), int(value[10:12])
    try:
        dt.date(2000 + yy, month, day)
    except ValueError:
        raise ValueError("invalid KK number (issue_date: digits 7-12 are not a real DDMMYY date)") from None
    if value[12:] == "0000":
        raise ValueError("invalid KK number (serial: must not be 0000)")
    return value


NIK = Annotated[
    str,
    Field(pattern=r"^[0-9]{16}$", description="Nomor Induk Kependudukan (16 digits)", examples=["3573010101900003"],
          json_schema_extra=identifier("nik")),
    AfterValidator(check_nik),
]
KKNumber = Annotated[
    str,
    Field(pattern=r"^[0-9]{16}$", description="Nomor Kartu Keluarga (16 digits)", examples=["3573010502200001"],
          json_schema_extra=identifier("kk")),
    AfterValidator(check_kk_number),
]
VillageCode = Annotated[
    str,
    Field(
        pattern=r"^[0-9]{2}\.[0-9]{2}\.[0-9]{2}\.[0-9]{4}$",
        description="Kemendagri code of a kelurahan or desa, dotted",
        examples=["35.73.01.1001"],
    ),
]
DistrictCode = Annotated[
    str,
    Field(
        pattern=r"^[0-9]{2}\.[0-9]{2}\.[0-9]{2}$",
        description="Kemendagri code of a kecamatan, dotted",
        examples=["35.73.01"],
    ),
]
WhatsAppPhone = Annotated[
    str,
    Field(
        pattern=r"^\+62[0-9]{8,13}$", description="Phone number in WhatsApp (E.164) form", examples=["+6281234567890"],
        json_schema_extra=identifier("phone"),
    ),
]
Rupiah = Annotated[int, Field(ge=0, description="Whole Rupiah")]
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 digest, lowercase hex")]
ShortText = Annotated[str, Field(min_length=1, max_length=200)]
LongText = Annotated[str, Field(min_length=1, max_length=4000)]


class Sex(StrEnum):
    MALE = "L"  # laki-laki
    FEMALE = "P"  # perempuan


class OfficerRole(StrEnum):
    FRONT_OFFICE = "front_office"
    BACK_OFFICE = "back_office"
    ASSESSOR = "assessor"
    COORDINATOR = "coordinator"  # TKSK, kecamatan level
    OPERATOR = "operator"  # Dinas Sosial operator running aid rounds
    AUDITOR = "auditor"


class Program(StrEnum):
    """Social-protection programs and services a case can be referred to."""

    PKH = "PKH"  # Program Keluarga Harapan (conditional cash transfer)
    BPNT = "BPNT"  # Bantuan Pangan Non Tunai (food aid)
    PBI_JK = "PBI_JK"  # health insurance contribution assistance
    BLT = "BLT"  # Bantuan Langsung Tunai (cash transfer)
    HOSPITAL_REFERRAL = "HOSPITAL_REFERRAL"
    REHABILITATION = "REHABILITATION"


class PmksCategory(StrEnum):
    """Penyandang Masalah Kesejahteraan Sosial: the social-welfare problem categories used here."""

    FAKIR_MISKIN = "fakir_miskin"
    ANAK_TERLANTAR = "anak_terlantar"
    LANSIA_TERLANTAR = "lansia_terlantar"
    PENYANDANG_DISABILITAS = "penyandang_disabilitas"
    GELANDANGAN = "gelandangan"
    PENGEMIS = "pengemis"
    KORBAN_BENCANA = "korban_bencana"
    RENTAN_KESEHATAN = "rentan_kesehatan"
    BUKAN_PMKS = "bukan_pmks"
