"""The year-end scenario, small, across real processes: the five services (two distribution
replicas), the simulated bank, the test's nats-server and Mongo engine.

The same runner as ``puskesos demo`` (``puskesos_cli.scenario``) drives the services through their
public edges, then the end state is checked where effects land: every complaint has one case;
every allocation is paid once at the bank (counted per idempotency key in the bank's own ledger)
or failed with a reason; the round closes within its budget and quotas and reconciles; the
audit chain verifies over the whole stream; every event people must hear about has a
notification outcome and each sent message is in the channel exactly once; nothing was
dead-lettered. The report is written as the demo writes it.
"""

from __future__ import annotations

import asyncio
import io
import secrets
import sys
from collections.abc import AsyncIterator
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path

import nats
import pytest
import pytest_asyncio
from nats.js import JetStreamContext
from puskesos_cli.scenario.context import ScenarioOptions
from puskesos_cli.scenario.env import SERVICE_MODULES, SERVICES, Endpoints, ScenarioEnv, gateway_argv, service_env
from puskesos_cli.scenario.present import write_report
from puskesos_cli.scenario.runner import ScenarioResult, run_scenario
from puskesos_shared.testing.processes import ServiceProcess, free_port
from pymongo import AsyncMongoClient
from rich.console import Console

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

READY_TIMEOUT = 120.0  # seven interpreters importing FastAPI, FastStream and PyMongo on two cores
DISTRIBUTION_REPLICAS = 2
OPTIONS = ScenarioOptions(size=114, regency="35.73", seed=7, complaint_share=0.2, concurrency=8, run_id="systest")


@dataclass
class Stack:
    env: ScenarioEnv
    gateway: ServiceProcess
    processes: list[ServiceProcess] = field(default_factory=list)

    def stop(self) -> None:
        for process in self.processes:
            process.stop()
        self.gateway.stop(timeout=10)

    def logs(self, chars: int = 3000) -> str:
        return "\n".join(f"--- {p.name} ({p.log_path})\n{p.log_tail(chars)}" for p in self.processes)


def _start(nats_url: str, mongo_url: str, namespace: str, db_prefix: str, work: Path) -> Stack:
    secret = secrets.token_urlsafe(48)
    ledger, notifications, clock = work / "bank-ledger.jsonl", work / "notifications.jsonl", work / "clock-offset"
    clock.write_text("0\n")
    port = free_port()
    gateway = ServiceProcess(argv=gateway_argv(port, ledger, seed=OPTIONS.seed), port=port,
                             log_path=work / "logs" / "gateway.log", name="gateway").start()
    gateway_url = gateway.base_url
    stack = Stack(env=ScenarioEnv(
        endpoints=Endpoints(intake="", referral="", distribution="", notification="", audit="", gateway=gateway_url),
        nats_url=nats_url, namespace=namespace, auth_secret=secret, mongo_url=mongo_url,
        audit_database=f"{db_prefix}_audit", gateway_ledger=ledger, notifications_file=notifications,
        clock_file=clock, work_dir=work / "scratch"), gateway=gateway)
    base = {"PUSKESOS_NATS_URL": nats_url, "PUSKESOS_MONGO_URL": mongo_url, "PUSKESOS_NAMESPACE": namespace,
            "PUSKESOS_AUTH_SECRET": secret}
    urls: dict[str, str] = {}
    for service in SERVICES:
        for instance in range(DISTRIBUTION_REPLICAS if service == "distribution" else 1):
            env = {**base, "PUSKESOS_MONGO_DB": f"{db_prefix}_{service}",
                   **service_env(service, gateway_url=gateway_url, notifications_file=notifications, clock_file=clock)}
            process = ServiceProcess(SERVICE_MODULES[service], log_path=work / "logs" / f"{service}-{instance}.log",
                                     env=env, name=f"{service}-{instance}")
            stack.processes.append(process.start())
            urls.setdefault(service, process.base_url)
    stack.env = replace(stack.env, endpoints=Endpoints(**urls, gateway=gateway_url))
    return stack


@pytest_asyncio.fixture
async def stack(nats_url: str, mongo_url: str, namespace: str, db_prefix: str, jetstream: JetStreamContext,
                mongo_client: AsyncMongoClient[dict[str, object]], tmp_path: Path) -> AsyncIterator[Stack]:
    """Every process on the fixtures' servers, in the test's namespace and databases; removed afterwards."""
    stack = _start(nats_url, mongo_url, namespace, db_prefix, tmp_path)
    try:
        await asyncio.to_thread(stack.gateway.wait_ready, 60, path="/health")
        await asyncio.gather(*(asyncio.to_thread(p.wait_ready, READY_TIMEOUT) for p in stack.processes))
        yield stack
    finally:
        stack.stop()
        nc = await nats.connect(nats_url)
        with suppress(Exception):
            await nc.jetstream().delete_stream(f"{namespace.upper()}_DISTRIBUTION_WORK")
        await nc.close()


async def test_year_end_scenario_end_state(stack: Stack, tmp_path: Path) -> None:
    console = Console(file=io.StringIO(), width=160, record=True)
    try:
        result: ScenarioResult = await run_scenario(stack.env, OPTIONS, console)
    except BaseException:
        sys.stderr.write(console.export_text() + "\n" + stack.logs())
        raise
    output = console.export_text()

    failed = [f"{c.name}: {c.detail}" for c in result.checks if not c.ok]
    assert not failed, "\n".join(failed) + "\n" + output
    assert len(result.checks) == 7
    closed = result.round_closed
    assert closed["reconciliation"]["matched"] is True
    assert closed["totals"]["allocated_count"] > 0
    rejected = closed["totals"]["rejected_by_reason"]
    assert rejected.get("budget_exhausted", 0) > 0, output  # the budget covers fewer families than eligible
    assert rejected.get("quota_exhausted", 0) > 0, output
    assert rejected.get("duplicate_kk", 0) > 0, output  # assessed and listed: one allocation per family
    escalations = result.facts["escalations_by_cause"]
    assert escalations.get("referral rejected twice", 0) > 0, output
    assert escalations.get("SLA breached", 0) > 0, output  # by the referral service's own SLA loop
    assert {"on_track", "breached", "closed_on_time"} <= result.sla.keys(), output
    assert result.verify["ok"] is True
    assert "AidAllocated" in result.trace_tree and result.trace_mermaid.startswith("graph LR")
    totals = sum(r.amount_paid for r in result.rows)
    assert totals == closed["totals"]["disbursed_amount"]

    report = write_report(result, tmp_path / "report")
    text = report.read_text(encoding="utf-8")
    assert "```mermaid" in text and "## Per kecamatan" in text and "## Per kelurahan" in text
    assert (report.parent / "blt-per-kecamatan.svg").read_text().startswith("<svg")
