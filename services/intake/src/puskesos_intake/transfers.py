"""Moving a member from one household to another: a saga that survives a crash at any step.

There are no transactions, so the move is a ``transfers`` document and four idempotent steps,
each recognisable afterwards as done:

1. the NIK's claim passes to the receiving household, marked with the transfer (``niks.hand_over``);
   from here no registration can take the NIK, and none can add it elsewhere;
2. the source household gets a revision without the member (HouseholdUpdated ``transfer_out``);
3. the receiving household gets a revision with the member (HouseholdUpdated ``transfer_in``);
4. the claim is settled on the receiving household, and the transfer marked done.

Steps 2 and 3 record the transfer id in the revision (``transfers_applied``), so a resumed saga
sees what it already did; event ids derive from (household, revision) like every household event.
The request runs the saga; a transfer still pending (the process died) is resumed at start-up and
by the periodic recovery. If the source household no longer allows the move at step 2 (the member
became its head meanwhile), the claim goes back and the transfer is aborted with the reason.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any, NoReturn

from puskesos_shared.commands import CommandError
from puskesos_shared.contracts.envelope import Actor
from puskesos_shared.contracts.intake import Household, HouseholdChangeKind, Member, Relationship
from puskesos_shared.contracts.primitives import NIK, KKNumber
from puskesos_shared.ids import stable_id
from puskesos_shared.mongo import Document, insert_once
from pydantic import BaseModel, ConfigDict, Field

from .context import Caller, Context, log
from .domain.households import TransferRefused, nik_warnings, updated_event, with_member, without_member
from .registry import HouseholdRecord, HouseholdRegistry, record_of, revision_data
from .versioned import Version, version_id


class TransferRequest(BaseModel):
    """The body of ``POST /households/transfers``: who moves from which household to which (numbers in the
    body, never in the URL: URLs are logged)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    from_kk: KKNumber = Field(description="The KK of the household the person is a member of now")
    nik: NIK = Field(description="The member who moves")
    to_kk: KKNumber = Field(description="The KK of the receiving (registered) household")
    relationship: Relationship = Field(description="The person's relationship in the receiving household")


class TransferResult(BaseModel):
    transfer_id: uuid.UUID
    state: str
    from_household: HouseholdRecord
    to_household: HouseholdRecord


