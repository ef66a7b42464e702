"""A year-end round on a 3-node NATS cluster (R3 streams, ``sync_interval: always``) through broker and replica faults.

Real processes on loopback: three nats-server nodes, the Mongo engine, three distribution replicas,
the audit service and the simulated bank (50 ms per payment). A 10,000-family round runs while, driven
by its progress (never by sleeps): the JetStream meta leader is SIGKILLed and restarted, then the node
leading the events stream (another one if that is the node just restarted), a node is SIGSTOPped for
10 s and continued, replicas are SIGKILLed and started again, and distribution is scaled from 3 to 5
replicas and back. The cluster must be healthy again between broker faults.

Afterwards: every family paid once or rejected with a reason; the bank's executions equal the
AidDisbursed events; no KK paid twice; budget and quotas held; the reconciliation exact; the audit
chain verifies and covers the events stream with no gap; nothing dead-lettered. A timeline of the
faults and the round's progress is printed.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import ServiceUnavailableError
from puskesos_distribution.domain import round_id_for
from puskesos_distribution.sample_data import villages, write_csv
from puskesos_distribution.workqueue import work_stream
from puskesos_shared.auth import Officer, issue_token
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.testing.processes import TEST_AUTH_SECRET, ServiceProcess, free_port
from puskesos_shared.testing.servers import NatsCluster
from puskesos_shared.topology import Topology
from pymongo import AsyncMongoClient

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

FAMILIES = 10_000
BAD_EVERY = 500
AMOUNT = 300_000
BUDGET_FAMILIES = 8_000
ROUND = "cluster-chaos-2026"
#: Retry budgets that outlast a leader election (a few seconds here) many times over.
DISTRIBUTION_ENV = {
    "PUSKESOS_STREAM_REPLICAS": "3", "PUSKESOS_DISBURSE_MAX_ATTEMPTS": "60", "PUSKESOS_WORK_ACK_WAIT_SECONDS": "10",
    "PUSKESOS_WORK_BACKOFF_INITIAL_SECONDS": "0.2", "PUSKESOS_WORK_BACKOFF_MAX_SECONDS": "2",
    "PUSKESOS_WORK_MAX_ATTEMPTS": "200", "PUSKESOS_CLOSE_WAIT_SECONDS": "300",
}


@dataclass
class Timeline:
    began: float = field(default_factory=time.monotonic)
    lines: list[str] = field(default_factory=list)

    def note(self, what: str, paid: int | None = None) -> None:
        progress = f" [{paid:,} paid]" if paid is not None else ""
        line = f"{time.monotonic() - self.began:7.1f} s  {what}{progress}"
        self.lines.append(line)
        print(line, flush=True)


def bank_paid(bank: ServiceProcess) -> int:
    return int(httpx.get(f"{bank.base_url}/v1/stats", timeout=10).json()["executed_count"])


async def get_json(url: str, **kwargs: Any) -> Any:
    async with httpx.AsyncClient(timeout=300) as http:
        answer = await http.get(url, **kwargs)
        assert answer.status_code == 200, answer.text
        return answer.json()


async def wait_for(condition: Callable[[], Awaitable[bool]], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.5)


async def stream_events(urls: list[str], topology: Topology) -> list[dict[str, Any]]:
    """Every event in the events stream, in stream order, with its sequence."""
    nc = await nats.connect(urls, name="chaos-reader")
    try:
        js = nc.jetstream()
        total = (await js.stream_info(topology.events_stream)).state.messages
        sub = await js.pull_subscribe(f"{topology.namespace}.events.>", stream=topology.events_stream,
                                      config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL,
                                                            ack_policy=AckPolicy.NONE, inactive_threshold=60.0))
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + 120
        while len(out) < total:
            assert time.monotonic() < deadline, f"read {len(out)} of {total} events"
            try:
                msgs = await sub.fetch(min(1000, total - len(out)), timeout=5)
            except (nats.errors.TimeoutError, TimeoutError, ServiceUnavailableError):
                continue  # a fresh consumer on a cluster whose group is not ready yet answers 503: ask again
            out += [{**json.loads(m.data), "_seq": m.metadata.sequence.stream} for m in msgs]
        await sub.unsubscribe()
        return out
    finally:
        await nc.drain()


async def stream_messages(urls: list[str], stream: str) -> int:
    nc = await nats.connect(urls, name="chaos-counter")
    try:
        return int((await nc.jetstream().stream_info(stream)).state.messages)
    finally:
        await nc.drain()


@pytest.mark.timeout(1200)
async def test_a_round_survives_broker_and_replica_faults_on_a_cluster(
    nats_cluster: NatsCluster, mongo_url: str, namespace: str, db_prefix: str, tmp_path: Path
) -> None:
    timeline = Timeline()
    topology = Topology(namespace=namespace, replicas=3)
    urls = nats_cluster.urls
    logs = tmp_path / "logs"
    bank_port = free_port()
    bank = ServiceProcess(argv=[
        sys.executable, "-m", "puskesos_distribution.gateway_sim", "--port", str(bank_port), "--latency-ms", "50",
        "--failure-rate", "0.02", "--seed", "18", "--ledger", str(tmp_path / "bank-ledger.jsonl")],
        log_path=logs / "bank.log", port=bank_port, name="bank").start()
    bank.wait_ready(path="/health")
    env = {**DISTRIBUTION_ENV, "PUSKESOS_GATEWAY_URL": bank.base_url}
    audit = ServiceProcess.for_service("audit", nats_url=nats_cluster.url, mongo_url=mongo_url, namespace=namespace,
                                       db_prefix=db_prefix, log_dir=logs,
                                       extra_env={"PUSKESOS_STREAM_REPLICAS": "3"}).start()

    def replica(index: int) -> ServiceProcess:
        proc = ServiceProcess.for_service("distribution", nats_url=nats_cluster.url, mongo_url=mongo_url,
                                          namespace=namespace, db_prefix=db_prefix, log_dir=logs / f"replica-{index}",
                                          extra_env=env)
        proc.name = f"replica-{index}"
        return proc

    replicas = [replica(i).start() for i in range(3)]
    started = [*replicas, audit]
    try:
        for proc in (*replicas, audit):
            proc.wait_ready(120)
        nats_cluster.wait_healthy([topology.events_stream, work_stream(topology)], timeout=60)
        timeline.note(f"cluster of 3 healthy (meta leader {nats_cluster.meta_leader()}), 3 replicas and audit ready")

        cli_env = {"PUSKESOS_NATS_URL": nats_cluster.url, "PUSKESOS_NAMESPACE": namespace,
                   "PUSKESOS_TOKEN": issue_token(Officer(officer_id="ops-1", role=OfficerRole.OPERATOR,
                                                         scope=("35.73", "35.09")), TEST_AUTH_SECRET),
                   "COLUMNS": "200"}

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            run_env = {k: v for k, v in os.environ.items() if not k.startswith("PUSKESOS_")} | cli_env
            return subprocess.run([sys.executable, "-m", "puskesos_distribution.cli", *args], env=run_env,
                                  cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)

        codes = villages()
        # ~33 families a village: the tight quotas run out, and the budget binds before the others do
        quotas = {v: (60 if i % 3 else 25) for i, v in enumerate(codes)}
        opened = cli("round", "open", ROUND, "--name", "Cluster chaos", "--funding-source", "DBHCHT",
                     "--amount", str(AMOUNT), "--budget", str(AMOUNT * BUDGET_FAMILIES + 99),
                     "--from", "2026-11-01", "--to", "2026-12-31",
                     *[a for v, q in quotas.items() for a in ("--quota", f"{v}={q}")],
                     "--villages-without-quota", "excluded")
        assert opened.returncode == 0, opened.stderr
        csv_file = write_csv(tmp_path / "recipients.csv", FAMILIES, seed=2026, bad_every=BAD_EVERY)
        imported = await asyncio.to_thread(cli, "round", "import", ROUND, str(csv_file), "--chunk", "500")
        assert imported.returncode == 0, imported.stderr
        timeline.note(f"{FAMILIES:,} families imported", bank_paid(bank))

        async def paid_at_least(n: int) -> None:
            async def reached() -> bool:
                return await asyncio.to_thread(bank_paid, bank) >= n
            await wait_for(reached, f"{n:,} payments", 600)

        async def healthy() -> None:
            streams = [topology.events_stream, work_stream(topology)]
            await asyncio.to_thread(nats_cluster.wait_healthy, streams, 120)
            timeline.note(f"cluster healthy again (meta leader {nats_cluster.meta_leader()}, events stream "
                          f"leader {nats_cluster.stream_leader(topology.events_stream)})", bank_paid(bank))

        async def elected(gone: str, stream: str | None) -> None:
            """Waits until another node leads (the meta group, or ``stream``) and notes how long it took."""
            began = time.monotonic()

            async def other_leader() -> bool:
                leader = await asyncio.to_thread(
                    nats_cluster.meta_leader if stream is None else partial(nats_cluster.stream_leader, stream))
                return leader is not None and leader != gone
            await wait_for(other_leader, f"a new leader of {stream or 'the meta group'}", 120)
            leader = nats_cluster.meta_leader() if stream is None else nats_cluster.stream_leader(stream)
            timeline.note(f"{leader} elected leader of {stream or 'the meta group'} after "
                          f"{time.monotonic() - began:.1f} s", bank_paid(bank))

        # 1. the JetStream meta leader
        await paid_at_least(BUDGET_FAMILIES // 10)
        first = nats_cluster.leader_node()
        first.kill()
        timeline.note(f"SIGKILL {first.name}, the meta leader", bank_paid(bank))
        await elected(first.name, None)
        await asyncio.to_thread(first.restart)
        timeline.note(f"restarted {first.name}", bank_paid(bank))
        await healthy()

        # 2. the node leading the events stream now (another one if it is the node just restarted)
        await paid_at_least(BUDGET_FAMILIES // 4)
        second = nats_cluster.leader_node(topology.events_stream)
        if second is first:
            second = next(n for n in nats_cluster.nodes if n is not first)
        second.kill()
        timeline.note(f"SIGKILL {second.name}, leader of {topology.events_stream}", bank_paid(bank))
        await elected(second.name, topology.events_stream)
        await asyncio.to_thread(second.restart)
        timeline.note(f"restarted {second.name}", bank_paid(bank))
        await healthy()

        # 3. a node frozen for 10 s (the fault's length, not a wait for a condition)
        await paid_at_least(BUDGET_FAMILIES * 2 // 5)
        frozen = nats_cluster.leader_node(work_stream(topology))
        frozen.pause()
        timeline.note(f"SIGSTOP {frozen.name}, leader of the work stream", bank_paid(bank))
        await asyncio.sleep(10)
        frozen.resume()
        timeline.note(f"SIGCONT {frozen.name}", bank_paid(bank))
        await healthy()

        # 4. replicas: killed and started again, then scaled 3 -> 5 -> 3
        await paid_at_least(BUDGET_FAMILIES // 2)
        for victim in replicas[:2]:
            victim.kill()
            timeline.note(f"SIGKILL {victim.name}", bank_paid(bank))
            victim.start()
        extra = [replica(i).start() for i in (3, 4)]
        started += extra
        replicas += extra
        timeline.note("scaled distribution 3 -> 5", bank_paid(bank))
        await paid_at_least(BUDGET_FAMILIES * 3 // 4)
        for proc in extra:
            proc.stop()
        replicas = replicas[:3]
        timeline.note("scaled distribution 5 -> 3 (SIGTERM)", bank_paid(bank))
        replicas[2].kill()
        timeline.note(f"SIGKILL {replicas[2].name}", bank_paid(bank))
        replicas[2].start()
        for proc in replicas:
            proc.wait_ready(120)

        async def drained() -> bool:
            return bool(await stream_messages(urls, work_stream(topology)) == 0)
        await wait_for(drained, "the work queue to drain", 900)
        timeline.note("work queue drained", bank_paid(bank))
        closed = await asyncio.to_thread(cli, "round", "close", ROUND)
        assert closed.returncode == 0, closed.stdout + closed.stderr
        timeline.note("round closed", bank_paid(bank))

        # the audit service has every event of the stream in its chain
        last_seq = (await stream_events(urls, topology))[-1]["_seq"]
        auditor = issue_token(Officer(officer_id="aud-1", role=OfficerRole.AUDITOR, scope=("35.73", "35.09")),
                              TEST_AUTH_SECRET)

        async def audited() -> bool:
            status = await get_json(f"{audit.base_url}/audit/status", headers={"Authorization": f"Bearer {auditor}"})
            return bool(int(status["head"].get("seq") or 0) >= last_seq)
        await wait_for(audited, "the audit log to reach the stream's end", 300)
        verify = await get_json(f"{audit.base_url}/audit/verify", headers={"Authorization": f"Bearer {auditor}"})
        timeline.note(f"audit chain verified: {verify['records']:,} records up to seq {verify['last_seq']:,}")

        events = await stream_events(urls, topology)
        dead_letters = await stream_messages(urls, topology.dead_letter_stream)
        ledger = (await get_json(f"{bank.base_url}/v1/ledger", params={"round_id": str(round_id_for(ROUND))}))[
            "payments"]
        client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url)
        allocations = await client[f"{db_prefix}_distribution"].decisions.find({"outcome": "allocated"}).to_list()
        await client.close()
    finally:
        print("\n".join(["timeline:", *timeline.lines]), flush=True)
        for proc in started:
            proc.stop()
        bank.stop()

    accepted = FAMILIES - FAMILIES // BAD_EVERY
    kinds = Counter(e["event_type"] for e in events)
    closed_event = next(e for e in events if e["event_type"] == "AidRoundClosed")["data"]
    totals = closed_event["totals"]
    # every family decided once: allocated or rejected with a reason; every allocation paid or failed finally
    assert kinds["AidAllocated"] + kinds["AidAllocationRejected"] == accepted
    assert totals["allocated_count"] + totals["rejected_count"] == accepted
    assert set(totals["rejected_by_reason"]) <= {"budget_exhausted", "quota_exhausted"}
    final_failures = {e["data"]["allocation_id"] for e in events
                      if e["event_type"] == "DisbursementFailed" and e["data"]["final"]}
    paid = {e["data"]["allocation_id"] for e in events if e["event_type"] == "AidDisbursed"}
    assert paid.isdisjoint(final_failures) and len(paid) + len(final_failures) == kinds["AidAllocated"]
    # the bank's executions are the AidDisbursed events, each family at most once
    assert len(ledger) == kinds["AidDisbursed"] == len(paid)
    assert len({p["kk_number"] for p in ledger}) == len(ledger) and all(p["executions"] == 1 for p in ledger)
    # budget and quotas held
    assert len(allocations) == kinds["AidAllocated"] <= BUDGET_FAMILIES
    per_village = Counter(a["village_code"] for a in allocations)
    assert all(per_village[v] <= quotas[v] for v in per_village)
    assert totals["allocated_amount"] <= AMOUNT * BUDGET_FAMILIES + 99
    assert closed_event["reconciliation"]["matched"] is True
    # the chain covers the stream with no gap; no fault left a dead letter
    seqs = [e["_seq"] for e in events]
    assert seqs == list(range(1, len(events) + 1))
    assert verify["ok"] and verify["first_seq"] == 1 and verify["last_seq"] == seqs[-1] == verify["records"]
    assert dead_letters == 0
