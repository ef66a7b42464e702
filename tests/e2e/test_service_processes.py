"""The five services as real processes against the real nats-server and Mongo-compatible server.

One module-scoped stack starts all five at once (concurrently: start-up is mostly imports).
Each service gets a namespace of its own (``{base}_{service}``) so that the stream check
proves that *this* service provisioned its streams, not a neighbour or a fixture.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import nats
import pytest
import pytest_asyncio
from nats.js import JetStreamContext
from nats.js.api import StorageType
from prometheus_client.parser import text_string_to_metric_families
from puskesos_shared.testing.processes import ServiceProcess, free_port
from puskesos_shared.testing.servers import ServerHandle
from puskesos_shared.topology import DUPLICATE_WINDOW_SECONDS, Topology
from pymongo import AsyncMongoClient

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

SERVICES = ("intake", "referral", "distribution", "notification", "audit")
READY_TIMEOUT = 90.0  # five interpreters importing FastAPI, FastStream and PyMongo on two cores
#: uvicorn waits up to 20 s for open requests, FastStream up to 15 s for running handlers;
#: an idle service must be far quicker than that.
STOP_BOUND = 15.0
#: PyMongo's serverSelectionTimeoutMS in puskesos_shared.mongo is 5000 ms; add interpreter start-up.
FAIL_FAST_BOUND = 30.0


@dataclass
class Stack:
    base: str
    log_dir: Path
    processes: dict[str, ServiceProcess] = field(default_factory=dict)
    ready_seconds: dict[str, float] = field(default_factory=dict)

    def topology(self, service: str) -> Topology:
        return Topology(namespace=self.namespace(service))

    def namespace(self, service: str) -> str:
        return f"{self.base}_{service}"

    async def ensure_running(self) -> None:
        """(Re)starts every process that is not running and waits until all are ready."""
        stopped = [p for p in self.processes.values() if not p.running]
        for process in stopped:
            process.start()
        timings = await asyncio.gather(*(asyncio.to_thread(p.wait_ready, READY_TIMEOUT) for p in stopped))
        self.ready_seconds.update({p.name: t for p, t in zip(stopped, timings, strict=True)})


async def _remove_test_data(nats_url: str, mongo_url: str, stack: Stack) -> None:
    nc = await nats.connect(nats_url, name="pytest-cleanup")
    try:
        js = nc.jetstream()
        for service in SERVICES:
            for config in stack.topology(service).stream_configs():
                with suppress(Exception):
                    await js.delete_stream(config.name or "")
    finally:
        await nc.close()
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo_url, serverSelectionTimeoutMS=5000)
    try:
        for name in await client.list_database_names():
            if name.startswith(stack.base):
                await client.drop_database(name)
    finally:
        await client.close()


@pytest_asyncio.fixture(scope="module")
async def stack(
    nats_server: ServerHandle, mongo_server: ServerHandle, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    base = f"t{uuid.uuid4().hex[:12]}"
    stack = Stack(base=base, log_dir=tmp_path_factory.mktemp("service-logs"))
    for service in SERVICES:
        stack.processes[service] = ServiceProcess.for_service(
            service, nats_url=nats_server.url, mongo_url=mongo_server.url,
            namespace=stack.namespace(service), db_prefix=base, log_dir=stack.log_dir,
        )
    try:
        await stack.ensure_running()
        yield stack
    finally:
        for process in stack.processes.values():
            process.stop()
        await _remove_test_data(nats_server.url, mongo_server.url, stack)


@pytest_asyncio.fixture
async def running(stack: Stack) -> Stack:
    """The stack with every service up (a test that stopped them does not break later ones)."""
    await stack.ensure_running()
    return stack


@pytest.mark.parametrize("service", SERVICES)
async def test_health_endpoints_answer_with_the_service_name(running: Stack, service: str) -> None:
    process = running.processes[service]
    async with httpx.AsyncClient(base_url=process.base_url, timeout=5) as client:
        live = await client.get("/health/live")
        ready = await client.get("/health/ready")

    assert live.status_code == 200
    assert live.json() == {"status": "ok", "service": service}
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "service": service, "checks": {"nats": True, "mongo": True}}


@pytest.mark.parametrize("service", SERVICES)
async def test_metrics_are_prometheus_text(running: Stack, service: str) -> None:
    async with httpx.AsyncClient(base_url=running.processes[service].base_url, timeout=5) as client:
        response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = {family.name for family in text_string_to_metric_families(response.text)}
    assert {"puskesos_events_published", "puskesos_messages_processed"} <= families
    assert "process_cpu_seconds" in families


@pytest.mark.parametrize("service", SERVICES)
async def test_each_service_provisions_its_streams(
    running: Stack, jetstream: JetStreamContext, service: str
) -> None:
    topology = running.topology(service)

    events = await jetstream.stream_info(topology.events_stream)
    dead_letters = await jetstream.stream_info(topology.dead_letter_stream)

    assert events.config.subjects == [topology.all_events]
    assert dead_letters.config.subjects == [f"{topology.namespace}.dlq.>"]
    for info in (events, dead_letters):
        assert info.config.storage == StorageType.FILE
        assert info.config.duplicate_window == DUPLICATE_WINDOW_SECONDS
        assert info.config.num_replicas == 1


@pytest.mark.parametrize("service", SERVICES)
def test_logs_are_json_and_name_the_service(running: Stack, service: str) -> None:
    process = running.processes[service]

    started = process.wait_for_log(lambda r: r.get("event") == "service_started", timeout=10)

    assert started["service"] == service
    assert started["namespace"] == running.namespace(service)
    assert started["database"] == f"{running.base}_{service}"
    assert process.non_json_lines() == []


async def test_sigterm_stops_every_service_cleanly(running: Stack) -> None:
    processes = list(running.processes.values())

    async def stop(process: ServiceProcess) -> tuple[int, float]:
        began = time.monotonic()
        code = await asyncio.to_thread(process.terminate, STOP_BOUND)
        return code, time.monotonic() - began

    results = dict(zip(running.processes, await asyncio.gather(*(stop(p) for p in processes)), strict=True))

    for service, (code, seconds) in results.items():
        process = running.processes[service]
        assert code == 0, f"{service} exited with {code} after SIGTERM:\n{process.log_tail()}"
        assert seconds < STOP_BOUND
        events = [r.get("event") for r in process.log_records(current_run=True)]
        assert "service_stopped" in events, f"{service} logged no service_stopped:\n{process.log_tail()}"
        assert events.index("service_started") < events.index("service_stopped")
        assert process.non_json_lines(current_run=True) == []


async def test_unreachable_mongo_fails_fast_with_a_clear_error(
    nats_url: str, namespace: str, db_prefix: str, tmp_path: Path
) -> None:
    closed_port = free_port()  # bound and released: nothing listens there
    process = ServiceProcess.for_service(
        "intake", nats_url=nats_url, mongo_url=f"mongodb://127.0.0.1:{closed_port}/",
        namespace=namespace, db_prefix=db_prefix, log_dir=tmp_path,
    )
    began = time.monotonic()
    process.start()
    try:
        code = await asyncio.to_thread(process.wait_exit, FAIL_FAST_BOUND)
    finally:
        process.stop()
    seconds = time.monotonic() - began

    log = process.log_text()
    assert code != 0, log
    assert seconds < FAIL_FAST_BOUND
    assert "ServerSelectionTimeoutError" in log
    assert f"127.0.0.1:{closed_port}" in log
    assert "Application startup failed" in log
    events = [r.get("event") for r in process.log_records()]
    assert "service_started" not in events