class Transfers:
    def __init__(self, ctx: Context, registry: HouseholdRegistry) -> None:
        self.ctx, self.registry = ctx, registry
        self.versions = ctx.store.households
        self.collection = ctx.store.transfers

    async def request(self, req: TransferRequest, caller: Caller, idempotency_key: str | None) -> TransferResult:
        from_kk, nik = req.from_kk, req.nik
        if req.to_kk == from_kk:
            raise CommandError("same_household", "the person is already in this household",
                               [{"loc": ["body", "to_kk"], "msg": "must differ from from_kk",
                                 "type": "same_household"}], status=422)
        key = self.ctx.niks.key(nik)
        tid = str(stable_id("transfer", caller.actor.id, idempotency_key)) if idempotency_key else None
        if tid is not None and (existing := await self.collection.find_one({"_id": tid})) is not None:
            if (existing["from_kk"], existing["to_kk"], existing["nik_key"]) != (from_kk, req.to_kk, key):
                raise CommandError("idempotency_key_reused", "this Idempotency-Key was used for another transfer",
                                   status=409)
            return await self.run(existing)
        source = await self.registry.get(from_kk, caller)
        target = await self.registry.current(req.to_kk)
        if target is None:
            raise CommandError("household_not_found", "the receiving household is not registered; register it "
                               "first (POST /households)", status=404)
        caller.require(target.household.address.village_code)
        member = next((m for m in source.household.members if m.nik == nik), None)
        if member is None:
            raise CommandError("member_not_found", "this NIK is not a member of the household", status=404)
        try:
            without_member(source.household, nik)
            with_member(target.household, member, req.relationship)
        except TransferRefused as exc:
            raise CommandError("transfer_refused", str(exc), status=409) from None
        tid = tid or str(stable_id("transfer", source.household_id, source.revision, key))
        doc: Document = {
            "_id": tid, "from_id": str(source.household_id), "to_id": str(target.household_id),
            "from_kk": from_kk, "to_kk": req.to_kk, "nik_key": key, "member": member.model_dump(mode="json"),
            "relationship": req.relationship.value, "actor": caller.actor.model_dump(mode="json"),
            "state": "pending", "at": self.ctx.clock(),
        }
        if not await insert_once(self.collection, doc):
            doc = await self.collection.find_one({"_id": tid}) or doc
        return await self.run(doc)

    async def run(self, doc: Document) -> TransferResult:
        """Carries the saga to its end from wherever it stopped (safe to run twice at once)."""
        tid, key, actor = doc["_id"], doc["nik_key"], Actor.model_validate(doc["actor"])
        member = Member.model_validate(doc["member"])
        if doc.get("state") == "aborted":
            raise CommandError("transfer_aborted", f"the transfer was aborted: {doc.get('reason', '')}", status=409)
        if doc.get("state") != "done":
            if not await self.ctx.niks.hand_over(key, doc["from_id"], doc["to_id"], tid):
                await self._abort(tid, "the NIK is no longer held by the source household")
            try:
                source = await self._apply(doc, doc["from_id"], HouseholdChangeKind.TRANSFER_OUT, doc["to_kk"],
                                           lambda h: without_member(h, member.nik), actor)
            except TransferRefused as exc:
                latest = await self.versions.latest(doc["from_id"])
                await self.ctx.niks.settle(key, tid, doc["from_id"], latest.number if latest else 0)
                await self._abort(tid, str(exc))
            self.ctx.faults.point("crash_after_transfer_out")
            relationship = Relationship(doc["relationship"])
            target = await self._apply(doc, doc["to_id"], HouseholdChangeKind.TRANSFER_IN, doc["from_kk"],
                                       lambda h: with_member(h, member, relationship), actor)
            await self.ctx.niks.settle(key, tid, doc["to_id"], target.number)
            await self.collection.update_one({"_id": tid}, {"$set": {"state": "done", "done_at": self.ctx.clock()}})
            log.info("household_member_transferred", transfer_id=tid, source_revision=source.number,
                     target_revision=target.number)
        source_now = await self.versions.latest(doc["from_id"])
        target_now = await self.versions.latest(doc["to_id"])
        assert source_now is not None and target_now is not None
        return TransferResult(transfer_id=uuid.UUID(tid), state="done", from_household=record_of(source_now),
                              to_household=record_of(target_now))

    async def _apply(self, doc: Document, hid: str, kind: HouseholdChangeKind, counterpart_kk: str,
                     change: Callable[[Household], Household], actor: Actor) -> Version:
        tid, nik = doc["_id"], doc["member"]["nik"]
        for _ in range(8):
            latest = await self.versions.latest(hid)
            if latest is None:
                raise CommandError("household_not_found", "a household of the transfer disappeared", status=409)
            applied: list[str] = list(latest.data.get("transfers_applied", []))
            household = record_of(latest).household
            present = any(m.nik == nik for m in household.members)
            nothing_to_do = present if kind is HouseholdChangeKind.TRANSFER_IN else not present
            if tid in applied or nothing_to_do:
                return latest  # done already (or the member is already where the step would put them)
            changed = change(household)
            warnings, revision, at = nik_warnings(changed), latest.number + 1, self.ctx.clock()
            event = updated_event(hid=uuid.UUID(hid), household=changed, revision=revision, change=kind,
                                  fields=("members",), warnings=warnings, actor=actor, at=at,
                                  causation_id=f"transfer:{tid}", transferred_nik=nik, counterpart_kk=counterpart_kk)
            data: dict[str, Any] = revision_data(changed, warnings, change=kind.value, fields=("members",),
                                                 transfers=[*applied, tid], actor=actor, at=at)
            entries = self.ctx.entries([event])
            if await self.versions.append(hid, latest.number, data, outbox=entries, at=at):
                await self.ctx.flush(self.versions.collection, version_id(hid, revision), entries)
                return Version(key=hid, number=revision, data=data)
        raise CommandError("concurrent_update", "the household kept changing during the transfer; it will be "
                           "completed by the recovery", status=409)

    async def _abort(self, tid: str, reason: str) -> NoReturn:
        await self.collection.update_one({"_id": tid}, {"$set": {"state": "aborted", "reason": reason}})
        log.warning("household_transfer_aborted", transfer_id=tid, reason=reason)
        raise CommandError("transfer_aborted", f"the transfer was aborted: {reason}", status=409)

    async def resume_pending(self, older_than: dt.timedelta) -> int:
        """Finishes transfers a dead process left pending (a scan: transfers are few)."""
        resumed = 0
        cutoff = self.ctx.clock() - older_than
        async for doc in self.collection.find({"state": "pending"}):
            at: dt.datetime = doc["at"]
            if (at if at.tzinfo else at.replace(tzinfo=dt.UTC)) > cutoff:
                continue
            try:
                await self.run(doc)
                resumed += 1
            except CommandError as exc:
                log.warning("household_transfer_not_resumed", transfer_id=doc["_id"], error=exc.code)
        return resumed
