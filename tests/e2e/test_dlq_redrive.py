"""``puskesos dlq redrive`` through a real service process: referral re-drives a dead letter of its consumer.

The dead letter is written as a consumer writes one (``dead_letter_headers``) for an event that was never on
the events stream, so only a re-drive can bring it to referral: the household copy appears, and the dead
letter is removed. A consumer the process does not have is refused with the ones it does.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from puskesos_cli.dlq import app as dlq_app
from puskesos_shared.contracts import HouseholdRegistered
from puskesos_shared.contracts.examples import example
from puskesos_shared.contracts.registry import subject_for
from puskesos_shared.messaging import encode_event, event_headers
from puskesos_shared.messaging.dead_letter import dead_letter_headers
from puskesos_shared.messaging.streams import ensure_streams
from puskesos_shared.testing.processes import ServiceProcess
from puskesos_shared.testing.servers import ServerHandle
from puskesos_shared.topology import Topology
from pymongo import MongoClient
from typer.testing import CliRunner

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


@pytest.fixture
def referral(nats_server: ServerHandle, mongo_server: ServerHandle, tmp_path: Path) -> Iterator[ServiceProcess]:
    base = f"t{uuid.uuid4().hex[:12]}"
    process = ServiceProcess.for_service("referral", nats_url=nats_server.url, mongo_url=mongo_server.url,
                                         namespace=base, db_prefix=base, log_dir=tmp_path / "logs")
    process.start()
    try:
        process.wait_ready(90)
        yield process
    finally:
        process.stop()
        client: MongoClient[dict[str, object]] = MongoClient(mongo_server.url, serverSelectionTimeoutMS=5000)
        client.drop_database(f"{base}_referral")
        client.close()


async def _put_dead_letter(nats_url: str, topology: Topology, event: HouseholdRegistered, consumer: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await ensure_streams(js, topology)
        headers = dead_letter_headers(
            original_headers=event_headers(event), original_subject=subject_for(event, topology),
            original_stream=topology.events_stream, original_sequence=41, consumer=consumer, deliveries=8,
            reason="gave up after 8 attempts: ServerSelectionTimeoutError: no primary",
            failed_at=dt.datetime.now(dt.UTC))
        ack = await js.publish(topology.dead_letter_subject("referral", consumer), encode_event(event),
                               headers=headers, stream=topology.dead_letter_stream)
        return int(ack.seq)
    finally:
        await nc.close()


async def _delete_streams(nats_url: str, topology: Topology) -> None:
    nc = await nats.connect(nats_url)
    try:
        for config in topology.stream_configs():
            await nc.jetstream().delete_stream(config.name or "")
    finally:
        await nc.close()


def test_a_real_service_redrives_its_consumers_dead_letter(referral: ServiceProcess, nats_server: ServerHandle,
                                                           mongo_server: ServerHandle, tmp_path: Path) -> None:
    namespace = referral.env["PUSKESOS_NAMESPACE"]
    topology = Topology(namespace=namespace)
    event = example("HouseholdRegistered")
    assert isinstance(event, HouseholdRegistered)
    good = asyncio.run(_put_dead_letter(nats_server.url, topology, event, "referral_intake"))
    stray = asyncio.run(_put_dead_letter(nats_server.url, topology, event, "referral_other"))
    env = {"PUSKESOS_NATS_URL": nats_server.url, "PUSKESOS_NAMESPACE": namespace, "PUSKESOS_STACK_DIR": str(tmp_path),
           "PUSKESOS_NATS_USER": "", "PUSKESOS_NATS_PASSWORD": "", "COLUMNS": "400", "NO_COLOR": "1"}
    try:
        result = CliRunner().invoke(dlq_app, ["redrive", str(good), str(stray)], env=env)
        assert result.exit_code == 1, result.output  # the stray one fails
        assert "re-driven: 1, failed: 1" in result.output
        assert "unknown_consumer" in result.output and "it has: referral_intake" in result.output

        client: MongoClient[dict[str, object]] = MongoClient(mongo_server.url, serverSelectionTimeoutMS=5000)
        try:
            stored = client[f"{namespace}_referral"]["households"].find_one({"_id": event.data.household.kk_number})
        finally:
            client.close()
        assert stored is not None
        listed = CliRunner().invoke(dlq_app, ["list", "--json"], env=env)
        assert listed.exit_code == 0, listed.output
        rows = [json.loads(line) for line in listed.output.splitlines() if line.startswith("{")]
        assert [row["sequence"] for row in rows] == [stray]  # the re-driven one is gone, the stray one stays
    finally:
        asyncio.run(_delete_streams(nats_server.url, topology))
