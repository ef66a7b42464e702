"""The in-memory Mongo engine killed mid-run: what a service answers, and what the stack does.

1. A real intake process on its own engine: once the engine is SIGKILLed, ``/health/ready``
   reports Mongo down, a write answers 503 ``storage_unavailable`` with ``Retry-After`` and no
   internals, and nothing of the refused write reaches the bus (each decision is one
   single-document write with its events inside it: there is no half-written state to publish).
2. ``puskesos stack up`` in a home of its own: the engine's life is tied to the stack's. When the
   engine dies, the watchdog stops NATS and leaves a notice; the next ``stack up`` starts the engine
   and NATS empty together, so no stream or consumer remembers events the database forgot.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.js import JetStreamContext
from puskesos_shared.auth import Officer, issue_token
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.localstack import ensure_mongo_server_jar, start_mongo_server
from puskesos_shared.testing.processes import TEST_AUTH_SECRET, ServiceProcess
from puskesos_shared.testing.servers import ServerHandle
from puskesos_shared.topology import Topology
from pymongo import MongoClient

from tests.localstack.support import cli, process, stack_state, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

VILLAGE = "35.73.01.1001"


def complaint(description: str) -> dict[str, Any]:
    return {"category": "aid_not_received", "channel": "walk_in", "urgency": "normal", "description": description,
            "village_code": VILLAGE, "complainant": {"contact_phone": "081234567890"}}


async def filed_events(js: JetStreamContext, topology: Topology) -> int:
    info = await js.stream_info(topology.events_stream)
    return int(info.state.messages)


async def test_writes_fail_clearly_and_publish_nothing_once_the_engine_is_killed(
    nats_server: ServerHandle, jetstream: JetStreamContext, topology: Topology, namespace: str, tmp_path: Path
) -> None:
    engine = start_mongo_server(ensure_mongo_server_jar(), tmp_path / "engine.log", heap="512m")
    intake = ServiceProcess.for_service("intake", nats_url=nats_server.url, mongo_url=engine.url,
                                        namespace=namespace, db_prefix=namespace, log_dir=tmp_path)
    officer = Officer(officer_id="fo-1", role=OfficerRole.FRONT_OFFICE, scope=(VILLAGE,))
    headers = {"Authorization": f"Bearer {issue_token(officer, TEST_AUTH_SECRET)}"}
    try:
        intake.start()
        await asyncio.to_thread(intake.wait_ready)
        async with httpx.AsyncClient(base_url=intake.base_url, timeout=30, headers=headers) as http:
            first = await http.post("/complaints", json=complaint("Belum menerima BLT."),
                                    headers={"Idempotency-Key": "before-the-crash"})
            assert first.status_code == 201, first.text
            deadline = time.monotonic() + 30
            while await filed_events(jetstream, topology) < 1:
                assert time.monotonic() < deadline, "the first complaint was never published"
                await asyncio.sleep(0.1)

            os.kill(engine.pid, signal.SIGKILL)
            await asyncio.to_thread(wait_until, lambda: not engine.alive(), "the engine to exit")

            ready = await http.get("/health/ready")
            assert ready.status_code == 503
            assert ready.json()["checks"] == {"nats": True, "mongo": False}

            refused = await http.post("/complaints", json=complaint("Lansia sebatang kara."),
                                      headers={"Idempotency-Key": "after-the-crash"})
            assert refused.status_code == 503, refused.text
            assert refused.headers["Retry-After"] == "5"
            body = refused.json()
            assert body["code"] == "storage_unavailable"
            assert "can be sent again" in body["detail"]
            for internal in ("127.0.0.1", str(engine.port), "Timeout", "pymongo", "Traceback"):
                assert internal not in refused.text

            assert (await http.get("/health/live")).status_code == 200  # the service itself stays up
        assert await filed_events(jetstream, topology) == 1  # nothing of the refused write was published
    finally:
        intake.stop()
        engine.stop()


# -- the local stack ------------------------------------------------------------------------------
async def _publish_and_count(nats_url: str, password: str, subject: str | None) -> int:
    nc = await nats.connect(nats_url, user="admin", password=password)
    try:
        js = nc.jetstream()
        stream = Topology().events_stream
        if subject is not None:
            await js.publish(subject, b"{}", headers={"Nats-Msg-Id": "engine-loss-probe"})
        return int((await js.stream_info(stream)).state.messages)
    finally:
        await nc.drain()


def test_stack_stops_with_its_engine_and_starts_empty_with_it(stack_home: dict[str, str]) -> None:
    home = Path(stack_home["PUSKESOS_HOME"])
    up = cli(stack_home, "stack", "up")
    assert up.returncode == 0, up.stdout + up.stderr
    servers = stack_state(home / ".local" / "stack")["servers"]
    engine, broker = process(servers["mongo"]), process(servers["nats"])
    password = json.loads((home / ".local" / "stack" / "nats-users.json").read_text())["admin"]
    subject = Topology().event_subject("intake", "complaint_filed", 1)
    assert asyncio.run(_publish_and_count(broker.url, password, subject)) == 1
    with MongoClient(engine.url) as client:
        client["puskesos_intake"]["probe"].insert_one({"_id": "written before the crash"})

    os.kill(engine.pid, signal.SIGKILL)
    notice = home / ".local" / "stack" / "engine-stopped.txt"
    wait_until(lambda: not broker.alive() and notice.exists(), "the watchdog to stop NATS and leave its notice")
    status = cli(stack_home, "stack", "status")
    assert "stopped" in status.stderr and "without `stack down`" in status.stderr

    again = cli(stack_home, "stack", "up")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "reset NATS streams" in again.stderr
    assert not notice.exists()
    servers = stack_state(home / ".local" / "stack")["servers"]
    assert asyncio.run(_publish_and_count(process(servers["nats"]).url, password, None)) == 0
    with MongoClient(process(servers["mongo"]).url) as client:
        assert "puskesos_intake" not in client.list_database_names()

    down = cli(stack_home, "stack", "down")
    assert down.returncode == 0
    for entry in servers.values():
        assert not process(entry).alive()
