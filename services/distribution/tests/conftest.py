"""Fixtures of the distribution tests: settings on the test's servers, tokens, helpers, processes."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from nats.aio.client import Client as NatsClient
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from puskesos_distribution.projection import PROJECTION_CONSUMER
from puskesos_distribution.settings import DistributionSettings
from puskesos_distribution.workqueue import work_stream
from puskesos_shared.auth import Officer, issue_token
from puskesos_shared.commands import CommandReply, send_command
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.testing.processes import ServiceProcess, free_port
from puskesos_shared.topology import Topology

SECRET = "distribution-tests-secret-0123456789abcdef"
REGENCIES = ("35.73", "35.09")


def token_for(role: OfficerRole = OfficerRole.OPERATOR, officer_id: str = "op-jember-1",
              scope: tuple[str, ...] = REGENCIES) -> str:
    return issue_token(Officer(officer_id=officer_id, role=role, scope=scope), SECRET)


class Helpers:
    """Waiting on conditions, commands, reading streams (a fixture: importlib mode has no test imports)."""

    token_for = staticmethod(token_for)
    secret = SECRET

    def __init__(self, nc: NatsClient, topology: Topology) -> None:
        self.nc, self.topology = nc, topology

    @staticmethod
    async def wait_until(predicate: Callable[[], Awaitable[bool]], *, timeout: float, what: str,
                         every: float = 0.2) -> None:
        deadline = time.monotonic() + timeout
        while not await predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
            await asyncio.sleep(every)

    async def wait_projected(self, timeout: float = 30) -> None:
        """Until the household/assessment projection has handled every event published so far."""
        js = self.nc.jetstream()

        async def caught_up() -> bool:
            info = await js.consumer_info(self.topology.events_stream, PROJECTION_CONSUMER)
            return not info.num_pending and not info.num_ack_pending

        await self.wait_until(caught_up, timeout=timeout, what="the projection to catch up")

    async def command(self, name: str, body: dict[str, Any] | bytes, *, token: str | None = None,
                      timeout: float = 60.0) -> CommandReply:
        subject = self.topology.command_subject("distribution", name)
        if isinstance(body, dict):
            body = {**body, "token": token if token is not None else token_for()}
        deadline = time.monotonic() + 10
        while True:  # a service that just started may not have its subscription at the server yet
            try:
                return await send_command(self.nc, subject, body, timeout=timeout)
            except NoRespondersError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)

    async def ok(self, name: str, body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        reply = await self.command(name, body, **kwargs)
        assert reply.ok, reply.error
        return reply.result or {}

    async def stream_messages(self, stream: str, subject: str) -> list[Any]:
        """Every message of ``subject`` currently in ``stream`` (an ephemeral pull consumer from the start)."""
        js = self.nc.jetstream()
        info = await js.stream_info(stream, subjects_filter=subject)
        total = sum((info.state.subjects or {}).values())
        sub = await js.pull_subscribe(subject, stream=stream, config=ConsumerConfig(
            deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE, inactive_threshold=30.0))
        out: list[Any] = []
        deadline = time.monotonic() + 60
        try:
            while len(out) < total:
                try:
                    out += await sub.fetch(min(500, total - len(out)), timeout=10)
                except (NatsTimeoutError, TimeoutError):
                    if time.monotonic() > deadline:
                        raise
        finally:
            await sub.unsubscribe()
        return out

    async def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        msgs = await self.stream_messages(self.topology.events_stream, self.topology.events_of("distribution"))
        decoded = [json.loads(m.data) for m in msgs]
        return [e for e in decoded if event_type is None or e["event_type"] == event_type]

    async def dead_letters(self) -> list[Any]:
        return await self.stream_messages(self.topology.dead_letter_stream, f"{self.topology.namespace}.dlq.>")


@pytest.fixture
def round_body() -> Callable[..., dict[str, Any]]:
    def make(key: str = "jember-dbhcht-2022-11", **overrides: Any) -> dict[str, Any]:
        body = {"key": key, "name": "BLT DBHCHT Jember November 2022", "program": "BLT",
                "funding_source": "DBHCHT", "amount_per_family": 300_000, "budget_cap": 300_000 * 40,
                "eligibility_rule_version": "blt-eligibility@1", "period_start": "2022-11-01",
                "period_end": "2022-12-31"}
        return {**body, **overrides}

    return make


@pytest.fixture
def settings_for(nats_url: str, mongo_url: str, namespace: str, db_prefix: str
                 ) -> Callable[..., DistributionSettings]:
    def make(**overrides: Any) -> DistributionSettings:
        values: dict[str, Any] = {
            "nats_url": nats_url, "mongo_url": mongo_url, "namespace": namespace,
            "mongo_db": f"{db_prefix}_distribution", "auth_secret": SECRET, "log_json": True,
            "work_backoff_initial_seconds": 0.1, "work_backoff_max_seconds": 1.0, "close_wait_seconds": 30,
        }
        return DistributionSettings(**{**values, **overrides})

    return make


@pytest_asyncio.fixture
async def helpers(nats_client: NatsClient, topology: Topology, jetstream: Any) -> AsyncIterator[Helpers]:
    """Helpers on this test's namespace; deletes the work stream afterwards (the kit deletes the others)."""
    yield Helpers(nats_client, topology)
    with suppress(Exception):
        await nats_client.jetstream().delete_stream(work_stream(topology))


