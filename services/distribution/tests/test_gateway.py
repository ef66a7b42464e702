"""The simulated gateway and the HTTP adapter: idempotency keys, failures, the executed-payments ledger."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest
from puskesos_distribution.gateway import GatewayUnreachable, HttpGateway, PaymentOrder, PaymentStatus
from puskesos_distribution.gateway_sim import SimConfig, create_gateway_app

ROUND = uuid.uuid4()


def order(key: str, amount: int = 300_000, reference: str = "1234567890", kk: str = "3509010502200001"
          ) -> PaymentOrder:
    return PaymentOrder(idempotency_key=key, amount=amount, round_id=ROUND, kk_number=kk,
                        payout_method="bank_account", payout_reference=reference)


def adapter(config: SimConfig, batch_size: int = 1) -> tuple[HttpGateway, httpx.ASGITransport]:
    transport = httpx.ASGITransport(app=create_gateway_app(config))
    return HttpGateway("http://gateway", transport=transport, batch_size=batch_size), transport


async def test_a_key_is_paid_once_however_often_and_however_concurrently_it_comes() -> None:
    gateway, _ = adapter(SimConfig(latency_seconds=0.2))
    results = await asyncio.gather(*(gateway.pay([order("alloc-1")]) for _ in range(5)))
    again = await gateway.pay([order("alloc-1")])
    ledger = await gateway.ledger(ROUND)
    await gateway.close()

    ids = {r[0].payment_id for r in [*results, again]}
    assert len(ids) == 1 and all(r[0].status is PaymentStatus.EXECUTED for r in results)
    assert sum(not r[0].replayed for r in results) == 1 and again[0].replayed
    assert [(e.idempotency_key, e.amount, e.executions) for e in ledger] == [("alloc-1", 300_000, 1)]


async def test_unavailable_and_declined_pay_nothing_and_a_reused_key_is_refused() -> None:
    gateway, transport = adapter(SimConfig(failure_rate=0.5, seed=1))
    outcomes = [(await gateway.pay([order(f"k{i}")]))[0].status for i in range(40)]
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        stats = (await client.get("/v1/stats")).json()
    ledger = await gateway.ledger(ROUND)
    await gateway.close()
    assert set(outcomes) == {PaymentStatus.EXECUTED, PaymentStatus.UNAVAILABLE}
    assert len(ledger) == outcomes.count(PaymentStatus.EXECUTED) == stats["executed_count"]
    assert stats["unavailable"] == outcomes.count(PaymentStatus.UNAVAILABLE)

    reliable, _ = adapter(SimConfig())
    declined = await reliable.pay([order("closed-account", reference="0000123456")])
    await reliable.pay([order("x")])
    reused = await reliable.pay([order("x", amount=999_999)])
    assert declined[0].status is PaymentStatus.DECLINED and declined[0].payment_id is None
    assert reused[0].status is PaymentStatus.DECLINED and "different payment" in reused[0].reason
    assert [e.idempotency_key for e in await reliable.ledger(ROUND)] == ["x"]
    await reliable.close()


async def test_batches_answer_per_key_and_the_ledger_survives_a_restart(tmp_path: Path) -> None:
    ledger_file = tmp_path / "ledger.jsonl"
    gateway, _ = adapter(SimConfig(ledger_path=ledger_file), batch_size=50)
    orders = [order(f"b{i}", kk=f"35090105022{i:05d}") for i in range(30)]
    first = await gateway.pay([*orders, orders[0]])  # b0 twice in one batch: paid once
    await gateway.close()
    restarted, _ = adapter(SimConfig(ledger_path=ledger_file), batch_size=50)
    replay = await restarted.pay(orders[:3])
    ledger = await restarted.ledger(ROUND)
    await restarted.close()

    assert [r.idempotency_key for r in first] == [o.idempotency_key for o in orders] + ["b0"]
    assert first[0].payment_id == first[-1].payment_id
    assert len(ledger) == 30 and all(r.replayed for r in replay)
    assert [r.payment_id for r in replay] == [r.payment_id for r in first[:3]]


async def test_no_definite_answer_is_an_error_to_retry() -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, text="oops")

    gateway = HttpGateway("http://gateway", transport=httpx.MockTransport(broken))
    with pytest.raises(GatewayUnreachable, match="HTTP 500"):
        await gateway.pay([order("k")])
    await gateway.close()
    unreachable = HttpGateway("http://127.0.0.1:9", timeout=2)
    with pytest.raises(GatewayUnreachable, match="ConnectError"):
        await unreachable.pay([order("k")])
    await unreachable.close()
