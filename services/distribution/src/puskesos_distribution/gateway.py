"""The PaymentGateway port and its HTTP adapter (and an in-memory fake for tests).

The gateway is where money moves, so it is also where payouts are counted. Every payment
carries an idempotency key, the allocation id: a gateway that has executed a key answers a
repeat with the same payment instead of paying again. Outcomes:

* ``executed``: paid (possibly earlier: ``replayed``);
* ``declined``: refused for good (e.g. the account does not exist); not paid;
* ``unavailable``: refused for now (the bank is busy); not paid, may be retried.

Anything else (a timeout, a dropped connection, an unexpected answer) is ambiguous: the
payment may or may not have happened. ``GatewayUnreachable`` is raised and the caller retries
with the same key, which settles the question either way.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import uuid
from collections.abc import Sequence
from enum import StrEnum
from typing import Any, Protocol

import httpx
from puskesos_shared.messaging import TransientError
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError


class PaymentStatus(StrEnum):
    EXECUTED = "executed"
    DECLINED = "declined"
    UNAVAILABLE = "unavailable"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class PaymentOrder(_Model):
    idempotency_key: str = Field(min_length=1, max_length=100)
    amount: int = Field(gt=0)
    round_id: uuid.UUID
    kk_number: str
    payout_method: str
    payout_reference: str


class PaymentResult(_Model):
    idempotency_key: str
    status: PaymentStatus
    payment_id: str | None = None
    executed_at: AwareDatetime | None = None
    reason: str = ""
    replayed: bool = False


class LedgerEntry(_Model):
    idempotency_key: str
    payment_id: str
    amount: int
    round_id: uuid.UUID
    kk_number: str
    executed_at: AwareDatetime
    executions: int = 1


class GatewayUnreachable(TransientError):
    """No definite answer from the gateway; retry with the same idempotency key."""


class PaymentGateway(Protocol):
    name: str

    async def pay(self, orders: Sequence[PaymentOrder]) -> list[PaymentResult]: ...
    async def ledger(self, round_id: uuid.UUID) -> list[LedgerEntry]: ...
    async def close(self) -> None: ...


class HttpGateway:
    """Talks to a payment gateway over HTTP (the simulated one speaks the same API).

    ``batch_size`` 1 sends ``POST /v1/payments`` with an ``Idempotency-Key`` header per payment;
    more sends ``POST /v1/payment-batches`` with a key per item.
    """

    def __init__(self, base_url: str, *, name: str = "simulated", timeout: float = 30.0, batch_size: int = 1,
                 transport: httpx.AsyncBaseTransport | None = None, max_connections: int = 100) -> None:
        self.name, self.batch_size = name, batch_size
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._client = httpx.AsyncClient(base_url=base_url, timeout=timeout, transport=transport, limits=limits)

    async def pay(self, orders: Sequence[PaymentOrder]) -> list[PaymentResult]:
        if self.batch_size == 1 or len(orders) == 1:
            return list(await asyncio.gather(*(self._pay_one(o) for o in orders)))
        body = {"payments": [o.model_dump(mode="json") for o in orders]}
        data = await self._request("POST", "/v1/payment-batches", json=body, ok=(200,))
        try:
            results = [PaymentResult.model_validate(r) for r in data["results"]]
        except (KeyError, TypeError, ValidationError) as exc:
            raise GatewayUnreachable(f"unexpected batch answer: {type(exc).__name__}") from None
        by_key = {r.idempotency_key: r for r in results}
        missing = [o.idempotency_key for o in orders if o.idempotency_key not in by_key]
        if missing:
            raise GatewayUnreachable(f"batch answer lacks {len(missing)} payments")
        return [by_key[o.idempotency_key] for o in orders]

    async def _pay_one(self, order: PaymentOrder) -> PaymentResult:
        body = order.model_dump(mode="json", exclude={"idempotency_key"})
        data = await self._request("POST", "/v1/payments", json=body, ok=(200, 201, 422, 503),
                                   headers={"Idempotency-Key": order.idempotency_key})
        try:
            return PaymentResult.model_validate({**data, "idempotency_key": order.idempotency_key})
        except ValidationError:
            raise GatewayUnreachable("unexpected payment answer") from None

    async def ledger(self, round_id: uuid.UUID) -> list[LedgerEntry]:
        data = await self._request("GET", "/v1/ledger", params={"round_id": str(round_id)}, ok=(200,))
        return [LedgerEntry.model_validate(p) for p in data["payments"]]

    async def _request(self, method: str, path: str, *, ok: tuple[int, ...], **kwargs: Any) -> Any:
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise GatewayUnreachable(f"{method} {path}: {type(exc).__name__}") from None
        if response.status_code not in ok:
            raise GatewayUnreachable(f"{method} {path}: HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError:
            raise GatewayUnreachable(f"{method} {path}: answer is not JSON") from None

    async def close(self) -> None:
        await self._client.aclose()


class InMemoryGateway:
    """A fake for tests: pays at once, remembers keys, counts executions; ``unavailable`` fails keys on demand."""

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self.payments: dict[str, LedgerEntry] = {}
        self.unavailable: dict[str, int] = {}  # key -> how many more calls answer "unavailable"
        self.declined: set[str] = set()
        self.calls = 0
        self._ids = itertools.count(1)

    async def pay(self, orders: Sequence[PaymentOrder]) -> list[PaymentResult]:
        return [self._pay(o) for o in orders]

    def _pay(self, order: PaymentOrder) -> PaymentResult:
        self.calls += 1
        key = order.idempotency_key
        if key in self.payments:
            p = self.payments[key]
            return PaymentResult(idempotency_key=key, status=PaymentStatus.EXECUTED, payment_id=p.payment_id,
                                 executed_at=p.executed_at, replayed=True)
        if self.unavailable.get(key, 0) > 0:
            self.unavailable[key] -= 1
            return PaymentResult(idempotency_key=key, status=PaymentStatus.UNAVAILABLE, reason="bank busy")
        if key in self.declined:
            return PaymentResult(idempotency_key=key, status=PaymentStatus.DECLINED, reason="account closed")
        entry = LedgerEntry(idempotency_key=key, payment_id=f"MEM-{next(self._ids):08d}", amount=order.amount,
                            round_id=order.round_id, kk_number=order.kk_number, executed_at=dt.datetime.now(dt.UTC))
        self.payments[key] = entry
        return PaymentResult(idempotency_key=key, status=PaymentStatus.EXECUTED, payment_id=entry.payment_id,
                             executed_at=entry.executed_at)

    async def ledger(self, round_id: uuid.UUID) -> list[LedgerEntry]:
        return [p for p in self.payments.values() if p.round_id == round_id]

    async def close(self) -> None:
        return None
