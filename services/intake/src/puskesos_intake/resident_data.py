"""Intake's part of a resident's data export: registry entries, transfers, complaints, earlier exports.

Everything is found through the NIK's keyed hash (``niks.nik_key``, HMAC-SHA256), never by
reading clear NIKs:

* the versions of the NIK's ``nik_owners`` record name every household that ever held it; the
  current one is exported as it is now, a former one as its last revision that listed the person;
* the versions of ``open_complaints`` ``{key}:{category}`` name every complaint filed under the NIK
  (each filing claims the record; a claim whose complaint was never written is skipped);
* ``transfers`` and ``export_log`` (the access log of exports) keep the key of the person; the log's
  reveals of a household (``reveals``) keep the KK's key (and the NIK's, when searched by NIK).

The person's own member entry is exported in full; the other members of a household appear with
their relationship and a masked NIK only: they are other data subjects. Complaints filed by another
member under their own NIK are that member's data and are not part of this export.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from lokal import partial_mask
from puskesos_shared.contracts.intake import ComplaintCategory
from puskesos_shared.regions import village_name
from puskesos_shared.resident_export import ExportSection, section

from .access_log import REVEAL
from .context import Context
from .niks import members_of
from .registry import HouseholdRecord, record_of
from .status import ComplaintViews, detail_of
from .versioned import MongoVersions, Version

#: A person's family cards passed on to the other services (the command's limit).
MAX_KK_NUMBERS = 20

NOTES = (
    "Found by the keyed hash (HMAC-SHA256) of the NIK: the registry's NIK ownership record, the per-category "
    "record of the resident's complaints, member transfers and the access log of exports; reveals (a household "
    "shown unmasked to an officer) by the keyed hash of the NIK searched or of the KK of the person's households.",
    "Other members of a household appear with their relationship and a masked NIK only.",
    "Complaints filed anonymously (phone only) or under another person's NIK cannot be linked to this NIK.",
)


@dataclass(frozen=True)
class IntakePart:
    """Intake's section, and what the export needs to know about the person to go on."""

    section: ExportSection
    village_code: str | None  # where the resident belongs (see ``resident_village``); None: intake knows nobody
    kk_numbers: tuple[str, ...]
    name_masked: str | None


async def all_versions(versions: MongoVersions, key: str) -> list[Version]:
    """Every version of a key, oldest first."""
    return await versions.history(key)


def masked(kind: Any, value: str) -> str:
    return str(partial_mask(kind, value))


def household_entry(record: HouseholdRecord, nik: str, *, current: bool,
                    left_at: dt.datetime | None = None) -> dict[str, Any]:
    hh = record.household
    index, you = next((i, m) for i, m in enumerate(hh.members) if m.nik == nik)
    mine = f"members.{index}."
    return {
        "kk_number": hh.kk_number, "household_id": str(record.household_id), "current": current,
        "revision": record.revision, "recorded_at": _iso(record.updated_at), "left_at": _iso(left_at),
        "village_code": hh.address.village_code, "village_name": village_name(hh.address.village_code),
        "address": hh.address.model_dump(mode="json"), "you": you.model_dump(mode="json"),
        "other_members": [{"relationship": m.relationship.value, "nik_masked": masked("NIK", m.nik)}
                          for m in hh.members if m.nik != nik],
        "socio_economic": hh.socio_economic.model_dump(mode="json"), "phone": hh.phone,
        "warnings": [w.model_dump(mode="json") for w in record.warnings
                     if w.field.startswith(mine) or not w.field.startswith("members.")],
    }


def resident_village(households: list[dict[str, Any]], complaints: list[dict[str, Any]]) -> str | None:
    """The current household's village; else the latest complaint's; else the latest former household's."""
    current = [h for h in households if h["current"]]
    if current:
        return str(current[0]["village_code"])
    if complaints:
        return str(max(complaints, key=lambda c: c["filed_at"])["village_code"])
    if households:
        return str(max(households, key=lambda h: h["left_at"] or "")["village_code"])
    return None


