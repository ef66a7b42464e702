"""A webhook subscriber's dead letters, re-driven through a real notification service process (issue 17).

The receiver is down and the service gives up on three events after a short time (as it would after a day):
each lands in the dead-letter stream under ``webhook-<subscriber>``. With the receiver (``examples/
webhook_receiver.py``) up, ``puskesos dlq redrive --consumer webhook-kemensos --all`` delivers them (signed,
same CloudEvents ids) and removes the dead letters; a second re-drive of the same event reaches the
receiver again and is dropped there by id: one effect.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js.errors import NotFoundError
from puskesos_cli.dlq import app as dlq_app
from puskesos_shared.contracts.examples import example
from puskesos_shared.contracts.registry import subject_for
from puskesos_shared.messaging import encode_event, event_headers
from puskesos_shared.messaging.streams import ensure_streams
from puskesos_shared.subscribers import Subscriber, SubscriberBook, SubscriberSecrets
from puskesos_shared.testing.processes import ServiceProcess
from puskesos_shared.testing.servers import ServerHandle
from puskesos_shared.topology import Topology
from typer.testing import CliRunner

from tests.localstack.support import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
ROOT = Path(__file__).resolve().parents[2]
SECRET = "w" * 43


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def port() -> int:
    return _free_port()


@pytest.fixture
def notification(nats_server: ServerHandle, mongo_server: ServerHandle, tmp_path: Path,
                 port: int) -> Iterator[ServiceProcess]:
    base = f"t{uuid.uuid4().hex[:12]}"
    book, secrets = SubscriberBook(tmp_path / "subscribers.json"), SubscriberSecrets(tmp_path / "secrets.json")
    book.save([Subscriber(name="kemensos", events=(">",), pii="pseudonymous",
                          webhook_url=f"http://127.0.0.1:{port}/events")])
    secrets.save({"kemensos": {"webhook_secret": SECRET}})
    process = ServiceProcess.for_service("notification", nats_url=nats_server.url, mongo_url=mongo_server.url,
                                         namespace=base, db_prefix=base, log_dir=tmp_path / "logs", extra_env={
                                             "PUSKESOS_SUBSCRIBERS_FILE": str(book.path),
                                             "PUSKESOS_SUBSCRIBER_SECRETS_FILE": str(secrets.path),
                                             "PUSKESOS_FEED_WEBHOOK_GIVE_UP_SECONDS": "2",
                                             "PUSKESOS_FEED_WEBHOOK_BACKOFF_MAX_SECONDS": "0.5"})
    process.start()
    try:
        process.wait_ready(90)
        yield process
    finally:
        process.stop()


async def _js_call(nats_url: str, work: Any) -> Any:
    nc = await nats.connect(nats_url)
    try:
        return await work(nc.jetstream(), nc)
    finally:
        await nc.close()


def _feed_consumer_exists(nats_url: str, topology: Topology) -> bool:
    async def work(js: Any, nc: Any) -> bool:
        try:
            await js.consumer_info(topology.events_stream, "webhook-kemensos")
        except NotFoundError:
            return False
        return True
    return bool(asyncio.run(_js_call(nats_url, work)))


def _dead_letters(nats_url: str, topology: Topology) -> int:
    async def work(js: Any, nc: Any) -> int:
        info = await js.stream_info(topology.dead_letter_stream,
                                    subjects_filter=topology.dead_letter_subject("notification", "webhook-kemensos"))
        return sum((info.state.subjects or {}).values())
    return int(asyncio.run(_js_call(nats_url, work)))


def test_webhook_dead_letters_are_redriven_to_one_effect(notification: ServiceProcess, nats_server: ServerHandle,
                                                         port: int, tmp_path: Path) -> None:
    topology = Topology(namespace=notification.env["PUSKESOS_NAMESPACE"])
    wait_until(lambda: _feed_consumer_exists(nats_server.url, topology), "the webhook feed is running", 60)
    events = [example(name).model_copy(update={"event_id": uuid.uuid4()})
              for name in ("HouseholdRegistered", "ComplaintFiled", "AidAllocated")]

    async def publish(js: Any, nc: Any) -> list[int]:
        await ensure_streams(js, topology)
        return [int((await js.publish(subject_for(e, topology), encode_event(e), headers=event_headers(e))).seq)
                for e in events]
    sequences = asyncio.run(_js_call(nats_server.url, publish))
    wait_until(lambda: _dead_letters(nats_server.url, topology) == 3, "three webhook dead letters", 60)

    out = tmp_path / "received.jsonl"
    receiver = subprocess.Popen([sys.executable, str(ROOT / "examples" / "webhook_receiver.py"), SECRET, str(port),
                                 str(out)])
    env = {"PUSKESOS_NATS_URL": nats_server.url, "PUSKESOS_NAMESPACE": topology.namespace,
           "PUSKESOS_STACK_DIR": str(tmp_path), "PUSKESOS_NATS_USER": "", "PUSKESOS_NATS_PASSWORD": "",
           "COLUMNS": "400", "NO_COLOR": "1"}
    try:
        listed = CliRunner().invoke(dlq_app, ["list", "--consumer", "webhook-kemensos"], env=env)
        assert listed.exit_code == 0 and "webhook-kemensos" in listed.output, listed.output
        wait_until(lambda: receiver.poll() is None and _port_open(port), "the receiver is listening", 20)
        redriven = CliRunner().invoke(dlq_app, ["redrive", "--consumer", "webhook-kemensos", "--all"], env=env)
        assert redriven.exit_code == 0, redriven.output
        assert _dead_letters(nats_server.url, topology) == 0
        received = [json.loads(line) for line in out.read_text().splitlines()]
        assert [r["id"] for r in received] == [str(e.event_id) for e in events]  # same ids, in order
        assert [r["puskesossequence"] for r in received] == sequences

        # the same event once more (by its events-stream sequence): received again, dropped by id
        async def again(js: Any, nc: Any) -> dict[str, Any]:
            reply = await nc.request(topology.command_subject("notification", "redrive"),
                                     json.dumps({"consumer": "webhook-kemensos", "sequence": sequences[0]}).encode(),
                                     timeout=30)
            answer: dict[str, Any] = json.loads(reply.data)
            return answer
        answer = asyncio.run(_js_call(nats_server.url, again))
        assert answer["ok"], answer
        assert len(out.read_text().splitlines()) == 3
    finally:
        receiver.terminate()
        receiver.wait(10)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
