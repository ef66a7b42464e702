"""External subscribers on a real local stack (issue 17), through ``puskesos subscribers`` and the examples.

* A NATS subscriber with ``--pii none`` reads its feed with ``examples/nats_subscriber.py``: every intake
  event of a registry import arrives, in order, and no NIK, KK, phone number or name is in what it got.
* Its NATS user is refused the events stream, another subscriber's feed, and every publish.
* A webhook subscriber (``--pii pseudonymous``) whose receiver (``examples/webhook_receiver.py``) is down
  for 30 seconds gets every event once it is up: at least once, in stream order, signed; pseudonyms in
  place of identifiers, never an identifier. A replay sends everything again and the receiver drops the
  repeats by event id.
* ``revoke`` removes the NATS user: its credentials no longer connect.
"""

from __future__ import annotations

import asyncio
import csv
import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import nats
import nats.errors
import pytest
from nats.js.api import ConsumerConfig

from tests.localstack.support import cli, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
# a token of its own (not part of a hex digest or an id): 16 digits, or an Indonesian mobile number
NIK_OR_KK = re.compile(r"(?<![0-9A-Za-z])[0-9]{16}(?![0-9A-Za-z])")
PHONE = re.compile(r"(?<![0-9A-Za-z])(?:\+62|62|0)8[0-9]{7,12}(?![0-9A-Za-z])")
HOUSEHOLDS = 25


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def _env_file(stack: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in (stack / "stack.env").read_text().splitlines() if "=" in line)


async def _admin_counts(env: dict[str, str]) -> tuple[int, int]:
    """(every event stored, intake events stored)."""
    nc = await nats.connect(env["PUSKESOS_NATS_URL"].split(","), user="admin", password=env["PUSKESOS_NATS_PASSWORD"])
    try:
        js = nc.jetstream()
        total = (await js.stream_info("PUSKESOS_EVENTS")).state.messages
        intake = await js.stream_info("PUSKESOS_EVENTS", subjects_filter="puskesos.events.intake.>")
        return total, sum((intake.state.subjects or {}).values())
    finally:
        await nc.drain()


