"""Keluhan: the front offices file complaints from about a tenth of the households, and some anonymous ones.

Complaints are planned deterministically from the seed: categories weighted as a Puskesos sees
them (aid not received and hospital referrals most often), urgency by category, the channel
(walk-in, WhatsApp, phone, app), and a complainant consistent with the household (an elderly
head for "elderly alone", a member with a disability for "disability", a poor family for "aid
not received"). Anonymous reports (a homeless person, a neglected child seen by a neighbour)
carry only a phone number. Each complaint has an ``Idempotency-Key``: a retried request files it once.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from collections.abc import Callable

from .context import ComplaintWork, Scenario
from .http import run_pool
from .population import TELKOMSEL_PREFIXES, Family

TODAY = dt.date.today

CATEGORY_WEIGHTS = {
    "aid_not_received": 30, "health_referral": 22, "elderly_alone": 10, "disability": 7, "neglected_child": 6,
    "disaster_victim": 4, "data_correction": 8, "other": 5, "homeless_or_beggar": 8,
}
URGENCY = {
    "health_referral": (("emergency", 2), ("high", 5), ("normal", 3)),
    "neglected_child": (("high", 6), ("normal", 4)),
    "disaster_victim": (("emergency", 3), ("high", 5), ("normal", 2)),
}
DEFAULT_URGENCY = (("high", 2), ("normal", 7), ("low", 2))
CHANNELS = (("walk_in", 50), ("whatsapp", 25), ("phone", 15), ("app", 10))
DESCRIPTIONS = {
    "aid_not_received": "Keluarga tidak menerima bantuan sosial padahal penghasilan di bawah garis kemiskinan.",
    "health_referral": "Anggota keluarga sakit berat dan perlu rujukan ke rumah sakit, belum punya biaya.",
    "elderly_alone": "Lansia tinggal sendiri tanpa keluarga yang merawat, kesulitan memenuhi kebutuhan harian.",
    "disability": "Anggota keluarga penyandang disabilitas membutuhkan alat bantu dan pendampingan.",
    "neglected_child": "Anak tidak terurus dan putus sekolah, orang tua bekerja di luar kota.",
    "disaster_victim": "Rumah rusak akibat banjir dan tanah longsor, keluarga mengungsi ke rumah tetangga.",
    "data_correction": "Data kartu keluarga di DTKS tidak sesuai, anggota keluarga belum tercatat.",
    "other": "Warga meminta informasi program bantuan sosial yang bisa diikuti.",
    "homeless_or_beggar": "Warga melaporkan seorang gelandangan tidur di emperan toko dekat pasar.",
}
ANONYMOUS_CATEGORIES = ("homeless_or_beggar", "neglected_child")


def _weighted(rng: random.Random, pairs: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([p for p, _ in pairs], weights=[w for _, w in pairs])[0]


def _age(family: Family, index: int = 0) -> int:
    return (TODAY() - family.members[index].birth_date).days // 365


FITS: dict[str, Callable[[Family], bool]] = {
    "aid_not_received": lambda f: f.poor,
    "elderly_alone": lambda f: _age(f) >= 60,
    "disability": lambda f: any(m.disability != "none" for m in f.members),
    "disaster_victim": lambda f: f.poor,
}


def _anyone(_: Family) -> bool:
    return True


class _Picker:
    """Families not complained for yet, in a shuffled order, one cursor per fitness rule (linear overall)."""

    def __init__(self, pool: list[Family]) -> None:
        self.pool, self.used, self.cursor = pool, set[str](), dict[str, int]()

    def take(self, category: str) -> Family | None:
        fits = FITS.get(category, _anyone)
        key = category if category in FITS else ""
        i = self.cursor.get(key, 0)
        while i < len(self.pool):
            family = self.pool[i]
            i += 1
            if family.kk_number not in self.used and fits(family):
                self.cursor[key] = i
                self.used.add(family.kk_number)
                return family
        self.cursor[key] = i
        return None


def plan_complaints(s: Scenario) -> list[ComplaintWork]:
    rng = random.Random(f"{s.options.seed}:complaints")  # noqa: S311 - synthetic scenario
    count = max(1, round(len(s.families) * s.options.complaint_share))
    pool = list(s.families)
    rng.shuffle(pool)
    picker = _Picker(pool)
    categories = list(CATEGORY_WEIGHTS)
    plans: list[ComplaintWork] = []
    for index in range(count):
        category = rng.choices(categories, weights=[CATEGORY_WEIGHTS[c] for c in categories])[0]
        anonymous = category in ANONYMOUS_CATEGORIES and rng.random() < 0.7
        family = None if anonymous else picker.take(category)
        if family is None and not anonymous:  # nobody fits (a small population): a general complaint
            category, family = "other", picker.take("other")
        village = family.village_code if family else s.villages[rng.randrange(len(s.villages))]
        urgency = _weighted(rng, URGENCY.get(category, DEFAULT_URGENCY))
        channel = _weighted(rng, CHANNELS)
        if family is None:
            complainant: dict[str, str] = {"contact_phone": f"{rng.choice(TELKOMSEL_PREFIXES)}"
                                                            f"{rng.randint(10_000_000, 99_999_999)}"}
        else:
            person = family.head
            if category == "disability":
                person = next(m for m in family.members if m.disability != "none")
            complainant = {"nik": person.nik}
            if channel in ("whatsapp", "phone") and rng.random() < 0.5:
                complainant["contact_phone"] = f"{rng.choice(TELKOMSEL_PREFIXES)}{rng.randint(10_000_000, 99_999_999)}"
        body = {"category": category, "channel": channel, "urgency": urgency, "description": DESCRIPTIONS[category],
                "village_code": village, "complainant": complainant}
        plans.append(ComplaintWork(index=index, village_code=village, category=category, urgency=urgency,
                                   channel=channel, body=body, family=family))
    return plans


async def file_complaints(s: Scenario) -> None:
    s.complaints = plan_complaints(s)

    async def file(work: ComplaintWork) -> bool:
        headers = {**s.officers.front_office(work.village_code),
                   "Idempotency-Key": f"demo-{s.options.run_id}-complaint-{work.index}"}
        result = await s.intake.post("/complaints", work.body, headers=headers)
        work.complaint_id = str(result["complaint"]["complaint_id"])
        work.case_number = str(result["complaint"]["case_number"])
        work.created = bool(result["created"])
        return work.created

    created, _seconds = await run_pool(s.complaints, file, concurrency=s.options.concurrency, console=s.console,
                                      label="complaints filed")
    categories = Counter(w.category for w in s.complaints)
    anonymous = sum(1 for w in s.complaints if w.family is None)
    s.facts["complaints"] = len(s.complaints)
    s.facts["complaints_anonymous"] = anonymous
    s.facts["complaints_by_category"] = dict(categories.most_common())
    s.say(f"  {len(s.complaints)} complaints in {len({w.village_code for w in s.complaints})} villages "
          f"({sum(created)} new, {anonymous} anonymous with a phone number), "
          + ", ".join(f"{c} {n}" for c, n in categories.most_common()))
