"""A simulated payment gateway (a bank's disbursement API), run as its own process.

``python -m puskesos_distribution.gateway_sim --port 8190 --latency-ms 50 --failure-rate 0.05``

It behaves like the real thing where it matters for the guarantees: it remembers idempotency
keys (a repeated key gets the original payment back, a concurrent repeat waits for the first),
answers "unavailable" for a configurable share of requests without paying, declines accounts
starting with ``--decline-prefix``, and records every payment it executes, in memory and in an
append-only JSON-lines ledger file, so payouts are counted where the money moves, whatever
happens to the distribution replicas. ``GET /v1/stats`` and ``GET /v1/ledger`` expose the count.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import uvicorn
from fastapi import FastAPI, Header, HTTPException, Query
from fastapi.responses import JSONResponse
from puskesos_shared.service import IdleFriendlyServer
from pydantic import BaseModel, ConfigDict, Field


class PaymentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: int = Field(gt=0)
    round_id: uuid.UUID
    kk_number: str = Field(pattern=r"^[0-9]{16}$")
    payout_method: str = Field(min_length=1, max_length=50)
    payout_reference: str = Field(min_length=1, max_length=100)


class BatchItem(PaymentRequest):
    idempotency_key: str = Field(min_length=1, max_length=100)


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payments: list[BatchItem] = Field(min_length=1, max_length=1000)


@dataclass
class SimConfig:
    latency_seconds: float = 0.0
    failure_rate: float = 0.0
    decline_prefix: str = "0000"
    seed: int | None = None
    ledger_path: Path | None = None


@dataclass
class Bank:
    """The gateway's state: executed payments by key, keys being processed, counters."""

    config: SimConfig
    payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    inflight: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=lambda: {"requests": 0, "replays": 0, "unavailable": 0,
                                                              "declined": 0, "conflicts": 0})

    def __post_init__(self) -> None:
        self.rng = random.Random(self.config.seed)  # noqa: S311 - simulated failures, not security
        path = self.config.ledger_path
        if path is not None and path.exists():
            for line in path.read_text().splitlines():
                if line.strip():
                    entry = json.loads(line)
                    self.payments[entry["idempotency_key"]] = entry
        self._ledger = path.open("a", buffering=1) if path is not None else None

    async def pay(self, key: str, request: PaymentRequest, *, delay: bool = True) -> dict[str, Any]:
        self.counters["requests"] += 1
        fingerprint = request.model_dump(mode="json")
        if key in self.payments:
            return self._replay(key, fingerprint)
        if key in self.inflight:  # a concurrent repeat: the same answer as the first request
            self.counters["replays"] += 1
            answer = await asyncio.shield(self.inflight[key])
            return {**answer, "replayed": True} if answer["status"] == "executed" else answer
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.inflight[key] = future
        try:
            if delay and self.config.latency_seconds > 0:
                await asyncio.sleep(self.config.latency_seconds)
            answer = self._decide(key, request, fingerprint)
            future.set_result(answer)
            return answer
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waits
            raise
        finally:
            del self.inflight[key]

    def _replay(self, key: str, fingerprint: dict[str, Any]) -> dict[str, Any]:
        entry = self.payments[key]
        if entry["request"] != fingerprint:
            self.counters["conflicts"] += 1
            return {"status": "declined", "reason": "idempotency key reused with a different payment"}
        self.counters["replays"] += 1
        return {"status": "executed", "payment_id": entry["payment_id"], "executed_at": entry["executed_at"],
                "replayed": True}

    def _decide(self, key: str, request: PaymentRequest, fingerprint: dict[str, Any]) -> dict[str, Any]:
        if self.config.failure_rate and self.rng.random() < self.config.failure_rate:
            self.counters["unavailable"] += 1
            return {"status": "unavailable", "reason": "bank temporarily unavailable; not executed"}
        if request.payout_reference.startswith(self.config.decline_prefix):
            self.counters["declined"] += 1
            return {"status": "declined", "reason": "payout account does not exist"}
        entry = {"idempotency_key": key, "payment_id": f"SIM-{uuid.uuid4().hex[:20].upper()}",
                 "amount": request.amount, "round_id": str(request.round_id), "kk_number": request.kk_number,
                 "executed_at": dt.datetime.now(dt.UTC).isoformat(), "executions": 1, "request": fingerprint}
        self.payments[key] = entry
        if self._ledger is not None:
            self._ledger.write(json.dumps(entry) + "\n")
        return {"status": "executed", "payment_id": entry["payment_id"], "executed_at": entry["executed_at"],
                "replayed": False}

    def stats(self) -> dict[str, Any]:
        kks = [(p["round_id"], p["kk_number"]) for p in self.payments.values()]
        return {**self.counters, "executed_count": len(self.payments),
                "executed_amount": sum(p["amount"] for p in self.payments.values()),
                "families_paid_twice": len(kks) - len(set(kks))}


_STATUS_CODES = {"executed": 201, "declined": 422, "unavailable": 503}


def create_gateway_app(config: SimConfig | None = None) -> FastAPI:
    bank = Bank(config or SimConfig())
    app = FastAPI(title="Simulated payment gateway")
    app.state.bank = bank

    @app.post("/v1/payments")
    async def pay(request: PaymentRequest,
                  idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None) -> JSONResponse:
        if not idempotency_key or len(idempotency_key) > 100:
            raise HTTPException(400, "an Idempotency-Key header (1-100 characters) is required")
        answer = await bank.pay(idempotency_key, request)
        code = 200 if answer.get("replayed") else _STATUS_CODES[answer["status"]]
        return JSONResponse(answer, status_code=code)

    @app.post("/v1/payment-batches")
    async def pay_batch(batch: BatchRequest) -> dict[str, Any]:
        if bank.config.latency_seconds > 0:
            await asyncio.sleep(bank.config.latency_seconds)
        answers = await asyncio.gather(*(bank.pay(item.idempotency_key, item, delay=False) for item in batch.payments))
        return {"results": [{**a, "idempotency_key": item.idempotency_key}
                            for a, item in zip(answers, batch.payments, strict=True)]}

    @app.get("/v1/ledger")
    async def ledger(round_id: Annotated[uuid.UUID | None, Query()] = None) -> dict[str, Any]:
        payments = [{k: v for k, v in p.items() if k != "request"} for p in bank.payments.values()
                    if round_id is None or p["round_id"] == str(round_id)]
        return {"count": len(payments), "amount": sum(p["amount"] for p in payments), "payments": payments}

    @app.get("/v1/stats")
    async def stats() -> dict[str, Any]:
        return bank.stats()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8190)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--failure-rate", type=float, default=0.0)
    parser.add_argument("--decline-prefix", default="0000")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--ledger", type=Path, default=None, help="JSON-lines file of executed payments")
    args = parser.parse_args(argv)
    if not 0 <= args.failure_rate < 1:
        parser.error("--failure-rate must be in [0, 1)")
    config = SimConfig(latency_seconds=args.latency_ms / 1000, failure_rate=args.failure_rate,
                       decline_prefix=args.decline_prefix, seed=args.seed, ledger_path=args.ledger)
    server = IdleFriendlyServer(uvicorn.Config(create_gateway_app(config), host=args.host, port=args.port,
                                               log_level="warning", access_log=False))
    server.run()


if __name__ == "__main__":
    main()
