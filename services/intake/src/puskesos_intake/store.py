"""The intake service's collections, their indexes, and the start-up check of the NIK hash key.

Storage rules (no multi-document transactions): a document is either written once (inserted,
then only its ``_outbox`` entries are pulled by the relay) or a derived view whose writers all
recompute it from write-once sources. Contended decisions (case numbers, NIK ownership, open
complaints, household revisions) are inserts against a unique index: exactly one writer wins,
the write carries its events in ``_outbox``, and the versions stay as the history the resident's
data export reads (see ``versioned``).

| collection | written | holds |
|---|---|---|
| ``household_revisions`` | once per revision | the household, warnings, its event in ``_outbox`` |
| ``nik_owners`` | once per version | which household holds a NIK (keyed by HMAC) |
| ``transfers`` | once, then ``state`` by the saga | a member's move between households |
| ``complaints`` | once, with the case number | the complaint and ComplaintFiled in ``_outbox`` |
| ``case_counters`` | hint | the highest case number known per village and year |
| ``open_complaints`` | once per version | the open complaint per (resident, category) |
| ``complaint_progress`` | once per version | status and history from case events |
| ``case_links`` | once | case id -> complaint id |
| ``complaint_views`` | derived | per case number: the listing row and the status lookup |
| ``export_log`` | once per entry | the access log (``access_log``): data exports, household reveals (HMACs) |
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from puskesos_shared.mongo import Document, insert_once
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from .versioned import MongoVersions


class NikKeyChanged(RuntimeError):
    """The configured NIK hash key is not the one the stored lookups were made with."""


@dataclass
class IntakeStore:
    db: AsyncDatabase[Document]

    def __post_init__(self) -> None:
        db = self.db
        self.households = MongoVersions(db, "household_revisions")
        self.nik_owners = MongoVersions(db, "nik_owners")
        self.open_complaints = MongoVersions(db, "open_complaints")
        self.progress = MongoVersions(db, "complaint_progress")
        self.transfers: AsyncCollection[Document] = db["transfers"]
        self.complaints: AsyncCollection[Document] = db["complaints"]
        self.case_counters: AsyncCollection[Document] = db["case_counters"]
        self.case_links: AsyncCollection[Document] = db["case_links"]
        self.views: AsyncCollection[Document] = db["complaint_views"]
        self.meta: AsyncCollection[Document] = db["meta"]
        self.export_log: AsyncCollection[Document] = db["export_log"]

    async def create_indexes(self) -> None:
        for versions in (self.households, self.nik_owners, self.open_complaints, self.progress):
            await versions.create_indexes()
        # the uniqueness that makes case numbers gap-free and unrepeated (see ``filing``)
        await self.complaints.create_index("case_number", unique=True, name="one_complaint_per_case_number")
        await self.complaints.create_index("filed_at", name="filed_at")
        await self.transfers.create_index("state", name="state")
        await self.transfers.create_index("nik_key", name="member")
        await self.export_log.create_index([("nik_hash", 1), ("at", 1)], name="by_resident")
        await self.export_log.create_index([("kk_hash", 1), ("at", 1)], name="by_household")
        await self.views.create_index([("village_code", 1), ("status", 1), ("category", 1), ("filed_at", -1)],
                                      name="listing")
        await self.views.create_index([("district_code", 1), ("filed_at", -1)], name="listing_district")
        await self.views.create_index([("regency_code", 1), ("filed_at", -1)], name="listing_regency")

    async def check_nik_key(self, secret: bytes) -> None:
        """Records the key's fingerprint on first start; refuses to run with another key later.

        Lookups made with one key are invisible under another: a silent key change would let a
        NIK join a second household. Changing the key needs a re-keying of ``nik_owners``.
        """
        fingerprint = hmac.new(secret, b"puskesos-intake-nik-key-check", hashlib.sha256).hexdigest()
        await insert_once(self.meta, {"_id": "nik_hash_key", "fingerprint": fingerprint})
        stored = await self.meta.find_one({"_id": "nik_hash_key"})
        if stored is None or stored.get("fingerprint") != fingerprint:
            raise NikKeyChanged("PUSKESOS_INTAKE_NIK_HASH_KEY differs from the key the NIK lookups were built "
                                "with; restore it (or re-key nik_owners) before starting")
