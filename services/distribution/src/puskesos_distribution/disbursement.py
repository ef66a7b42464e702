"""Disbursing one allocation through the payment gateway, at most once.

The idempotency key sent to the gateway is the allocation id, so however often this runs
(a redelivery after a kill, after an expired ack wait, two replicas at once), the gateway pays
once and answers every repeat with the same payment. The outcome is recorded once (unique
``_id`` = allocation id) with its event, then published, then the work item is acknowledged.

* executed: ``AidDisbursed``;
* unavailable (not paid): ``DisbursementFailed`` with ``final=False`` and a retry later, until
  ``disburse_max_attempts``; then ``final=True``;
* declined (not paid, for good): ``DisbursementFailed`` with ``final=True`` at once;
* no definite answer: retried with the same key (no event: nothing is known yet).
"""

from __future__ import annotations

from typing import Any

from puskesos_shared.contracts.envelope import Event
from puskesos_shared.contracts.registry import InvalidMessage
from puskesos_shared.messaging import TransientError
from puskesos_shared.messaging.consumer import Delivery

from .batching import Coalescer
from .context import Context
from .domain import disbursed_event, failed_event, stored_time
from .gateway import PaymentGateway, PaymentOrder, PaymentResult, PaymentStatus
from .store import DISBURSEMENTS
from .workitems import DisburseAllocation, WorkItem


class GatewayRefusedForNow(TransientError):
    """The gateway answered "unavailable" (nothing was paid); the item is retried later."""


class Disburser:
    def __init__(self, ctx: Context, gateway: PaymentGateway) -> None:
        self.ctx, self.gateway = ctx, gateway
        batch = ctx.settings.gateway_batch_size
        self._pay = Coalescer[PaymentOrder, PaymentResult](gateway.pay, max_batch=batch,
                                                           linger=ctx.settings.batch_linger_seconds)

    async def handle(self, item: WorkItem, delivery: Delivery) -> None:
        if not isinstance(item, DisburseAllocation):
            raise InvalidMessage(f"{item.event_type} is not a disbursement work item")
        d = item.data
        if delivery.attempt > 1:
            done = await self.ctx.store.get(DISBURSEMENTS, str(d.allocation_id))
            if done is not None:
                await self._publish(item, done)
                return
        order = PaymentOrder(idempotency_key=str(d.allocation_id), amount=d.amount, round_id=d.round_id,
                             kk_number=d.kk_number, payout_method=d.payout.method.value,
                             payout_reference=d.payout.reference)
        result = await self._pay(order)  # GatewayUnreachable: retried by the consumer, same key
        name = self.gateway.name
        if result.status is PaymentStatus.EXECUTED:
            if result.payment_id is None or result.executed_at is None:
                raise TransientError("the gateway reported a payment without its reference")
            await self._record(item, {"outcome": "disbursed", "payment_id": result.payment_id,
                                      "decided_at": stored_time(result.executed_at), "attempts": delivery.attempt})
            return
        reason = (result.reason or result.status.value)[:500]
        final = result.status is PaymentStatus.DECLINED or delivery.attempt >= self.ctx.settings.disburse_max_attempts
        if final:
            now = stored_time(self.ctx.clock())
            await self._record(item, {"outcome": "failed", "reason": reason, "decided_at": now,
                                      "attempts": delivery.attempt})
            return
        failed = failed_event(item, gateway=name, reason=reason, attempts=delivery.attempt, final=False,
                              now=self.ctx.clock())
        await self.ctx.events.publish(failed)
        self.ctx.progress.add(d.round_id, "failed_attempts")
        raise GatewayRefusedForNow(f"gateway {name}: {reason} (attempt {delivery.attempt})")

    async def _record(self, item: DisburseAllocation, outcome: dict[str, Any]) -> None:
        """Records the final outcome once (the first run to record wins), then publishes its event."""
        d = item.data
        doc = {"_id": str(d.allocation_id), "round_id": str(d.round_id), "amount": d.amount,
               "gateway": self.gateway.name, **outcome}
        if await self.ctx.store.insert(DISBURSEMENTS, doc):
            self.ctx.progress.add(d.round_id, doc["outcome"], village=item.village_code)
            if doc["outcome"] == "disbursed":
                self.ctx.progress.add(d.round_id, "disbursed_amount", d.amount)
        else:
            stored = await self.ctx.store.get(DISBURSEMENTS, str(d.allocation_id))
            if stored is None:
                raise TransientError("disbursement record not readable yet")
            doc = stored
        await self._publish(item, doc)

    async def _publish(self, item: DisburseAllocation, doc: dict[str, Any]) -> None:
        at = stored_time(doc["decided_at"])
        if doc["outcome"] == "disbursed":
            event: Event = disbursed_event(item, gateway=doc["gateway"], reference=doc["payment_id"],
                                           attempts=int(doc["attempts"]), executed_at=at)
        else:
            event = failed_event(item, gateway=doc["gateway"], reason=doc["reason"], attempts=int(doc["attempts"]),
                                 final=True, now=at)
        await self.ctx.events.publish(event)
