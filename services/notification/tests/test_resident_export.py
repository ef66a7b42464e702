"""The notification service's part of a resident's data export (``export_resident``, real NATS and the Mongo server)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from puskesos_notification.app import create_app
from puskesos_notification.settings import NotificationSettings
from puskesos_notification.testing import events as ev
from puskesos_notification.testing.streams import wait_until
from puskesos_shared.commands import CommandReply, send_command
from puskesos_shared.resident_export import export_subject
from puskesos_shared.testing.app import running_app
from puskesos_shared.topology import Topology
from pydantic import SecretStr

pytestmark = pytest.mark.integration
REQUESTED_BY = {"kind": "officer", "id": "bo-1", "role": "back_office"}
HOUSEHOLD_PHONE = "+6281200000004"


@pytest_asyncio.fixture
async def service(nats_url: str, mongo_url: str, namespace: str, db_prefix: str, jetstream: JetStreamContext,
                  mongo_client: object, tmp_path: Path) -> AsyncIterator[None]:
    settings = NotificationSettings(
        _env_file=None,  # type: ignore[call-arg]
        nats_url=nats_url, mongo_url=mongo_url, namespace=namespace, mongo_db=f"{db_prefix}_notification",
        auth_secret=SecretStr("a" * 40), notify_hash_secret=SecretStr("h" * 40), notify_channel="local_file",
        notify_local_path=tmp_path / "messages.jsonl", notify_contact_wait_attempts=3,
        notify_consumer_max_attempts=5, notify_consumer_backoff_seconds=0.1,
    )
    async with running_app(create_app(settings)):
        yield


async def export(nc: NatsClient, topology: Topology, nik: str, *kks: str) -> CommandReply:
    body = {"export_id": str(uuid.uuid4()), "requested_by": REQUESTED_BY, "nik": nik, "kk_numbers": list(kks)}
    return await send_command(nc, export_subject(topology, "notification"), body, timeout=15)


async def test_messages_contacts_and_opt_out_of_a_resident(service: None, nats_client: NatsClient,
                                                           jetstream: JetStreamContext, topology: Topology) -> None:
    head, spouse = ev.nik(40), ev.nik(41)
    complaint = ev.complaint_filed(4, nik_of=head, kk_of=ev.kk(4))
    for event in (ev.household_registered(4, phone_number=HOUSEHOLD_PHONE), ev.round_opened(1), complaint,
                  ev.case_opened(4, complaint), ev.referral_issued(4), ev.aid_allocated(4)):
        await ev.publish(jetstream, topology, event)

    async def three_delivered() -> list[dict[str, Any]] | None:
        reply = await export(nats_client, topology, head, ev.kk(4))
        messages: list[dict[str, Any]] = (reply.result or {}).get("records", {}).get("messages", [])
        done = len(messages) == 3 and all(m["state"] != "pending" for m in messages)
        return messages if done else None

    messages = await wait_until(three_delivered, timeout=60, what="three messages to the resident delivered")
    assert sorted((m["template_id"], m["addressed_to"], m["state"]) for m in messages) == [
        ("aid_allocated", "your household", "sent"), ("complaint_receipt", "you", "sent"),
        ("referral_issued", "you, as the complainant of a case", "sent")]
    assert all(m["phone"] == HOUSEHOLD_PHONE and m["text"] for m in messages)

    opted = await send_command(nats_client, topology.command_subject("notification", "opt_out"),
                               {"phone": HOUSEHOLD_PHONE}, timeout=10)
    assert opted.ok, opted.error
    reply = await export(nats_client, topology, head, ev.kk(4))
    assert reply.ok and reply.result is not None and reply.result["found"] is True
    records = reply.result["records"]
    assert records["contact_phones"] == [{"source": "household registration", "phone": HOUSEHOLD_PHONE}]
    assert [(o["phone"], o["opted_out"]) for o in records["opt_outs"]] == [(HOUSEHOLD_PHONE, True)]

    # another member: the household's messages, through the member projection (no KK given)
    member = await export(nats_client, topology, spouse)
    assert member.ok and member.result is not None
    assert [m["template_id"] for m in member.result["records"]["messages"]] == ["aid_allocated"]

    unknown = await export(nats_client, topology, ev.nik(99))
    assert unknown.ok and unknown.result is not None and unknown.result["found"] is False
    assert unknown.result["records"] == {"messages": [], "contact_phones": [], "opt_outs": []}

    invalid = "3573013213900003"
    bad = await export(nats_client, topology, invalid)
    assert not bad.ok and bad.error is not None and bad.error["code"] == "invalid_request"
    assert [f["loc"] for f in bad.error["fields"]] == [["nik"]] and invalid not in json.dumps(bad.error)
