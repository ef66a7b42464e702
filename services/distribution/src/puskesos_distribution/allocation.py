"""Allocating one candidate: eligibility re-check, one decision per KK, quota and budget, events.

The order of writes (each an insert with a deterministic ``_id``) is what makes a crash at any
point harmless; see ``reservations`` for the argument. Each candidate gets exactly one decision
document (``_id`` = round and candidate): allocated or rejected, with its facts (village, amount,
reason, time). If two runs of the same item race, the first decision recorded stands and both
publish it. The event and, for an allocation, the disbursement work item are rebuilt from the
decision and the work item, so a retried work item republishes the very same messages (same ids,
same bytes; the broker keeps one copy of each).
The work item is acknowledged only after they are published: the work queue is the outbox of
these decisions.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

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
from .store import CLAIMS, DECISIONS
from .workitems import AllocateCandidate, Disbursement, WorkItem, disburse_item


def decision_id(item: AllocateCandidate) -> str:
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
        if retried and await self._replay(item):
            return
        round_, (household, assessment) = await asyncio.gather(self.ctx.round_view(c.round_id),
                                                               self.ctx.projection.latest(c.kk_number))
        if round_ is None:
            raise InvalidMessage(f"round {c.round_id} does not exist")
        village = village_of(item, household)
        rejection = check_candidate(item, round_, household, assessment)
        if rejection is not None:
            await self._decide(item, {"outcome": "rejected", "village_code": village,
                                      "reason": rejection.reason.value, "detail": rejection.detail})
            return
        claim = {"_id": str(allocation_id), "round_id": str(c.round_id), "candidate_id": c.candidate_id}
        if not await self.ctx.store.insert(CLAIMS, claim):
            holder = await self.ctx.store.get(CLAIMS, str(allocation_id))
            if holder is None:  # claims are never deleted; the read raced a lagging replica
                raise TransientError("claim not readable yet")
            if holder["candidate_id"] != c.candidate_id:
                await self._decide(item, {"outcome": "rejected", "village_code": village,
                                          "reason": RejectionReason.DUPLICATE_KK.value,
                                          "detail": "the family is already decided in this round by candidate "
                                                    f"{holder['candidate_id']}"})
                return
            if not retried and await self._replay(item):
                return
            retried = True  # an earlier run claimed the family: reuse what it reserved
        await self._reserve_and_allocate(item, allocation_id, round_, village, retried)

    async def _reserve_and_allocate(self, item: AllocateCandidate, allocation_id: uuid.UUID, round_: RoundView,
                                    village: str, retried: bool) -> None:
        c, reservations = item.data, self.ctx.reservations
        quota = round_.quota_of(village)  # None: a village without a quota in a round leaving them unlimited
        scopes = [village_scope(village), BUDGET] if quota is not None else [BUDGET]
        held = await reservations.held(allocation_id, scopes) if retried else {}
        rejection: Rejection | None = None
        if quota is not None:
            scope = village_scope(village)
            if scope not in held and await reservations.pool(
                    c.round_id, scope, quota).take(allocation_id, c.candidate_id) is None:
                rejection = Rejection(RejectionReason.QUOTA_EXHAUSTED, f"village {village} has used all "
                                      f"{quota} places of this round")
        if rejection is None and BUDGET not in held and await reservations.pool(
                c.round_id, BUDGET, round_.budget_slots).take(allocation_id, c.candidate_id) is None:
            rejection = Rejection(RejectionReason.BUDGET_EXHAUSTED, f"the budget covers {round_.budget_slots} "
                                  "families and all are allocated")
        if rejection is not None:
            await self._decide(item, {"outcome": "rejected", "village_code": village,
                                      "reason": rejection.reason.value, "detail": rejection.detail})
            return
        await self._decide(item, {"outcome": "allocated", "village_code": village, "kk": c.kk_number,
                                  "allocation_id": str(allocation_id), "amount": round_.amount_per_family})

    async def _decide(self, item: AllocateCandidate, decision: dict[str, Any]) -> None:
        """Records the candidate's one decision (the first run to record wins), then publishes it."""
        doc = {"_id": decision_id(item), "round_id": str(item.data.round_id), **decision,
               "decided_at": stored_time(self.ctx.clock())}
        if await self.ctx.store.insert(DECISIONS, doc):
            key = "allocated" if doc["outcome"] == "allocated" else f"rejected_{doc['reason']}"
            self.ctx.progress.add(item.data.round_id, key, village=doc["village_code"])
        else:  # an earlier or concurrent run of this item decided first: its decision stands
            stored = await self.ctx.store.get(DECISIONS, decision_id(item))
            if stored is None:
                raise TransientError("decision not readable yet")
            doc = stored
        await self._publish(item, doc)

    async def _publish(self, item: AllocateCandidate, doc: dict[str, Any]) -> None:
        c, decided_at = item.data, stored_time(doc["decided_at"])
        if doc["outcome"] != "allocated":
            rejection = Rejection(RejectionReason(doc["reason"]), doc["detail"])
            event = rejected_event(item, doc["village_code"], rejection, decided_at)
            await self.ctx.events.publish(event)
            return
        allocated = allocated_event(item, doc["village_code"], int(doc["amount"]), decided_at)
        work = disburse_item(Disbursement(allocation_id=allocated.data.allocation_id, round_id=c.round_id,
                                          kk_number=c.kk_number, amount=int(doc["amount"]), payout=c.payout,
                                          allocated_event_id=allocated.event_id),
                             actor=item.actor, village_code=doc["village_code"], now=decided_at)
        await asyncio.gather(self.ctx.events.publish(allocated), self.ctx.work.publish(work))

    async def _replay(self, item: AllocateCandidate) -> bool:
        """Republishes what an earlier run decided for this candidate, if it decided anything."""
        decision = await self.ctx.store.get(DECISIONS, decision_id(item))
        if decision is None:
            return False
        await self._publish(item, decision)
        return True