# real processes ---------------------------------------------------------------------------------
class Processes:
    """Distribution replicas and the simulated gateway as child processes (stopped by the fixture), and the CLI."""

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.tmp, self.env = tmp, env
        self.started: list[ServiceProcess] = []

    def gateway(self, *args: str, name: str = "gateway") -> ServiceProcess:
        port = free_port()
        proc = ServiceProcess(argv=[sys.executable, "-m", "puskesos_distribution.gateway_sim", "--port", str(port),
                                    "--ledger", str(self.tmp / f"{name}-ledger.jsonl"), *args],
                              log_path=self.tmp / f"{name}.log", port=port, name=name)
        self.started.append(proc.start())
        proc.wait_ready(path="/health")
        return proc

    def replica(self, index: int, **env: str) -> ServiceProcess:
        proc = ServiceProcess("puskesos_distribution", log_path=self.tmp / f"replica-{index}.log",
                              env={**self.env, **env}, name=f"replica-{index}")
        self.started.append(proc.start())
        return proc

    def cli(self, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PUSKESOS_")}
        env.update(self.env)
        env.update({"PUSKESOS_TOKEN": token or token_for(), "COLUMNS": "200"})
        return subprocess.run([sys.executable, "-m", "puskesos_distribution.cli", *args], env=env, cwd=self.tmp,
                              capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture
def fault_tolerant_env() -> dict[str, str]:
    """Settings of replicas in fault tests: retry budgets that outlast every fault, short backoffs."""
    return {"PUSKESOS_DISBURSE_MAX_ATTEMPTS": "60", "PUSKESOS_WORK_ACK_WAIT_SECONDS": "4",
            "PUSKESOS_WORK_BACKOFF_INITIAL_SECONDS": "0.2", "PUSKESOS_WORK_BACKOFF_MAX_SECONDS": "2",
            "PUSKESOS_WORK_MAX_ATTEMPTS": "200", "PUSKESOS_CLOSE_WAIT_SECONDS": "120"}


@pytest.fixture
def processes(nats_url: str, mongo_url: str, namespace: str, db_prefix: str, tmp_path: Path
              ) -> Iterator[Processes]:
    env = {"PUSKESOS_NATS_URL": nats_url, "PUSKESOS_MONGO_URL": mongo_url, "PUSKESOS_NAMESPACE": namespace,
           "PUSKESOS_MONGO_DB": f"{db_prefix}_distribution", "PUSKESOS_AUTH_SECRET": SECRET,
           "PUSKESOS_LOG_JSON": "true"}
    procs = Processes(tmp_path, env)
    yield procs
    for proc in procs.started:
        proc.stop()


def today() -> dt.date:
    return dt.date.today()


@pytest_asyncio.fixture(autouse=True)
async def dump_tasks_when_stuck(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Prints every asyncio task's stack shortly before the test's timeout (diagnosing a hang)."""
    marker = request.node.get_closest_marker("timeout")
    limit = float(marker.args[0]) if marker and marker.args else 300.0

    async def watchdog() -> None:
        await asyncio.sleep(max(limit - 15, 5))
        for task in asyncio.all_tasks():
            print(f"--- task {task.get_name()} ---", file=sys.stderr)
            task.print_stack(limit=12, file=sys.stderr)

    task = asyncio.create_task(watchdog())
    yield
    task.cancel()
