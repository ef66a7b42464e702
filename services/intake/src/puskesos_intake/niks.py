"""NIK ownership: a NIK belongs to at most one household at a time.

Lookups are keyed by ``HMAC-SHA256(key, NIK)`` (``PUSKESOS_INTAKE_NIK_HASH_KEY``), so these
collections never hold a clear NIK; the household revisions hold the registry's clear data.

Each NIK's owner is a versioned record (``versioned``): claiming is appending a version, so two
registrations racing for one NIK cannot both win. A claim is made *before* the household
revision that adds the member is written, naming that revision (``for_revision``). A request
that crashes in between leaves a claim nobody uses; such a claim is *abandoned* once its
household has reached ``for_revision`` without the member (the write lost a race or was never
retried) or, if the household never got there, once it is older than the grace period
(``PUSKESOS_INTAKE_CLAIM_GRACE_SECONDS``). Abandoned claims may be taken over. A claim that names
a transfer in progress is never abandoned; the transfer finishes or gives it back.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from puskesos_shared.mongo import Document
from pymongo.asynchronous.collection import AsyncCollection

from .versioned import MongoVersions, Version

Clock = Callable[[], dt.datetime]


class NikTaken(Exception):
    """The NIK is a member of another household (or is moving in a transfer)."""

    def __init__(self, owner_household_id: str, in_transfer: bool) -> None:
        super().__init__("NIK held by another household")
        self.owner_household_id, self.in_transfer = owner_household_id, in_transfer


class ClaimContended(Exception):
    """Writers kept racing for the same NIK; the caller may retry."""


def nik_key(secret: bytes, nik: str) -> str:
    return hmac.new(secret, nik.encode(), hashlib.sha256).hexdigest()


def members_of(version: Version | None) -> set[str]:
    if version is None:
        return set()
    return {m["nik"] for m in version.data["household"]["members"]}


@dataclass
class NikOwnership:
    owners: MongoVersions
    households: MongoVersions
    transfers: AsyncCollection[Document]
    secret: bytes
    grace: dt.timedelta
    clock: Clock

    def key(self, nik: str) -> str:
        return nik_key(self.secret, nik)

    def kk_key(self, kk_number: str) -> str:
        """The keyed hash of a KK number (apart from NIKs': a KK and a NIK may have the same digits)."""
        return nik_key(self.secret, f"kk:{kk_number}")

    async def owner(self, nik: str) -> Version | None:
        return await self.owners.latest(self.key(nik))

    async def household_of(self, nik: str) -> Version | None:
        """The latest revision of the household that really holds this NIK now (it lists the member)."""
        claim = await self.owner(nik)
        hid = claim.data.get("household_id") if claim else None
        if hid is None:
            return None
        current = await self.households.latest(hid)
        return current if nik in members_of(current) else None

    async def is_live(self, claim: Version, nik: str) -> bool:
        d = claim.data
        hid = d.get("household_id")
        if hid is None:
            return False
        if d.get("transfer_id"):
            transfer = await self.transfers.find_one({"_id": d["transfer_id"]})
            if transfer is not None and transfer.get("state") == "pending":
                return True
        current = await self.households.latest(hid)
        if nik in members_of(current):
            return True
        if current is not None and current.number >= int(d.get("for_revision") or 0):
            return False
        at: dt.datetime = d["at"]
        if at.tzinfo is None:
            at = at.replace(tzinfo=dt.UTC)
        return self.clock() - at < self.grace

    def _claim(self, hid: str | None, for_revision: int, **extra: Any) -> dict[str, Any]:
        return {"household_id": hid, "for_revision": for_revision, "transfer_id": None, "at": self.clock(),
                **extra}

    async def claim(self, nik: str, hid: str, for_revision: int) -> None:
        """Makes ``hid`` the owner of ``nik`` for its revision ``for_revision``; raises NikTaken."""
        key = self.key(nik)
        for _ in range(10):
            current = await self.owners.latest(key)
            d = current.data if current else {}
            if d.get("household_id") == hid and not d.get("transfer_id"):
                if int(d.get("for_revision") or 0) >= for_revision:
                    return
            elif current is not None and await self.is_live(current, nik):
                raise NikTaken(d["household_id"], in_transfer=bool(d.get("transfer_id")))
            if await self.owners.append(key, current.number if current else 0, self._claim(hid, for_revision)):
                return
        raise ClaimContended

    async def claim_new(self, claims: Sequence[tuple[str, str]], for_revision: int = 1) -> set[int]:
        """First claims of many NIKs at once, ``(nik, household id)`` each, in one write (the bulk import).

        A claim goes in only where the NIK has no ownership record at all (version 1 is free), so it
        can take nothing from anyone. Returns the positions refused: NIKs with a record already (an
        earlier run, another household, the same NIK twice); decide those one by one with ``claim``.
        """
        at = self.clock()
        items = [(self.key(nik), {**self._claim(hid, for_revision), "at": at}, ()) for nik, hid in claims]
        return await self.owners.append_first_many(items, at=at)

    async def release(self, nik: str, hid: str, revision: int) -> None:
        """Gives up ``hid``'s claim (the member left in ``revision``); a no-op if someone else holds it."""
        key = self.key(nik)
        for _ in range(5):
            current = await self.owners.latest(key)
            if current is None or current.data.get("household_id") != hid or current.data.get("transfer_id"):
                return
            if await self.owners.append(key, current.number, self._claim(None, revision)):
                return

    async def hand_over(self, key: str, from_hid: str, to_hid: str, transfer_id: str) -> bool:
        """Moves the claim to the receiving household, marked with the transfer (idempotent).

        Returns False when the NIK is not held by the source household (nothing to hand over).
        """
        for _ in range(10):
            current = await self.owners.latest(key)
            d = current.data if current else {}
            if d.get("transfer_id") == transfer_id:
                return True
            if d.get("finalized_transfer") == transfer_id:  # settled: on the target, or given back on abort
                return bool(d.get("household_id") == to_hid)
            if current is None or d.get("household_id") != from_hid or d.get("transfer_id"):
                return False
            if await self.owners.append(key, current.number,
                                        self._claim(to_hid, 0, transfer_id=transfer_id)):
                return True
        raise ClaimContended

    async def settle(self, key: str, transfer_id: str, hid: str, revision: int) -> None:
        """Ends the transfer's hold on the claim: ``hid`` owns the NIK as of ``revision``."""
        for _ in range(10):
            current = await self.owners.latest(key)
            if current is None or current.data.get("transfer_id") != transfer_id:
                return
            if await self.owners.append(key, current.number,
                                        self._claim(hid, revision, finalized_transfer=transfer_id)):
                return
        raise ClaimContended
