"""Each real service starts and works as its own NATS user of deploy/nats/accounts.conf.

The service apps run in-process with their real lifespan (streams, work queue, durable consumers,
command subscriptions, outbox) against a nats-server that runs the committed accounts file, with
the production namespace (``puskesos``). A permission the service needs and the file lacks shows
up as a start-up failure or as a violation in the server's log; either fails the test.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import nats
import pytest
from puskesos_shared.contracts.examples import example
from puskesos_shared.messaging import encode_event, event_headers
from puskesos_shared.messaging.dead_letter import dead_letter_headers
from puskesos_shared.messaging.streams import ensure_streams
from puskesos_shared.testing.app import running_app
from puskesos_shared.topology import Topology

from tests.deploy.nats_auth import AuthServer, auth_server
from tests.deploy.support import SERVICES, gen_secrets

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    with auth_server(tmp_path_factory.mktemp("nats-users"), gen_secrets().generate()) as srv:
        yield srv


def violations(server: AuthServer) -> list[str]:
    return [line for line in server.process.log_path.read_text(errors="replace").splitlines()
            if "violation" in line.lower()]


async def consumers(server: AuthServer) -> dict[str, int]:
    """(stream/consumer) -> pull requests waiting, from the monitoring endpoint."""
    async with httpx.AsyncClient(timeout=5) as client:
        body = (await client.get(f"{server.monitor_url}/jsz?acc=PUSKESOS&consumers=true")).json()
    return {f"{c['stream_name']}/{c['name']}": int(c.get("num_waiting", 0))
            for account in body.get("account_details", []) for stream in account.get("stream_detail", [])
            for c in stream.get("consumer_detail", [])}


def settings_for(name: str, server: AuthServer, mongo_url: str, db_prefix: str) -> Any:
    module = importlib.import_module(f"puskesos_{name}.settings")
    cls = next(v for k, v in vars(module).items() if k.endswith("Settings") and getattr(v, "SERVICE_NAME", "") == name)
    # distribution runs its payout worker only with a gateway; none is called before a payout
    extra = {"gateway_url": "http://127.0.0.1:9"} if name == "distribution" else {}
    return cls(nats_url=server.url, nats_user=name, nats_password=server.password(name), mongo_url=mongo_url,
               mongo_db=f"{db_prefix}_{name}", namespace="puskesos", stream_replicas=1,
               auth_secret=server.passwords["PUSKESOS_AUTH_SECRET"], log_json=True, **extra)


@pytest.mark.parametrize("name", SERVICES)
async def test_service_starts_and_is_ready_as_its_own_user(server: AuthServer, mongo_url: str, db_prefix: str,
                                                           name: str) -> None:
    app_module = importlib.import_module(f"puskesos_{name}.app")
    before = violations(server)
    app = app_module.create_app(settings_for(name, server, mongo_url, db_prefix))
    consumers_before = await consumers(server)
    async with running_app(app) as client:
        response = await client.get("/health/ready")
        assert response.status_code == 200, response.text
        # wait until each durable consumer the service made has a pull request waiting: its
        # workers are fetching (a denied fetch would never wait there)
        deadline = asyncio.get_running_loop().time() + 20
        while True:
            new = {k: v for k, v in (await consumers(server)).items() if k not in consumers_before}
            if all(waiting > 0 for waiting in new.values()) or violations(server) != before:
                break
            assert asyncio.get_running_loop().time() < deadline, f"consumers never fetched: {new}"
            await asyncio.sleep(0.1)
    assert violations(server)[len(before):] == []


async def test_operator_drives_a_round_with_the_operator_user(server: AuthServer, mongo_url: str,
                                                              db_prefix: str, tmp_path: Any) -> None:
    """The runbook's round commands, as the operator NATS user, against distribution as its user."""
    from puskesos_distribution.app import create_app

    settings = settings_for("distribution", server, mongo_url, db_prefix)
    env = {**os.environ, "PUSKESOS_NATS_URL": server.url, "PUSKESOS_NATS_USER": "operator",
           "PUSKESOS_NATS_PASSWORD": server.password("operator"), "PUSKESOS_NAMESPACE": "puskesos",
           "PUSKESOS_AUTH_SECRET": server.passwords["PUSKESOS_AUTH_SECRET"], "COLUMNS": "200"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "puskesos_distribution.cli", *args], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120, check=False)

    before = violations(server)
    async with running_app(create_app(settings)):
        opened = await asyncio.to_thread(
            cli, "round", "open", "deploy-test-round", "--name", "Deploy test", "--funding-source", "DBHCHT",
            "--amount", "300000", "--budget", "3000000", "--from", "2026-11-01", "--to", "2026-12-31",
            "--operator", "ops-1")
        assert opened.returncode == 0, opened.stderr + opened.stdout
        status = await asyncio.to_thread(cli, "round", "status", "deploy-test-round", "--json", "--operator", "ops-1")
        assert status.returncode == 0, status.stderr + status.stdout
    assert violations(server)[len(before):] == []


async def test_operator_lists_dead_letters_with_the_operator_user(server: AuthServer, tmp_path: Any) -> None:
    """``puskesos dlq list`` as the operator NATS user reads a service's dead letter without a violation."""
    topology, event = Topology(), example("HouseholdRegistered")
    admin = await nats.connect(server.url, user="admin", password=server.password("admin"))
    try:
        await ensure_streams(admin.jetstream(), topology)
    finally:
        await admin.close()
    nc = await nats.connect(server.url, user="referral", password=server.password("referral"))
    try:
        headers = dead_letter_headers(
            original_headers=event_headers(event), original_subject="puskesos.events.intake.household_registered.v1",
            original_stream=topology.events_stream, original_sequence=7, consumer="referral_intake", deliveries=8,
            reason="gave up after 8 attempts", failed_at=dt.datetime.now(dt.UTC))
        ack = await nc.jetstream().publish(topology.dead_letter_subject("referral", "referral_intake"),
                                           encode_event(event), headers=headers)
    finally:
        await nc.close()
    env = {**os.environ, "PUSKESOS_NATS_URL": server.url, "PUSKESOS_NATS_USER": "operator",
           "PUSKESOS_NATS_PASSWORD": server.password("operator"), "PUSKESOS_NAMESPACE": "puskesos",
           "PUSKESOS_STACK_DIR": str(tmp_path), "COLUMNS": "200"}
    before = violations(server)
    listed = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "puskesos_cli.main", "dlq", "list", "--json"], env=env, cwd=tmp_path,
        capture_output=True, text=True, timeout=120, check=False)
    assert listed.returncode == 0, listed.stderr + listed.stdout
    rows = [json.loads(line) for line in listed.stdout.splitlines() if line.startswith("{")]
    assert ack.seq in [row["sequence"] for row in rows]
    assert violations(server)[len(before):] == []
