"""``puskesos dlq`` and the ``redrive`` command, against the real nats-server and Mongo-compatible server.

A service app (the shared runtime, in process) with two consumers of the same event: ``probe_effects``
writes one document per event id and fails for the events in ``failing``; ``probe_other`` records every
delivery it gets. The CLI runs in process (typer's CliRunner, in a thread: the app's loop keeps serving).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from puskesos_cli.dlq import app as cli_app
from puskesos_shared.commands import send_command
from puskesos_shared.contracts import ComplaintFiled, Event
from puskesos_shared.contracts.examples import example
from puskesos_shared.messaging import ConsumerPolicy, DeadLetters, Delivery, subscribe_events
from puskesos_shared.messaging import headers as h
from puskesos_shared.mongo import insert_once
from puskesos_shared.service import ServiceRuntime, create_service_app
from puskesos_shared.settings import ServiceSettings
from puskesos_shared.testing.app import running_app, runtime_of
from puskesos_shared.topology import Topology
from typer.testing import CliRunner, Result

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SERVICE = "intake"  # the probe app runs as the intake service (dead letters on {ns}.dlq.intake.*)
FAST = ConsumerPolicy(max_attempts=2, backoff_initial_seconds=0.05, backoff_max_seconds=0.1, ack_wait_seconds=5,
                      fetch_timeout_seconds=0.2)
NIK = "3573010101800003"  # the example complaint's complainant


def complaint(n: int) -> ComplaintFiled:
    base = example("ComplaintFiled")
    assert isinstance(base, ComplaintFiled)
    return base.model_copy(update={"event_id": uuid.UUID(int=n), "correlation_id": f"complaint:{n}"})


@dataclass
class Probe:
    failing: set[str] = field(default_factory=set)
    runs: list[str] = field(default_factory=list)  # every run of probe_effects' handler (live and re-driven)
    other: list[str] = field(default_factory=list)  # every delivery probe_other got
    custom: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)


@dataclass
class Env:
    runtime: ServiceRuntime
    probe: Probe
    js: JetStreamContext
    nc: NatsClient
    topology: Topology
    cli_env: dict[str, str]

    async def cli(self, *args: str) -> Result:
        """``puskesos dlq ARGS`` in a thread (the CLI runs its own event loop), against this test's namespace."""
        assert args[0] == "dlq"
        runner = CliRunner()
        return await asyncio.to_thread(lambda: runner.invoke(cli_app, list(args[1:]), env=self.cli_env))

    async def effects(self, event_id: str) -> int:
        return await self.runtime.db["effects"].count_documents({"_id": event_id})

    async def dead_letter_count(self) -> int:
        return int((await self.js.stream_info(self.topology.dead_letter_stream)).state.messages)

    async def redrive(self, **request: Any) -> Any:
        subject = self.topology.command_subject(SERVICE, "redrive")
        return await send_command(self.nc, subject, request, timeout=10)


