"""A referral target answers only its own referrals, on its own subject (real NATS and Mongo).

``{ns}.commands.referral.respond_referral.v1.{CODE}``: the code comes from the subject (the NATS
permissions let a target's user publish only its own code's subject, see tests/deploy), the referral
must have been issued to that code, and the answer is recorded as the target's.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from puskesos_shared.commands import CommandReply, send_command
from puskesos_shared.contracts import ActorKind
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.ids import stable_id
from puskesos_shared.subscribers import respond_subject
from puskesos_shared.topology import Topology
from referral_testkit import (
    bearer,
    complaint_filed,
    household_registered,
    publish,
    replica,
    settings_for,
    stream_events,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

TARGET = "RSD-SOEBANDI"


async def answer(nc: NatsClient, topology: Topology, target: str, body: dict[str, Any]) -> CommandReply:
    return await send_command(nc, respond_subject(topology, target), body, timeout=10)


async def test_a_target_answers_only_its_own_referrals(nats_url: str, mongo_url: str, namespace: str,
                                                      db_prefix: str, topology: Topology,
                                                      jetstream: JetStreamContext, nats_client: NatsClient) -> None:
    async with replica(settings_for(nats_url, mongo_url, namespace, db_prefix)) as r:
        await publish(jetstream, topology, household_registered())
        complaint = complaint_filed()
        await publish(jetstream, topology, complaint)
        case_id = stable_id("case", complaint.data.complaint_id)

        async def opened() -> bool:
            return any(s.event.event_type == "CaseOpened" for s in await stream_events(jetstream, topology))

        await wait_for(opened, what="CaseOpened")
        headers = bearer(OfficerRole.ASSESSOR)
        assess = {"command_id": str(uuid.uuid4()), "observations": {"needs_hospital_care": True}}
        response = await r.http.post(f"/cases/{case_id}/assessments", json=assess, headers=headers)
        assert response.status_code == 201, response.text
        refer = {"command_id": str(uuid.uuid4()), "target_code": TARGET}
        response = await r.http.post(f"/cases/{case_id}/referrals", json=refer, headers=headers)
        assert response.status_code == 201, response.text
        referral = response.json()["referral"]
        body = {"referral_number": referral["referral_number"], "outcome": "accepted", "note": "Diterima di IGD."}

        # another target cannot answer it, by number or by id, and learns nothing: as if it did not exist
        missing = await answer(nats_client, topology, "DINSOS-JEMBER",
                               {"referral_number": "RJK/0000000000/2026/99999", "outcome": "accepted"})
        assert not missing.ok and missing.error is not None and missing.error["code"] == "referral_not_found"
        for other in ("RSUD-SAIFUL-ANWAR", "DINSOS-JEMBER"):
            for ref in ({"referral_number": referral["referral_number"]}, {"referral_id": referral["referral_id"]}):
                reply = await answer(nats_client, topology, other, {"outcome": "accepted", **ref})
                assert reply.error == missing.error, reply  # the very answer of a referral that does not exist

        # the right target answers (the body names no responder: the subject does)
        reply = await answer(nats_client, topology, TARGET, body)
        assert reply.ok and reply.result is not None, reply.error
        assert reply.result["duplicate"] is False
        assert reply.result["referral_status"] == "accepted"
        assert reply.result["case_status"] == "referral_accepted"

        # a repeat is a duplicate, nothing new is published
        again = await answer(nats_client, topology, TARGET, body)
        assert again.ok and again.result is not None and again.result["duplicate"] is True

        events = [s.event for s in await stream_events(jetstream, topology)]
        resolved = [e for e in events if e.event_type == "ReferralResolved"]
        assert len(resolved) == 1
        assert (resolved[0].actor.kind, resolved[0].actor.id) == (ActorKind.EXTERNAL, TARGET)
        assert resolved[0].data.responded_by == TARGET


async def test_the_target_subject_refuses_a_bad_request(nats_url: str, mongo_url: str, namespace: str,
                                                       db_prefix: str, topology: Topology,
                                                       nats_client: NatsClient) -> None:
    async with replica(settings_for(nats_url, mongo_url, namespace, db_prefix)):
        reply = await answer(nats_client, topology, TARGET, {"outcome": "accepted"})
        assert not reply.ok and reply.error is not None and reply.error["code"] == "invalid_request"
        reply = await answer(nats_client, topology, TARGET, {"referral_id": str(uuid.uuid4()), "outcome": "accepted"})
        assert not reply.ok and reply.error is not None and reply.error["code"] == "referral_not_found"
