"""Allocating one candidate: eligibility re-check, one decision per KK, quota and budget, events.

The order of writes (each an insert with a deterministic ``_id``) is what makes a crash at any
point harmless; see ``reservations`` for the argument. A decision document records the facts
of the decision (outcome, village, amount, reason, time); the event and, for an allocation, the
disbursement work item are rebuilt from it and from the work item, so a retried work item
republishes the very same messages (same ids, same bytes; the broker keeps one copy of each).
The work item is acknowledged only after they are published: the work queue is the outbox of
these decisions. Decision documents stay small because FerretDB reads by scanning them.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import structlog
from puskesos_shared.contracts.distribution import RejectionReason
from puskesos_shared.contracts.registry import InvalidMessage
from puskesos_shared.messaging import TransientError
from puskesos_shared.messaging.consumer import Delivery

from .context import Context
from .domain import (
    Rejection,
    RoundView,
    allocated_event,
    allocation_id_for,
    check_candidate,
    rejected_event,
    stored_time,
    village_of,
)
from .reservations import BUDGET, village_scope
from .store import ALLOCATIONS, CLAIMS, REJECTIONS
from .workitems import AllocateCandidate, Disbursement, WorkItem, disburse_item

log = structlog.get_logger("puskesos.distribution.allocation")


def rejection_id(item: AllocateCandidate) -> str:
    return f"{item.data.round_id}:{item.data.candidate_id}"


class Allocator:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def handle(self, item: WorkItem, delivery: Delivery) -> None:
        if not isinstance(item, AllocateCandidate):
            raise InvalidMessage(f"{item.event_type} is not an allocation work item")
        c = item.data
        allocation_id = allocation_id_for(c.round_id, c.kk_number)
        retried = delivery.attempt > 1
        if retried and await self._replay(item, allocation_id):
            return
        found, (household, assessment) = await asyncio.gather(self.ctx.round_view(c.round_id),
                                                              self.ctx.projection.latest(c.kk_number))
        if found is None:
            raise InvalidMessage(f"round {c.round_id} does not exist")
        round_ = found[0]
        village = village_of(item, household)
        rejection = check_candidate(item, round_, household, assessment)
        if rejection is not None:
            await self._reject(item, village, rejection)
            return
        claim = {"_id": str(allocation_id), "round_id": str(c.round_id), "candidate_id": c.candidate_id}
        if not await self.ctx.store.insert(CLAIMS, claim):
            holder = await self.ctx.store.get(CLAIMS, str(allocation_id))
            if holder is None:  # claims are never deleted; the read raced a lagging replica
                raise TransientError("claim not readable yet")
            if holder["candidate_id"] != c.candidate_id:
                await self._reject(item, village, Rejection(
                    RejectionReason.DUPLICATE_KK,
                    f"the family is already decided in this round by candidate {holder['candidate_id']}"))
                return
            if not retried and await self._replay(item, allocation_id):
                return
            retried = True  # an earlier run claimed the family: reuse what it reserved
        await self._reserve_and_allocate(item, allocation_id, round_, village, retried)

    async def _reserve_and_allocate(self, item: AllocateCandidate, allocation_id: uuid.UUID, round_: RoundView,
                                    village: str, retried: bool) -> None:
        c, reservations = item.data, self.ctx.reservations
        scopes = [village_scope(village), BUDGET] if round_.quotas else [BUDGET]
        held = await reservations.held(allocation_id, scopes) if retried else {}
        if round_.quotas:
            scope = village_scope(village)
            if scope not in held and await reservations.pool(
                    c.round_id, scope, round_.quotas[village]).take(allocation_id, c.candidate_id) is None:
                await self._reject(item, village, Rejection(
                    RejectionReason.QUOTA_EXHAUSTED, f"village {village} has used all "
                    f"{round_.quotas[village]} places of this round"))
                return
        if BUDGET not in held and await reservations.pool(
                c.round_id, BUDGET, round_.budget_slots).take(allocation_id, c.candidate_id) is None:
            await self._reject(item, village, Rejection(
                RejectionReason.BUDGET_EXHAUSTED, f"the budget covers {round_.budget_slots} families "
                "and all are allocated"))
            return
        doc: dict[str, Any] = {
            "_id": str(allocation_id), "round_id": str(c.round_id), "kk": c.kk_number, "village_code": village,
            "amount": round_.amount_per_family, "candidate_id": c.candidate_id,
            "decided_at": stored_time(self.ctx.clock()),
        }
        if await self.ctx.store.insert(ALLOCATIONS, doc):
            self.ctx.progress.add(c.round_id, "allocated")
        else:  # the same item ran twice at once and the other run recorded first: publish its record
            winner = await self.ctx.store.get(ALLOCATIONS, str(allocation_id))
            if winner is None:
                raise TransientError("allocation not readable yet")
            doc = winner
        await self._publish_allocation(item, doc)

    async def _publish_allocation(self, item: AllocateCandidate, doc: dict[str, Any]) -> None:
        c, decided_at = item.data, stored_time(doc["decided_at"])
        event = allocated_event(item, doc["village_code"], int(doc["amount"]), decided_at)
        work = disburse_item(Disbursement(allocation_id=event.data.allocation_id, round_id=c.round_id,
                                          kk_number=c.kk_number, amount=int(doc["amount"]), payout=c.payout,
                                          allocated_event_id=event.event_id),
                             actor=item.actor, village_code=doc["village_code"], now=decided_at)
        await asyncio.gather(self.ctx.events.publish(self.ctx.events.entry(event)), self.ctx.work.publish(work))

    async def _reject(self, item: AllocateCandidate, village: str, rejection: Rejection) -> None:
        c = item.data
        doc: dict[str, Any] = {
            "_id": rejection_id(item), "round_id": str(c.round_id), "kk": c.kk_number, "village_code": village,
            "reason": rejection.reason.value, "detail": rejection.detail, "candidate_id": c.candidate_id,
            "decided_at": stored_time(self.ctx.clock())}
        if await self.ctx.store.insert(REJECTIONS, doc):
            self.ctx.progress.add(c.round_id, f"rejected_{rejection.reason.value}")
        else:
            stored = await self.ctx.store.get(REJECTIONS, rejection_id(item))
            if stored is None:
                raise TransientError("rejection not readable yet")
            doc = stored
        await self._publish_rejection(item, doc)

    async def _publish_rejection(self, item: AllocateCandidate, doc: dict[str, Any]) -> None:
        rejection = Rejection(RejectionReason(doc["reason"]), doc["detail"])
        event = rejected_event(item, doc["village_code"], rejection, stored_time(doc["decided_at"]))
        await self.ctx.events.publish(self.ctx.events.entry(event))

    async def _replay(self, item: AllocateCandidate, allocation_id: uuid.UUID) -> bool:
        """Republishes what an earlier run decided for this candidate, if it decided anything."""
        allocation, rejection = await asyncio.gather(self.ctx.store.get(ALLOCATIONS, str(allocation_id)),
                                                     self.ctx.store.get(REJECTIONS, rejection_id(item)))
        if allocation is not None and allocation["candidate_id"] == item.data.candidate_id:
            await self._publish_allocation(item, allocation)
            return True
        if rejection is not None:
            await self._publish_rejection(item, rejection)
            return True
        return False
