"""Real processes: replicas killed with SIGKILL mid-round, a slow gateway redelivering work.

Payouts are counted where they land: the simulated gateway's ledger (its own process).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from puskesos_distribution.domain import round_id_for
from puskesos_distribution.sample_data import villages, write_csv
from puskesos_distribution.workqueue import work_stream
from pymongo import AsyncMongoClient

pytestmark = [pytest.mark.e2e]

FAMILIES = 5_200
AMOUNT = 300_000
BUDGET_FAMILIES = 4_000


def gateway_stats(port: int) -> dict[str, Any]:
    return httpx.get(f"http://127.0.0.1:{port}/v1/stats", timeout=10).json()


def gateway_ledger(port: int, round_id: str) -> list[dict[str, Any]]:
    return httpx.get(f"http://127.0.0.1:{port}/v1/ledger", params={"round_id": round_id}, timeout=30).json()[
        "payments"]


def status(processes: Any, key: str) -> dict[str, Any]:
    done = processes.cli("round", "status", key, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.timeout(420)
async def test_replicas_killed_at_random_pay_each_family_once_within_budget_and_quotas(
    processes: Any, helpers: Any, mongo_url: str, db_prefix: str, tmp_path: Path,
    fault_tolerant_env: dict[str, str]
) -> None:
    gateway = processes.gateway("--latency-ms", "5", "--failure-rate", "0.05", "--seed", "5")
    env = {**fault_tolerant_env, "PUSKESOS_GATEWAY_URL": f"http://127.0.0.1:{gateway.port}",
           "PUSKESOS_ALLOCATE_IN_FLIGHT": "48", "PUSKESOS_DISBURSE_IN_FLIGHT": "32"}
    replicas = [processes.replica(i, **env) for i in range(3)]
    for replica in replicas:
        replica.wait_ready(90)

    codes = villages()
    quotas = {v: (12 if i % 2 == 0 else 20) for i, v in enumerate(codes)}
    key = "chaos-dbhcht-2022"
    opened = processes.cli("round", "open", key, "--name", "Chaos round", "--funding-source", "DBHCHT",
                           "--amount", str(AMOUNT), "--budget", str(AMOUNT * BUDGET_FAMILIES + 123),
                           "--from", "2022-11-01", "--to", "2022-12-31",
                           *[a for v, q in quotas.items() for a in ("--quota", f"{v}={q}")],
                           "--villages-without-quota", "excluded")
    assert opened.returncode == 0, opened.stderr
    csv_file = write_csv(tmp_path / "recipients.csv", FAMILIES, seed=2022, bad_every=400)

    rng = random.Random(7)
    kills = 0
    stop = asyncio.Event()

    async def chaos() -> None:
        """Every few seconds SIGKILL a random replica (one that is up) and start it again at once."""
        nonlocal kills
        while not stop.is_set():
            await asyncio.sleep(rng.uniform(2.0, 5.0))  # the kill schedule, not a wait for a condition
            up = [r for r in replicas if await asyncio.to_thread(r.ready)]
            if stop.is_set() or len(up) < 2:
                continue
            victim = rng.choice(up)
            victim.kill()
            kills += 1
            victim.start()

    chaos_task = asyncio.create_task(chaos())
    try:
        imported = await asyncio.to_thread(processes.cli, "round", "import", key, str(csv_file), "--chunk", "400")
        assert imported.returncode == 0, imported.stderr
        report = (tmp_path / "recipients.rejected.csv").read_text().splitlines()
        assert len(report) == 1 + FAMILIES // 400  # header + one line per bad row, each with its reason
        accepted = FAMILIES - FAMILIES // 400
        round_id = str(round_id_for(key))
        client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url)
        db = client[f"{db_prefix}_distribution"]

        js = helpers.nc.jetstream()

        async def settled() -> bool:  # an allocation is acknowledged only once its payout is queued
            return (await js.stream_info(work_stream(helpers.topology))).state.messages == 0

        deadline = time.monotonic() + 300
        while not await settled():
            assert time.monotonic() < deadline, f"round did not settle: {status(processes, key)['live']}"
            await asyncio.sleep(2)
    finally:
        stop.set()
        await chaos_task
    for replica in replicas:
        if not replica.running:
            replica.start()
    for replica in replicas:
        replica.wait_ready(90)

    closed = await asyncio.to_thread(processes.cli, "round", "close", key)
    assert closed.returncode == 0, closed.stdout + closed.stderr
    assert "matched exactly" in closed.stdout

    ledger = gateway_ledger(gateway.port, round_id)
    stats = gateway_stats(gateway.port)
    allocations = await db.decisions.find({"outcome": "allocated"}).to_list()
    closed_round = await db.rounds.find_one({"_id": round_id})
    await client.close()

    assert kills >= 3
    assert len(ledger) == BUDGET_FAMILIES == len(allocations)  # paid exactly the families the budget covers
    assert len({p["kk_number"] for p in ledger}) == len(ledger)  # no family paid twice
    assert all(p["executions"] == 1 for p in ledger) and stats["families_paid_twice"] == 0
    assert sum(p["amount"] for p in ledger) == AMOUNT * BUDGET_FAMILIES <= AMOUNT * BUDGET_FAMILIES + 123
    per_village = Counter(a["village_code"] for a in allocations)
    assert all(per_village[v] <= quotas[v] for v in per_village)
    assert any(per_village[v] == quotas[v] for v in per_village)  # some quotas were used up
    totals = closed_round["closed"]["totals"]
    assert totals["allocated_count"] == totals["disbursed_count"] == BUDGET_FAMILIES
    assert totals["allocated_count"] + totals["rejected_count"] == accepted
    assert set(totals["rejected_by_reason"]) == {"budget_exhausted", "quota_exhausted"}
    assert closed_round["closed"]["reconciliation"]["matched"] is True
    events = Counter(e["event_type"] for e in await helpers.events())
    assert events["AidAllocated"] == BUDGET_FAMILIES and events["AidDisbursed"] == BUDGET_FAMILIES
    assert events["AidAllocationRejected"] == accepted - BUDGET_FAMILIES and events["AidRoundClosed"] == 1


@pytest.mark.timeout(240)
async def test_redelivery_after_the_ack_wait_does_not_pay_twice(processes: Any, helpers: Any,
                                                                 tmp_path: Path) -> None:
    gateway = processes.gateway("--latency-ms", "3500")
    replica = processes.replica(0, PUSKESOS_GATEWAY_URL=f"http://127.0.0.1:{gateway.port}",
                                PUSKESOS_WORK_ACK_WAIT_SECONDS="1", PUSKESOS_WORK_HEARTBEAT="false",
                                PUSKESOS_GATEWAY_TIMEOUT_SECONDS="30")
    replica.wait_ready(90)
    key = "slow-gateway-2022"
    opened = processes.cli("round", "open", key, "--name", "Slow gateway", "--funding-source", "APBD",
                           "--amount", "250000", "--budget", "250000000", "--from", "2022-12-01", "--to", "2022-12-31")
    assert opened.returncode == 0, opened.stderr
    csv_file = write_csv(tmp_path / "few.csv", 3, seed=9)
    imported = processes.cli("round", "import", key, str(csv_file))
    assert imported.returncode == 0, imported.stderr

    async def three_disbursed() -> bool:
        return len(await helpers.events("AidDisbursed")) == 3

    await helpers.wait_until(three_disbursed, timeout=120, what="three disbursements")
    stats = gateway_stats(gateway.port)
    closed = processes.cli("round", "close", key)
    assert closed.returncode == 0, closed.stdout + closed.stderr

    # the ack wait expired mid-payment, the item was delivered again and its repeat reached the gateway,
    # which answered with the first payment instead of paying again
    assert stats["replays"] >= 1
    assert stats["executed_count"] == 3 and stats["families_paid_twice"] == 0
    assert "matched exactly" in closed.stdout