async def wait_for(condition: Callable[[], Any], timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


@pytest_asyncio.fixture
async def env(nats_url: str, mongo_url: str, namespace: str, db_prefix: str, topology: Topology,
              jetstream: JetStreamContext, nats_client: NatsClient, mongo_client: Any, tmp_path: Path
              ) -> AsyncIterator[Env]:
    probe = Probe()

    async def configure(runtime: ServiceRuntime) -> None:
        effects = runtime.db["effects"]

        async def effect(event: Event, delivery: Delivery) -> None:
            event_id = str(event.event_id)
            probe.runs.append(event_id)
            if event_id in probe.failing:
                raise RuntimeError(f"the payment desk refused {event_id}")
            await insert_once(effects, {"_id": event_id, "subject": delivery.subject})

        async def other(event: Event, delivery: Delivery) -> None:
            probe.other.append(str(event.event_id))

        subscribe_events(runtime.broker, runtime.topology, runtime.dead_letters, consumer="probe_effects",
                         events=[ComplaintFiled], handler=effect, policy=FAST)
        subscribe_events(runtime.broker, runtime.topology, runtime.dead_letters, consumer="probe_other",
                         events=[ComplaintFiled], handler=other, policy=FAST)

        async def webhook(body: bytes, headers: Mapping[str, str]) -> None:
            probe.custom.append((body, dict(headers)))

        runtime.redrive.register("webhook-dinsos", webhook)

    settings = ServiceSettings(_env_file=None, nats_url=nats_url, mongo_url=mongo_url, namespace=namespace,
                               mongo_db=f"{db_prefix}_probe")
    service_app = create_service_app(SERVICE, settings, configure=configure)
    cli_env = {"PUSKESOS_NATS_URL": nats_url, "PUSKESOS_NAMESPACE": namespace, "PUSKESOS_STACK_DIR": str(tmp_path),
               "PUSKESOS_NATS_USER": "", "PUSKESOS_NATS_PASSWORD": "", "COLUMNS": "400", "NO_COLOR": "1"}
    async with running_app(service_app):
        yield Env(runtime_of(service_app), probe, jetstream, nats_client, topology, cli_env)


def json_lines(output: str) -> list[dict[str, Any]]:
    """The rows ``dlq list --json`` printed (not a log line that might share the output)."""
    rows = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [row for row in rows if {"sequence", "consumer", "original_subject"} <= row.keys()]


async def test_a_dead_letter_is_listed_shown_and_redriven_to_its_consumer_only(env: Env) -> None:
    failing, fine = complaint(1), complaint(2)
    event_id = str(failing.event_id)
    env.probe.failing.add(event_id)
    ack = await env.runtime.publisher.publish(failing)
    await env.runtime.publisher.publish(fine)

    await wait_for(lambda: env.dead_letter_count())
    await wait_for(lambda: sorted(env.probe.other) == sorted([event_id, str(fine.event_id)]))
    assert await env.effects(event_id) == 0
    assert await env.effects(str(fine.event_id)) == 1

    # list: the reason, the original subject and sequence, the event id
    listed = await env.cli("dlq", "list", "--json")
    assert listed.exit_code == 0, listed.output
    [row] = json_lines(listed.output)
    assert row["service"] == SERVICE and row["consumer"] == "probe_effects"
    assert row["original_subject"] == f"{env.topology.namespace}.events.intake.complaint_filed.v1"
    assert (row["original_stream"], row["original_sequence"]) == (env.topology.events_stream, ack.seq)
    assert row["event_id"] == event_id and row["deliveries"] == 2
    assert "RuntimeError: the payment desk refused" in row["reason"]
    seq = str(row["sequence"])
    table = await env.cli("dlq", "list", "--service", SERVICE, "--consumer", "probe_effects")
    assert table.exit_code == 0, table.output
    assert "probe_effects" in table.output and "gave up after 2 attempts" in table.output
    assert f"{env.topology.events_stream}:{ack.seq}" in table.output
    assert json_lines((await env.cli("dlq", "list", "--json", "--consumer", "probe_other")).output) == []

    # show: every header, the body with personal data masked unless --reveal
    shown = await env.cli("dlq", "show", seq)
    assert shown.exit_code == 0, shown.output
    assert h.DLQ_REASON in shown.output and h.DLQ_ORIGINAL_SEQUENCE in shown.output and event_id in shown.output
    assert NIK not in shown.output and "complainant" in shown.output
    revealed = await env.cli("dlq", "show", seq, "--reveal")
    assert NIK in revealed.output and "personal data" in revealed.output

    # a re-drive while the handler still fails: the dead letter stays, the reason is shown
    again = await env.cli("dlq", "redrive", seq)
    assert again.exit_code == 1, again.output
    assert "redrive_failed" in again.output and "the payment desk refused" in again.output
    assert await env.dead_letter_count() == 1 and await env.effects(event_id) == 0

    # fixed: re-driven, the effect is there, the dead letter is gone
    env.probe.failing.clear()
    done = await env.cli("dlq", "redrive", seq)
    assert done.exit_code == 0, done.output
    assert "re-driven" in done.output and "re-driven: 1, failed: 0" in done.output
    assert await env.effects(event_id) == 1
    with pytest.raises(NotFoundError):
        await env.js.get_msg(env.topology.dead_letter_stream, int(seq))
    gone = await env.cli("dlq", "redrive", seq)
    assert gone.exit_code == 1 and "dead_letter_not_found" in gone.output

    # a second re-drive (the original message, by its sequence): the handler runs, the effect is still one
    runs = env.probe.runs.count(event_id)
    reply = await env.redrive(consumer="probe_effects", sequence=ack.seq)
    assert reply.ok, reply.error
    assert reply.result is not None and reply.result["event_id"] == event_id
    assert env.probe.runs.count(event_id) == runs + 1
    assert await env.effects(event_id) == 1

    # nothing was published again: the other consumer saw the event once, the stream holds two events
    await asyncio.sleep(1.0)
    assert env.probe.other.count(event_id) == 1
    assert (await env.js.stream_info(env.topology.events_stream)).state.messages == 2


async def test_redrive_errors_are_clear(env: Env) -> None:
    event = complaint(7)
    ack = await env.runtime.publisher.publish(event)
    await wait_for(lambda: event.event_id and str(event.event_id) in env.probe.other)
    body = event.model_dump_json().encode()

    async def dead_letter(service: str, consumer: str) -> None:
        await DeadLetters(env.runtime.publisher, service).send(
            body=body, original_headers={h.MSG_ID: str(event.event_id)},
            original_subject=f"{env.topology.namespace}.events.intake.complaint_filed.v1",
            original_stream=env.topology.events_stream, original_sequence=ack.seq, consumer=consumer, deliveries=8,
            reason="gave up after 8 attempts: TimeoutError")

    await dead_letter(SERVICE, "probe_effects")
    await dead_letter("referral", "referral")
    await dead_letter(SERVICE, "webhook-dinsos")
    await dead_letter(SERVICE, "gone-consumer")
    listed = json_lines((await env.cli("dlq", "list", "--json")).output)
    assert len(listed) == 4, listed
    seqs = {row["consumer"]: row["sequence"] for row in listed}
    assert set(seqs) == {"probe_effects", "referral", "webhook-dinsos", "gone-consumer"}, listed

    async def code(**request: Any) -> str:
        reply = await env.redrive(**request)
        assert not reply.ok
        return str((reply.error or {})["code"])

    assert await code(dead_letter_sequence=9999) == "dead_letter_not_found"
    assert await code(consumer="nope", sequence=ack.seq) == "unknown_consumer"
    assert await code(dead_letter_sequence=seqs["gone-consumer"]) == "unknown_consumer"
    assert await code(consumer="probe_effects", sequence=9999) == "message_not_found"
    assert await code(dead_letter_sequence=seqs["referral"]) == "dead_letter_of_other_service"
    assert await code(dead_letter_sequence=seqs["probe_effects"], consumer="probe_other") == "not_for_consumer"
    assert await code(dead_letter_sequence=1, sequence=1) == "invalid_request"
    assert await code(consumer="probe_effects", stream="OTHER", sequence=1) == "invalid_request"

    # the CLI says the same, and leaves what it could not re-drive in place
    unknown = await env.cli("dlq", "redrive", "9999", str(seqs["gone-consumer"]))
    assert unknown.exit_code == 1, unknown.output
    assert "dead_letter_not_found" in unknown.output and "unknown_consumer" in unknown.output, unknown.output
    assert "no consumer 'gone-consumer'" in unknown.output, unknown.output
    nothing = await env.cli("dlq", "redrive", "--consumer", "nope", "--all")
    assert nothing.exit_code == 1 and "no dead letters of consumer nope" in nothing.output, nothing.output
    assert (await env.cli("dlq", "redrive")).exit_code == 2
    assert (await env.cli("dlq", "redrive", "1", "--all")).exit_code == 2
    assert (await env.cli("dlq", "show", "9999")).exit_code == 1
    assert await env.dead_letter_count() == 4

    # pages: --limit, then --start from where it stopped
    first = await env.cli("dlq", "list", "--limit", "2")
    assert f"more: --start {seqs['referral'] + 1}" in first.output, first.output
    rest = json_lines((await env.cli("dlq", "list", "--json", "--start", str(seqs["referral"] + 1))).output)
    assert [row["consumer"] for row in rest] == ["webhook-dinsos", "gone-consumer"], rest

    # a handler registered by name (runtime.redrive.register) gets the body and the original's id; --all of a
    # consumer re-drives all of its dead letters
    custom = await env.cli("dlq", "redrive", "--consumer", "webhook-dinsos", "--all")
    assert custom.exit_code == 0, custom.output
    assert len(env.probe.custom) == 1, custom.output
    [(received, headers)] = env.probe.custom
    assert received == body
    assert headers[h.MSG_ID] == str(event.event_id) and headers[h.DLQ_CONSUMER] == "webhook-dinsos"
    assert headers["Puskesos-Redrive"] == f"dlq:{seqs['webhook-dinsos']}"
    assert await env.dead_letter_count() == 3