def _feeds(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    async def ask() -> dict[str, dict[str, Any]]:
        nc = await nats.connect(env["PUSKESOS_NATS_URL"].split(","), user="admin",
                                password=env["PUSKESOS_NATS_PASSWORD"])
        try:
            reply = await nc.request("puskesos.commands.notification.feed_status.v1", b"{}", timeout=10)
        finally:
            await nc.drain()
        return {row["subscriber"]: row for row in json.loads(reply.data)["result"]["feeds"]}
    return asyncio.run(ask())


async def _refusals(creds: dict[str, Any]) -> list[str]:
    """What the server refuses a feed subscriber (the errors it reports)."""
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    nc = await nats.connect(creds["nats_url"].split(","), user=creds["user"], password=creds["password"],
                            inbox_prefix=creds["inbox_prefix"], error_cb=on_error)
    js = nc.jetstream(timeout=2)
    refused = 0
    for stream, filter_subject in (("PUSKESOS_EVENTS", "puskesos.events.intake.>"),
                                   ("PUSKESOS_FEEDS", "puskesos.feed.kemensos.>")):
        try:
            await js.add_consumer(stream, ConsumerConfig(name=creds["consumer"], durable_name=creds["consumer"],
                                                         filter_subject=filter_subject))
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError, nats.js.errors.APIError):
            refused += 1
    publishes = ("puskesos.events.intake.complaint_filed.v1", "puskesos.commands.intake.file_complaint.v1",
                 f"puskesos.feed.{creds['user']}.intake.household_registered.v1")
    for subject in publishes:
        await nc.publish(subject, b"{}")
    # the server answers each refused publish with an error the client reports asynchronously: wait for them
    deadline = asyncio.get_running_loop().time() + 10
    while not all(any(f'"{subject}"' in e.lower() for e in errors) for subject in publishes):
        assert asyncio.get_running_loop().time() < deadline, errors
        await nc.flush()
    await nc.close()
    assert refused == 2, errors
    return errors


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_subscribers_receive_their_events_safely_in_order(stack_home: dict[str, str], tmp_path: Path) -> None:
    home = Path(stack_home["PUSKESOS_HOME"])
    stack = home / ".local" / "stack"
    _ok(cli(stack_home, "stack", "up"))
    _ok(cli(stack_home, "services", "up"))
    env = _env_file(stack)

    port = _free_port()
    said = _ok(cli(stack_home, "subscribers", "add", "dinsos-feed", "--events", "intake.>", "--pii", "none",
                   "--description", "Dinas Sosial data team"))
    assert "credentials (0600)" in said and "relays its events" in said
    said = _ok(cli(stack_home, "subscribers", "add", "kemensos", "--events", ">", "--pii", "pseudonymous",
                   "--webhook", f"http://127.0.0.1:{port}/events"))
    nats_creds_path = stack / "subscribers" / "dinsos-feed.json"
    webhook_creds = json.loads((stack / "subscribers" / "kemensos.json").read_text())
    assert nats_creds_path.stat().st_mode & 0o777 == 0o600
    nats_creds = json.loads(nats_creds_path.read_text())
    bad = cli(stack_home, "subscribers", "add", "x-1", "--events", "bank.>")
    assert bad.returncode == 2 and "--events" in bad.stdout and "not a service" in bad.stdout

    # the webhook receiver is down while a registry import makes events
    registry = home / "registry.csv"
    _ok(cli(stack_home, "registry", "sample-csv", "--out", str(registry), "--households", str(HOUSEHOLDS)))
    down_since = time.monotonic()
    _ok(cli(stack_home, "registry", "import", str(registry), "--officer", "bo-1", "--scope", "35.73"))
    with registry.open() as rows:
        names = {value for row in csv.DictReader(rows) for value in (row["name"], row["street"])}
    assert names

    said = " ".join(asyncio.run(_refusals(nats_creds))).lower()
    for refused_subject in ("$js.api.consumer.create.puskesos_events.dinsos-feed",
                            "$js.api.consumer.create.puskesos_feeds.dinsos-feed.puskesos.feed.kemensos",
                            "puskesos.events.intake.complaint_filed.v1", "puskesos.commands.intake.file_complaint.v1",
                            "puskesos.feed.dinsos-feed.intake.household_registered.v1"):
        assert f'permissions violation for publish to "{refused_subject}' in said, (refused_subject, said)

    # every intake event reaches the NATS subscriber; nothing personal in it
    wait_until(lambda: (_feeds(env)["dinsos-feed"]["pending"] == 0
                        and asyncio.run(_admin_counts(env))[1] >= HOUSEHOLDS), "the NATS feed caught up", 120)
    _, intake_events = asyncio.run(_admin_counts(env))
    reader = subprocess.run([sys.executable, str(ROOT / "examples" / "nats_subscriber.py"), str(nats_creds_path),
                             str(intake_events)], capture_output=True, text=True, timeout=120, check=False)
    assert reader.returncode == 0, reader.stderr
    received = [json.loads(line) for line in reader.stdout.splitlines()]
    assert len(received) == intake_events
    assert [r["seq"] for r in received] == sorted(r["seq"] for r in received)
    text = reader.stdout
    assert not NIK_OR_KK.search(text) and not PHONE.search(text) and "ps-" not in text
    assert not any(name in text for name in names)

    # the receiver comes up after 30 s: every event, in order, pseudonymised, once each after dropping repeats
    if (left := 30 - (time.monotonic() - down_since)) > 0:
        time.sleep(left)  # the outage the test is about: the receiver is down for 30 s on purpose
    out = tmp_path / "received.jsonl"
    receiver = subprocess.Popen([sys.executable, str(ROOT / "examples" / "webhook_receiver.py"),
                                 webhook_creds["signing_secret"], str(port), str(out)])
    try:
        wait_until(lambda: _feeds(env)["kemensos"]["pending"] == 0 and len(_lines(out)) > 0,
                   "the webhook feed caught up after the outage", 180)
        total, _ = asyncio.run(_admin_counts(env))
        wait_until(lambda: len(_lines(out)) >= total, "every stored event delivered to the webhook", 120)
        delivered = _lines(out)
        sequences = [e["puskesossequence"] for e in delivered]
        assert sequences == sorted(sequences) and len(set(e["id"] for e in delivered)) == len(delivered)
        assert {e["specversion"] for e in delivered} == {"1.0"}
        body = out.read_text()
        assert not NIK_OR_KK.search(body) and not PHONE.search(body) and "ps-" in body
        assert not any(name in body for name in names)
        assert _feeds(env)["kemensos"]["deliveries"].get("delivered", 0) >= total

        # a replay from the first event: everything again, and the receiver keeps one of each
        said = _ok(cli(stack_home, "subscribers", "replay", "kemensos", "--from-seq", "1"))
        assert "generation 2" in said
        wait_until(lambda: _feeds(env)["kemensos"]["generation"] == 2 and _feeds(env)["kemensos"]["pending"] == 0
                   and _feeds(env)["kemensos"]["relayed"] >= 2 * total, "the replay delivered", 180)
        assert [e["id"] for e in _lines(out)[:len(delivered)]] == [e["id"] for e in delivered]
        assert len(_lines(out)) == len(delivered) + (asyncio.run(_admin_counts(env))[0] - total)
    finally:
        receiver.terminate()
        receiver.wait(10)

    listed = _ok(cli(stack_home, "subscribers", "list"))
    assert "dinsos-feed" in listed and "kemensos" in listed and "pseudonymous" in listed

    # revoked: its user is gone from nats-server, its credentials file too
    _ok(cli(stack_home, "subscribers", "revoke", "dinsos-feed"))
    assert not nats_creds_path.exists()
    with pytest.raises((nats.errors.Error, OSError)):
        asyncio.run(nats.connect(nats_creds["nats_url"].split(","), user=nats_creds["user"],
                                 password=nats_creds["password"], max_reconnect_attempts=0, allow_reconnect=False,
                                 connect_timeout=3))
