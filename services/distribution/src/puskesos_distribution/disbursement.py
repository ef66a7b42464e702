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

from puskesos_shared.contracts.registry import InvalidMessage
from puskesos_shared.messaging import TransientError
from puskesos_shared.messaging.consumer import Delivery

from .batching import Coalescer
from .context import Context
from .domain import disbursed_event, failed_event
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
                await self.ctx.events.publish(done["event"])
                return
        order = PaymentOrder(idempotency_key=str(d.allocation_id), amount=d.amount, round_id=d.round_id,
                             kk_number=d.kk_number, payout_method=d.payout.method.value,
                             payout_reference=d.payout.reference)
        result = await self._pay(order)  # GatewayUnreachable: retried by the consumer, same key
        name = self.gateway.name
        if result.status is PaymentStatus.EXECUTED:
            if result.payment_id is None or result.executed_at is None:
                raise TransientError("the gateway reported a payment without its reference")
            event = disbursed_event(item, gateway=name, reference=result.payment_id, attempts=delivery.attempt,
                                    executed_at=result.executed_at)
            await self._record(item, "disbursed", event.model_dump(mode="json"), self.ctx.events.entry(event),
                               payment_id=result.payment_id)
            return
        reason = result.reason or result.status.value
        final = result.status is PaymentStatus.DECLINED or delivery.attempt >= self.ctx.settings.disburse_max_attempts
        failed = failed_event(item, gateway=name, reason=reason, attempts=delivery.attempt, final=final,
                              now=self.ctx.clock())
        if final:
            await self._record(item, "failed", failed.model_dump(mode="json"), self.ctx.events.entry(failed),
                               payment_id=None)
            return
        await self.ctx.events.publish(self.ctx.events.entry(failed))
        self.ctx.progress.add(d.round_id, "failed_attempts")
        raise GatewayRefusedForNow(f"gateway {name}: {reason} (attempt {delivery.attempt})")

    async def _record(self, item: DisburseAllocation, outcome: str, event: dict[str, Any],
                      entry: dict[str, Any], *, payment_id: str | None) -> None:
        d = item.data
        doc = {"_id": str(d.allocation_id), "round_id": str(d.round_id), "kk": d.kk_number, "amount": d.amount,
               "outcome": outcome, "payment_id": payment_id, "attempts": event["data"]["attempts"],
               "event": entry}
        if await self.ctx.store.insert(DISBURSEMENTS, doc):
            self.ctx.progress.add(d.round_id, outcome)
            if outcome == "disbursed":
                self.ctx.progress.add(d.round_id, "disbursed_amount", d.amount)
        else:
            stored = await self.ctx.store.get(DISBURSEMENTS, str(d.allocation_id))
            if stored is None:
                raise TransientError("disbursement record not readable yet")
            entry = stored["event"]
        await self.ctx.events.publish(entry)
