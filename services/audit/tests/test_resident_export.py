"""The audit service's part of a resident's data export (``export_resident``, real NATS and Mongo engine)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from audit_flow import build_flow
from audit_testkit import publish, settings_for, wait_logged
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from puskesos_audit.app import create_app
from puskesos_shared.commands import CommandReply, send_command
from puskesos_shared.resident_export import export_subject
from puskesos_shared.testing.app import running_app
from puskesos_shared.topology import Topology
from pymongo import AsyncMongoClient

pytestmark = pytest.mark.integration
REQUESTED_BY = {"kind": "officer", "id": "bo-1", "role": "back_office"}


async def export(nc: NatsClient, topology: Topology, nik: str, *kks: str) -> CommandReply:
    body = {"export_id": str(uuid.uuid4()), "requested_by": REQUESTED_BY, "nik": nik, "kk_numbers": list(kks)}
    return await send_command(nc, export_subject(topology, "audit"), body, timeout=30)


async def test_the_events_that_concern_a_resident_and_why_they_stay(
        nats_url: str, mongo_url: str, namespace: str, db_prefix: str, jetstream: JetStreamContext,
        topology: Topology, mongo_client: AsyncMongoClient[Any], nats_client: NatsClient) -> None:
    settings = settings_for(nats_url, mongo_url, namespace, db_prefix)
    flow = build_flow(30)
    async with running_app(create_app(settings)):
        last = await publish(jetstream, topology, flow.events)
        await wait_logged(mongo_client[settings.database_name], last)

        reply = await export(nats_client, topology, flow.ids["nik"])
        assert reply.ok and reply.result is not None
        part = reply.result
        assert part["service"] == "audit" and part["found"] is True
        events = part["records"]["events"]
        types = {e["event_type"] for e in events}
        # by the NIK itself, and through the case and the allocation those events name
        assert types == {"HouseholdRegistered", "ComplaintFiled", "CaseOpened", "CaseAssessed", "ReferralIssued",
                         "AidAllocated", "AidDisbursed", "CaseClosed"}
        assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
        assert all(e["logged_at"] and e["event_id"] for e in events)
        assert next(e for e in events if e["event_type"] == "CaseOpened")["concerns"] == "your NIK"
        assert next(e for e in events if e["event_type"] == "ReferralIssued")["concerns"].startswith("your case ")
        assert "immutable" in part["notes"][0] and "not erased" in part["notes"][0]
        assert "The index covers the whole log." in part["notes"]
        # no event body: the other sections hold the records
        assert "Belum menerima" not in json.dumps(part)

        family_card = await export(nats_client, topology, "3573016607900005", str(flow.ids["kk"]))
        assert family_card.ok and family_card.result is not None
        assert "CaseAssessed" in {e["event_type"] for e in family_card.result["records"]["events"]}

        unknown = await export(nats_client, topology, "3573016607900005")
        assert unknown.ok and unknown.result is not None
        assert unknown.result["found"] is False and unknown.result["records"] == {"events": []}

        invalid = "3573013213900003"
        bad = await export(nats_client, topology, invalid)
        assert not bad.ok and bad.error is not None and bad.error["code"] == "invalid_request"
        assert [f["loc"] for f in bad.error["fields"]] == [["nik"]] and invalid not in json.dumps(bad.error)
