"""Registering and updating households (pendataan), on HTTP and NATS alike.

A household is a versioned record keyed by ``stable_id("household", kk)``: revision n+1 is an
insert that only one writer can win, and it carries its event (HouseholdRegistered at 1,
HouseholdUpdated later) in ``_outbox``. Event ids derive from (household, revision), so a
republished event is the same event. Re-registering a KK is an update; an identical
re-registration changes nothing and emits nothing.

Order of a write: claim the NIKs the revision adds (``niks``), write the revision, release
the NIKs it removed, publish. A crash between any two steps leaves nothing half-visible: an
unused claim is abandoned by the rules in ``niks``, and the event waits in the outbox.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from puskesos_shared.commands import CommandError
from puskesos_shared.contracts.envelope import Actor, Event
from puskesos_shared.contracts.intake import DataWarning, Household, HouseholdChangeKind
from puskesos_shared.regions import village_exists
from pydantic import BaseModel, ConfigDict

from .context import Caller, Context, log
from .domain.households import (
    changed_fields,
    household_id,
    nik_warnings,
    niks_of,
    registered_event,
    updated_event,
)
from .niks import ClaimContended, NikTaken
from .versioned import Version, version_id

MAX_ATTEMPTS = 8


class Outcome(StrEnum):
    REGISTERED = "registered"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


class HouseholdRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    household_id: uuid.UUID
    kk_number: str
    revision: int
    household: Household
    warnings: tuple[DataWarning, ...] = ()
    updated_at: dt.datetime


class RegistrationResult(HouseholdRecord):
    outcome: Outcome
    changed_fields: tuple[str, ...] = ()


def record_of(version: Version) -> HouseholdRecord:
    d = version.data
    return HouseholdRecord(
        household_id=uuid.UUID(version.key), kk_number=d["kk_number"], revision=version.number,
        household=Household.model_validate(d["household"]),
        warnings=tuple(DataWarning.model_validate(w) for w in d.get("warnings", ())), updated_at=d["at"],
    )


def revision_data(record_household: Household, warnings: tuple[DataWarning, ...], *, change: str,
                  fields: tuple[str, ...], transfers: list[str], actor: Actor, at: dt.datetime) -> dict[str, object]:
    return {
        "kk_number": record_household.kk_number, "household": record_household.model_dump(mode="json"),
        "warnings": [w.model_dump(mode="json") for w in warnings], "change": change, "changed_fields": list(fields),
        "transfers_applied": transfers, "actor": actor.model_dump(mode="json"), "at": at,
    }


#: Larger incomes are refused: far above any real one, and far inside the 64-bit integers MongoDB stores
#: (the contract's ``Rupiah`` has no upper bound; a larger number made the write fail: a 500).
MAX_MONTHLY_INCOME = 10**15


def income_too_large() -> CommandError:
    msg = f"must be at most {MAX_MONTHLY_INCOME}"
    return CommandError("invalid_request", f"monthly_income {msg}",
                        [{"loc": ["body", "socio_economic", "monthly_income"], "msg": msg, "type": "less_than_equal"}],
                        status=422)


def unknown_village(loc: Sequence[str] = ("body", "address", "village_code")) -> CommandError:
    return CommandError("unknown_village", "the village code does not exist in the Kemendagri data",
                        [{"loc": list(loc), "msg": "unknown village code", "type": "unknown_village"}], status=422)


class HouseholdRegistry:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.versions = ctx.store.households

    async def current(self, kk_number: str) -> HouseholdRecord | None:
        latest = await self.versions.latest(str(household_id(kk_number)))
        return record_of(latest) if latest else None

    async def find(self, kk_number: str) -> HouseholdRecord:
        """The household registered with this KK, whoever asks (404 when there is none)."""
        record = await self.current(kk_number)
        if record is None:
            raise CommandError("household_not_found", "no household is registered with this KK number", status=404)
        return record

    async def find_by_nik(self, nik: str) -> HouseholdRecord:
        """The household the NIK is a member of now (through the NIK's keyed-hash ownership record)."""
        latest = await self.ctx.niks.household_of(nik)
        if latest is None:
            raise CommandError("household_not_found", "no registered household has a member with this NIK",
                               status=404)
        return record_of(latest)

    async def get(self, kk_number: str, caller: Caller) -> HouseholdRecord:
        record = await self.find(kk_number)
        caller.require(record.household.address.village_code)
        return record

    async def register(self, household: Household, caller: Caller, *, must_exist: bool = False) -> RegistrationResult:
        if not village_exists(household.address.village_code):
            raise unknown_village()
        if household.socio_economic.monthly_income > MAX_MONTHLY_INCOME:
            raise income_too_large()
        caller.require(household.address.village_code)
        warnings = nik_warnings(household)
        hid = str(household_id(household.kk_number))
        for _ in range(MAX_ATTEMPTS):
            started = time.monotonic()
            latest = await self.versions.latest(hid)
            previous = record_of(latest) if latest else None
            if previous is None and must_exist:
                raise CommandError("household_not_found", "no household is registered with this KK number "
                                   "(kk_number); register it with POST /households", status=404)
            if previous is not None:
                caller.require(previous.household.address.village_code)
                if previous.household == household:
                    return RegistrationResult.model_validate({**previous.model_dump(), "outcome": Outcome.UNCHANGED})
            revision = (latest.number if latest else 0) + 1
            await self._claim_new_members(household, previous, hid, revision, caller)
            if time.monotonic() - started > self.ctx.grace.total_seconds() / 2:
                continue  # too slow: our claims may count as abandoned by now; start again
            at = self.ctx.clock()
            event: Event
            if previous is None:
                fields: tuple[str, ...] = ()
                event = registered_event(hid=uuid.UUID(hid), household=household, warnings=warnings,
                                         actor=caller.actor, at=at, causation_id=None)
            else:
                fields = changed_fields(previous.household, household)
                event = updated_event(hid=uuid.UUID(hid), household=household, revision=revision,
                                      change=HouseholdChangeKind.UPDATE, fields=fields, warnings=warnings,
                                      actor=caller.actor, at=at, causation_id=None)
            transfers = list(latest.data.get("transfers_applied", [])) if latest else []
            data = revision_data(household, warnings, change="registered" if previous is None else "update",
                                 fields=fields, transfers=transfers, actor=caller.actor, at=at)
            entries = self.ctx.entries([event])
            if not await self.versions.append(hid, revision - 1, data, outbox=entries, at=at):
                continue  # another writer made this revision first: decide again on top of it
            self.ctx.faults.point("crash_after_write")
            for nik in niks_of(previous.household if previous else None) - niks_of(household):
                await self.ctx.niks.release(nik, hid, revision)
            await self.ctx.flush(self.versions.collection, version_id(hid, revision), entries)
            log.info("household_saved", household_id=hid, revision=revision, change=data["change"])
            outcome = Outcome.REGISTERED if previous is None else Outcome.UPDATED
            return RegistrationResult(household_id=uuid.UUID(hid), kk_number=household.kk_number, revision=revision,
                                      household=household, warnings=warnings, updated_at=at, outcome=outcome,
                                      changed_fields=fields)
        raise CommandError("concurrent_update", "the household kept changing while saving; retry", status=409)

    async def _claim_new_members(self, household: Household, previous: HouseholdRecord | None, hid: str,
                                 revision: int, caller: Caller) -> None:
        claimed: list[str] = []
        existing = niks_of(previous.household if previous else None)
        for index, member in enumerate(household.members):
            if member.nik in existing:
                continue
            try:
                await self.ctx.niks.claim(member.nik, hid, revision)
            except (NikTaken, ClaimContended) as exc:
                for nik in claimed:  # give back what this attempt took; the rules would free it later anyway
                    await self.ctx.niks.release(nik, hid, revision - 1)
                if isinstance(exc, ClaimContended):
                    raise CommandError("concurrent_update", "another registration is claiming the same NIK; "
                                       "retry", status=409) from None
                raise await self._taken_error(index, exc, caller) from None
            claimed.append(member.nik)

    async def _taken_error(self, index: int, exc: NikTaken, caller: Caller) -> CommandError:
        field: dict[str, Any] = {"loc": ["body", "members", index, "nik"], "type": "nik_in_other_household",
                 "msg": "this NIK is a member of another household"}
        if exc.in_transfer:
            field["msg"] = "this NIK is being moved between households by a transfer in progress"
            return CommandError("nik_in_transfer", f"members[{index}]: {field['msg']}; retry when it is done",
                                [field], status=409)
        owner = await self.versions.latest(exc.owner_household_id)
        body = (f'{{"from_kk": <its current KK>, "nik": <the NIK of members[{index}]>, "to_kk": <this KK>, '
                '"relationship": ...}')
        if owner is not None and caller.covers(record_of(owner).household.address.village_code):
            body = body.replace("<its current KK>", f'"{owner.data["kk_number"]}"')
            scope = ""
        else:
            scope = (" (the current household is outside your scope: ask an officer of that village or the "
                     "kecamatan coordinator)")
        message = (f"members[{index}]: a NIK belongs to one household at a time. To move the person into "
                   f"this household use POST /households/transfers with body {body}{scope}")
        return CommandError("nik_in_other_household", message, [field], status=409)
