"""Operator operations on rounds: open, status, close (with totals and reconciliation)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from puskesos_shared.auth import Officer
from puskesos_shared.commands import CommandError, validation_fields
from puskesos_shared.contracts.distribution import (
    AidRoundClosed,
    AidRoundClosedData,
    AidRoundOpened,
    AidRoundOpenedData,
)
from puskesos_shared.ids import stable_id
from puskesos_shared.mongo import Document
from puskesos_shared.outbox import OUTBOX_FIELD, OutboxRelay
from pydantic import ValidationError
from pymongo.asynchronous.collection import AsyncCollection

from .context import Context, split_counts
from .domain import PRODUCER, RoundStatus, round_id_for
from .reconciliation import reconcile, round_totals
from .requests import CloseRound, OpenRound, RoundStatusQuery
from .store import DECISIONS, DISBURSEMENTS, IMPORTS, PROGRESS, ROUNDS
from .workqueue import ALLOCATE, CONSUMERS, DISBURSE, work_stream, work_subject


class RoundOperations:
    def __init__(self, ctx: Context, relay: OutboxRelay) -> None:
        self.ctx, self.relay = ctx, relay

    @property
    def _rounds(self) -> AsyncCollection[Document]:
        return self.ctx.store.db[ROUNDS]

    async def _round_doc(self, round_id: uuid.UUID) -> Document:
        doc = await self._rounds.find_one({"_id": str(round_id)})
        if doc is None:
            raise CommandError("unknown_round", "no round has this key or id", status=404)
        return doc

    # open ---------------------------------------------------------------------------------
    async def open(self, req: OpenRound, officer: Officer) -> dict[str, Any]:
        round_id = round_id_for(req.key)
        try:
            data = AidRoundOpenedData(
                round_id=round_id, name=req.name, program=req.program, funding_source=req.funding_source,
                amount_per_family=req.amount_per_family, budget_cap=req.budget_cap,
                village_quotas=req.village_quotas, villages_without_quota=req.villages_without_quota,
                eligibility_rule_version=req.eligibility_rule_version,
                period_start=req.period_start, period_end=req.period_end, opened_by=officer.officer_id,
            )
        except ValidationError as exc:
            raise CommandError("invalid_request", "the round is not consistent", validation_fields(exc),
                               status=422) from None
        event = AidRoundOpened(event_id=stable_id("event", "AidRoundOpened", round_id), occurred_at=self.ctx.clock(),
                               producer=PRODUCER, correlation_id=str(round_id), actor=officer.actor(), data=data)
        entries = [self.ctx.events.entry(event)]
        config = data.model_dump(mode="json")
        doc = {"_id": str(round_id), "key": req.key, "status": RoundStatus.OPEN.value, "config": config,
               "opened_at": event.occurred_at, OUTBOX_FIELD: entries}
        created = await self.ctx.store.insert(ROUNDS, doc)
        if created:
            await self.relay.flush(self._rounds, str(round_id), entries)
        else:
            existing = await self._round_doc(round_id)
            same = _settings(existing["config"]) == _settings(config)
            if not same:
                raise CommandError("conflict", "a round with this key is already open with other settings", status=409)
        return {"round_id": str(round_id), "key": req.key, "created": created,
                "budget_slots": data.budget_cap // data.amount_per_family}

    # status -------------------------------------------------------------------------------
    async def pending_work(self, round_id: uuid.UUID) -> dict[str, int]:
        topology = self.ctx.topology
        info = await self.ctx.js.stream_info(work_stream(topology),
                                             subjects_filter=work_subject(topology, "*", round_id))
        subjects = info.state.subjects or {}
        return {kind: int(subjects.get(work_subject(topology, kind, round_id), 0)) for kind in (ALLOCATE, DISBURSE)}

    async def replicas(self) -> dict[str, Any]:
        """``replicas`` (None: unknown) and their ``instances``, from a presence request."""
        if self.ctx.presence is None:
            return {"replicas": None, "instances": []}
        return await self.ctx.presence.gather()

    async def status(self, req: RoundStatusQuery) -> dict[str, Any]:
        doc = await self._round_doc(req.round_id)
        rid = str(req.round_id)
        summed: dict[str, int] = {}
        for progress in await self.ctx.store.find_all(PROGRESS, {"round_id": rid}):
            for key, n in (progress.get("counts") or {}).items():
                summed[key] = summed.get(key, 0) + int(n)
        live, by_village = split_counts(summed)
        imports = await self.ctx.store.find_all(IMPORTS, {"round_id": rid})
        consumers = {}
        for kind, name in CONSUMERS.items():
            info = await self.ctx.js.consumer_info(work_stream(self.ctx.topology), name)
            consumers[kind] = {"pending": info.num_pending or 0, "ack_pending": info.num_ack_pending or 0,
                               "redelivered": info.num_redelivered or 0}
        out: dict[str, Any] = {
            "round_id": rid, "key": doc["key"], "status": doc["status"], "config": doc["config"],
            "candidates": sum(int(i.get("accepted", 0)) for i in imports),
            "live": live, "by_village": by_village, "pending": await self.pending_work(req.round_id),
            "consumers": consumers,
            "closed": doc.get("closed"), **await self.replicas(),
            "as_of": self.ctx.clock().isoformat(), "as_of_monotonic": time.monotonic(),
        }
        if req.exact:
            out["exact"] = {
                "allocated": await self.ctx.store.count(DECISIONS, {"round_id": rid, "outcome": "allocated"}),
                "rejected": await self.ctx.store.count(DECISIONS, {"round_id": rid, "outcome": "rejected"}),
                "disbursement_outcomes": await self.ctx.store.count(DISBURSEMENTS, {"round_id": rid})}
        return out

    # close --------------------------------------------------------------------------------
    async def close(self, req: CloseRound, officer: Officer) -> dict[str, Any]:
        round_id = req.round_id
        doc = await self._round_doc(round_id)
        if doc["status"] == RoundStatus.CLOSED.value:
            return {"round_id": str(round_id), **doc["closed"], "already_closed": True}
        if self.ctx.gateway is None:
            raise CommandError("no_gateway", "this replica has no payment gateway to reconcile with", status=503)
        if doc["status"] == RoundStatus.OPEN.value:
            pending = await self.pending_work(round_id)
            if pending[ALLOCATE] and not req.force:
                raise CommandError("work_pending", f"{pending[ALLOCATE]} candidates are still queued; wait, or "
                                   "close with force to reject them (round_closed)", status=409)
            await self._rounds.update_one({"_id": str(round_id)}, {"$set": {"status": RoundStatus.CLOSING.value}})
        await self._wait_drained(round_id)
        return await self._finish(round_id, doc, officer)

    async def _wait_drained(self, round_id: uuid.UUID) -> None:
        """Waits until no work item of the round is queued or running (they check the status first)."""
        deadline = time.monotonic() + self.ctx.settings.close_wait_seconds
        while True:
            pending = await self.pending_work(round_id)
            if not any(pending.values()):
                return
            if time.monotonic() > deadline:
                raise CommandError("still_draining", f"round is closing; {pending[ALLOCATE]} allocations and "
                                   f"{pending[DISBURSE]} disbursements are still in progress: run close again",
                                   status=409)
            await asyncio.sleep(0.5)

    async def _finish(self, round_id: uuid.UUID, doc: Document, officer: Officer) -> dict[str, Any]:
        assert self.ctx.gateway is not None
        rid, store = str(round_id), self.ctx.store
        decisions = await store.find_all(DECISIONS, {"round_id": rid})
        allocations = [{**d, "_id": d["allocation_id"]} for d in decisions if d["outcome"] == "allocated"]
        rejections = [d for d in decisions if d["outcome"] != "allocated"]
        disbursements = await store.find_all(DISBURSEMENTS, {"round_id": rid})
        ledger = await self.ctx.gateway.ledger(round_id)
        config = AidRoundOpenedData.model_validate(doc["config"])
        totals = round_totals(config.budget_cap, allocations, rejections, disbursements)
        reconciliation = reconcile(allocations, disbursements, ledger)
        event = AidRoundClosed(
            event_id=stable_id("event", "AidRoundClosed", round_id), occurred_at=self.ctx.clock(), producer=PRODUCER,
            correlation_id=rid, actor=officer.actor(),
            data=AidRoundClosedData(round_id=round_id, closed_by=officer.officer_id, totals=totals,
                                    reconciliation=reconciliation),
        )
        closed = {"event_id": str(event.event_id), "closed_at": event.occurred_at, "closed_by": officer.officer_id,
                  "totals": totals.model_dump(mode="json"), "reconciliation": reconciliation.model_dump(mode="json")}
        entries = [self.ctx.events.entry(event)]
        await self._rounds.update_one({"_id": rid, "status": {"$ne": RoundStatus.CLOSED.value}}, {
            "$set": {"status": RoundStatus.CLOSED.value, "closed": closed}, "$push": {OUTBOX_FIELD: entries[0]}})
        await self.relay.flush(self._rounds, rid, entries)
        return {"round_id": rid, **closed, "already_closed": False}


def _settings(config: Document) -> Document:
    """A round's settings as compared when it is opened again (who opened it aside; an unset field is absent)."""
    return {k: v for k, v in config.items() if k != "opened_by" and v is not None}