class ResidentData:
    def __init__(self, ctx: Context, views: ComplaintViews) -> None:
        self.ctx, self.views, self.store = ctx, views, ctx.store

    async def collect(self, nik: str) -> IntakePart:
        key = self.ctx.niks.key(nik)
        households = await self._households(nik, key)
        complaints = await self._complaints(key)
        kks = [h["kk_number"] for h in sorted(households, key=lambda h: not h["current"])]
        records = {"households": households, "transfers": await self._transfers(key), "complaints": complaints,
                   "exports": await self._exports(key), "household_reveals": await self._reveals(key, kks)}
        kks += [c["complainant"]["kk_number"] for c in complaints if c["complainant"].get("kk_number")]
        current = next((h for h in households if h["current"]), None)
        return IntakePart(
            section=section("intake", records, NOTES, now=self.ctx.clock()),
            village_code=resident_village(households, complaints),
            kk_numbers=tuple(dict.fromkeys(kks))[:MAX_KK_NUMBERS],
            name_masked=masked("NAME", current["you"]["name"]) if current else None,
        )

    async def _households(self, nik: str, key: str) -> list[dict[str, Any]]:
        claims = await all_versions(self.store.nik_owners, key)
        household_ids = dict.fromkeys(str(c.data["household_id"]) for c in claims if c.data.get("household_id"))
        out = []
        for hid in household_ids:
            latest = await self.store.households.latest(hid)
            if latest is None:
                continue
            if nik in members_of(latest):
                out.append(household_entry(record_of(latest), nik, current=True))
                continue
            following: Version | None = latest  # the revision after ``number``, read in the turn before
            for number in range(latest.number - 1, 0, -1):  # the last revision that listed the person
                version = await self.store.households.get(hid, number)
                if version is not None and nik in members_of(version):
                    left_at = following.data["at"] if following else None
                    out.append(household_entry(record_of(version), nik, current=False, left_at=left_at))
                    break
                following = version
        return out

    async def _complaints(self, key: str) -> list[dict[str, Any]]:
        ids: dict[str, None] = {}
        for category in ComplaintCategory:
            for claim in await all_versions(self.store.open_complaints, f"{key}:{category.value}"):
                if claim.data.get("complaint_id"):
                    ids[str(claim.data["complaint_id"])] = None
        out = []
        for complaint_id in ids:
            complaint = await self.views.complaint(complaint_id)
            if complaint is None:  # a claim whose complaint was never written (a crashed request)
                continue
            progress, _ = await self.views.progress(complaint_id)
            out.append(detail_of(complaint, progress).model_dump(mode="json"))
        return sorted(out, key=lambda c: str(c["filed_at"]))

    async def _transfers(self, key: str) -> list[dict[str, Any]]:
        cursor = self.store.transfers.find({"nik_key": key}).sort("at", 1)
        return [{"transfer_id": doc["_id"], "from_kk": doc["from_kk"], "to_kk": doc["to_kk"],
                 "relationship": doc["relationship"], "state": doc["state"], "reason": doc.get("reason"),
                 "requested_at": _iso(doc.get("at")), "requested_by": doc["actor"]} async for doc in cursor]

    async def _exports(self, key: str) -> list[dict[str, Any]]:
        """Earlier exports of (and attempts to export) this person's data: the access log."""
        cursor = self.store.export_log.find({"nik_hash": key, "kind": {"$ne": REVEAL}}).sort("at", 1)
        return [{"export_id": doc["export_id"], "at": _iso(doc["at"]), "requested_by": doc["requested_by"],
                 "channel": doc["channel"], "outcome": doc["outcome"], "complete": doc.get("complete")}
                async for doc in cursor]


    async def _reveals(self, key: str, kk_numbers: list[str]) -> list[dict[str, Any]]:
        """Officers who had a household of this person (current or former) shown unmasked, or tried to."""
        kk_hashes = [self.ctx.niks.kk_key(kk) for kk in dict.fromkeys(kk_numbers)]
        query = {"kind": REVEAL, "$or": [{"nik_hash": key}, {"kk_hash": {"$in": kk_hashes}}]}
        cursor = self.store.export_log.find(query).sort("at", 1)
        return [{"access_id": doc["access_id"], "at": _iso(doc["at"]), "requested_by": doc["requested_by"],
                 "household_id": doc["household_id"], "purpose": doc["purpose"], "outcome": doc["outcome"]}
                async for doc in cursor]


def _iso(value: Any) -> str | None:
    """A stored time as ISO 8601 with its offset (the client reads times timezone-aware)."""
    if not isinstance(value, dt.datetime):
        return None
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat()
