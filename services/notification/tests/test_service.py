"""The service in-process (real lifespan) on real NATS JetStream and the Mongo server, with a real HTTP provider."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from puskesos_notification import messages
from puskesos_notification.app import create_app
from puskesos_notification.channels import OutgoingMessage
from puskesos_notification.domain import ContactKeys, Planned, Reach, build_notification, notification_id
from puskesos_notification.settings import NotificationSettings
from puskesos_notification.templates import render
from puskesos_notification.testing import ProviderSink
from puskesos_notification.testing import events as ev
from puskesos_notification.testing.streams import consumer_idle, read_events, wait_until
from puskesos_shared.auth import Officer, issue_token
from puskesos_shared.commands import send_command
from puskesos_shared.contracts import Event, NotificationFailed, NotificationSent
from puskesos_shared.contracts.notification import RecipientKind
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.service import ServiceRuntime
from puskesos_shared.testing.app import running_app, runtime_of
from puskesos_shared.topology import Topology
from pydantic import SecretStr

pytestmark = pytest.mark.integration
AUTH_SECRET = "s" * 40
HASH_SECRET = "h" * 40
KEYS = ContactKeys(HASH_SECRET.encode())


@dataclass
class Service:
    runtime: ServiceRuntime
    http: httpx.AsyncClient
    js: JetStreamContext
    nc: NatsClient
    topology: Topology
    sink: ProviderSink

    async def publish(self, *events: Event) -> None:
        for event in events:
            await ev.publish(self.js, self.topology, event)

    async def outcomes(self) -> dict[uuid.UUID, Event]:
        """NotificationSent/Failed by notification id; fails if any notification has two events."""
        found = await read_events(self.js, self.topology)
        by_id: dict[uuid.UUID, Event] = {}
        for event in found:
            assert isinstance(event, NotificationSent | NotificationFailed)
            assert event.data.notification_id not in by_id, "two outcome events for one notification"
            by_id[event.data.notification_id] = event
        return by_id

    async def outcome(self, nid: uuid.UUID, timeout: float = 30) -> Event:
        async def find() -> Event | None:
            return (await self.outcomes()).get(nid)

        return await wait_until(find, timeout=timeout, what=f"the outcome of notification {nid}")

    async def idle(self) -> bool:
        return all([await consumer_idle(self.js, self.topology, c) for c in ("notification", "notification_contacts")])

    async def command(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        reply = await send_command(self.nc, self.topology.command_subject("notification", name), body)
        return reply.model_dump()


def token(role: OfficerRole, *scope: str) -> dict[str, str]:
    officer = Officer(officer_id=f"{role.value}-1", role=role, scope=scope)
    return {"Authorization": f"Bearer {issue_token(officer, AUTH_SECRET)}"}


@pytest_asyncio.fixture
async def service(nats_url: str, mongo_url: str, namespace: str, db_prefix: str, topology: Topology,
                  jetstream: JetStreamContext, nats_client: NatsClient, mongo_client: object,
                  sink: ProviderSink) -> AsyncIterator[Service]:
    settings = NotificationSettings(
        _env_file=None,  # type: ignore[call-arg]
        nats_url=nats_url, mongo_url=mongo_url, namespace=namespace, mongo_db=f"{db_prefix}_notification",
        auth_secret=SecretStr(AUTH_SECRET), notify_hash_secret=SecretStr(HASH_SECRET),
        notify_channel="webhook", notify_webhook_url=sink.url, notify_webhook_timeout_seconds=0.5,
        notify_webhook_max_attempts=3, notify_webhook_backoff_initial_seconds=0.05,
        notify_webhook_backoff_max_seconds=0.2, notify_rate_per_second=1000, notify_rate_burst=100,
        notify_contact_wait_attempts=3, notify_consumer_max_attempts=5, notify_consumer_backoff_seconds=0.1,
        notify_consumer_ack_wait_seconds=5,
    )
    app = create_app(settings)
    async with running_app(app) as http:
        yield Service(runtime_of(app), http, jetstream, nats_client, topology, sink)


def nid(event: Event, recipient: str, template: str) -> uuid.UUID:
    return notification_id(event.event_id, recipient, template)


async def test_complaint_receipt_is_sent_once_and_announced(service: Service) -> None:
    household = ev.household_registered(1, phone_number="+6281200000001")
    complaint = ev.complaint_filed(1, nik_of=ev.nik(10))  # a member of household 1, no contact phone given
    await service.publish(household, complaint)
    expected = nid(complaint, KEYS.nik(ev.nik(10)), "complaint_receipt")
    sent = await service.outcome(expected)
    assert isinstance(sent, NotificationSent)
    assert sent.data.recipient.address_masked == "0812****0001" and sent.data.attempts == 1
    assert (sent.causation_id, sent.data.template_version) == (str(complaint.event_id), 1)
    assert service.sink.to_for(str(expected)) == "6281200000001"
    assert "nomor kasus 3573011001/2026/00001" in (service.sink.text_for(str(expected)) or "")
    # the same event again, under another Nats-Msg-Id (a replay the broker cannot de-duplicate)
    body = complaint.model_dump_json().encode()
    await service.js.publish(f"{service.topology.namespace}.events.intake.complaint_filed.v1", body,
                             headers={"Nats-Msg-Id": "replayed-copy"})
    await wait_until(service.idle, what="the replay to be handled")
    requests, accepted = service.sink.snapshot()
    assert requests[str(expected)] == 1 and accepted[str(expected)] == 1
    assert len(await service.outcomes()) == 1
    response = await service.http.get(f"/notifications/deliveries/{expected}",
                                      headers=token(OfficerRole.FRONT_OFFICE, "35.73.01.1001"))
    assert response.status_code == 200
    record = response.json()
    assert record["state"] == "sent" and record["phone_masked"] == "0812****0001"
    assert "3573010101800010" not in response.text


async def test_resident_journey_every_template_once(service: Service) -> None:
    complaint = ev.complaint_filed(2, contact_phone=ev.phone(2))
    await service.publish(ev.household_registered(3, phone_number=ev.phone(3)), ev.round_opened(1), complaint,
                          ev.case_opened(2, complaint), ev.referral_issued(2), ev.case_closed(2),
                          ev.aid_allocated(3), ev.aid_disbursed(3))
    case_key, kk_key = f"case:{ev.case_id(2)}", KEYS.kk(ev.kk(3))
    expected = {
        nid(complaint, KEYS.phone(ev.phone(2)), "complaint_receipt"): "3573011001/2026/00002",
        nid(ev.referral_issued(2), case_key, "referral_issued"): "Nomor rujukan: RJK/3573011001/2026/00001",
        nid(ev.case_closed(2), case_key, "case_closed"): "dengan hasil: rujukan selesai",
        nid(ev.aid_allocated(3), kk_key, "aid_allocated"): "Kantor Pos Blimbing mulai 1 November 2026",
        nid(ev.aid_disbursed(3), kk_key, "aid_disbursed"): "Rp300.000 (tiga ratus ribu rupiah)",
    }
    for key, fragment in expected.items():
        assert isinstance(await service.outcome(key), NotificationSent)
        assert fragment in (service.sink.text_for(str(key)) or "")
    _, accepted = service.sink.snapshot()
    assert set(accepted) == {str(k) for k in expected} and set(accepted.values()) == {1}


async def test_no_phone_and_opt_out_are_recorded_not_sent(service: Service) -> None:
    await service.publish(ev.household_registered(4, phone_number=None),
                          ev.household_registered(5, phone_number=ev.phone(5)))
    reply = await service.command("opt_out", {"phone": "0812-0000-0005", "opted_out": True})
    assert reply["ok"] and reply["result"] == {"phone_masked": "0812****0005", "opted_out": True}
    no_phone, opted_out = ev.aid_allocated(4), ev.aid_allocated(5)
    await service.publish(no_phone, opted_out)
    failed = await service.outcome(nid(no_phone, KEYS.kk(ev.kk(4)), "aid_allocated"))
    assert isinstance(failed, NotificationFailed) and failed.data.reason == "no_contact"
    assert failed.data.detail == "the household has no mobile phone number" and failed.data.attempts == 0
    refused = await service.outcome(nid(opted_out, KEYS.kk(ev.kk(5)), "aid_allocated"))
    assert isinstance(refused, NotificationFailed) and refused.data.reason == "opted_out"
    assert not service.sink.snapshot()[0]  # the provider heard nothing
    # opting in again (an officer records it over HTTP): the next message goes out
    response = await service.http.put("/notifications/opt-outs", json={"phone": ev.phone(5), "opted_out": False},
                                      headers=token(OfficerRole.FRONT_OFFICE, "35.73.01.1001"))
    assert response.status_code == 200
    disbursed = ev.aid_disbursed(5)
    await service.publish(disbursed)
    assert isinstance(await service.outcome(nid(disbursed, KEYS.kk(ev.kk(5)), "aid_disbursed")), NotificationSent)


async def test_unknown_contact_waits_for_the_household_then_gives_up(service: Service) -> None:
    late = ev.complaint_filed(6, nik_of=ev.nik(60))
    await service.publish(late)

    async def retried() -> bool:
        info = await service.js.consumer_info(service.topology.events_stream, "notification")
        return info.num_redelivered > 0

    await wait_until(retried, what="the complaint to be retried (household unknown)")
    await service.publish(ev.household_registered(6, phone_number=ev.phone(6)))  # arrives late
    sent = await service.outcome(nid(late, KEYS.nik(ev.nik(60)), "complaint_receipt"))
    assert isinstance(sent, NotificationSent)

    never = ev.complaint_filed(7, nik_of=ev.nik(70))  # this household never reaches the service
    await service.publish(never)
    failed = await service.outcome(nid(never, KEYS.nik(ev.nik(70)), "complaint_receipt"))
    assert isinstance(failed, NotificationFailed) and failed.data.reason == "no_contact"
    assert "household is not registered" in failed.data.detail


async def test_provider_500_and_timeouts_fail_with_the_reason_and_the_flow_continues(service: Service) -> None:
    service.sink.mode = "error"
    broken = ev.complaint_filed(8, contact_phone=ev.phone(8))
    await service.publish(broken)
    failed = await service.outcome(nid(broken, KEYS.phone(ev.phone(8)), "complaint_receipt"))
    assert isinstance(failed, NotificationFailed) and failed.data.reason == "provider_error"
    assert (failed.data.detail, failed.data.attempts) == ("HTTP 500 after 3 attempts", 3)

    service.sink.mode, service.sink.hang_seconds = "hang", 1.5
    slow = ev.complaint_filed(9, contact_phone=ev.phone(9))
    await service.publish(slow)
    timed_out = await service.outcome(nid(slow, KEYS.phone(ev.phone(9)), "complaint_receipt"))
    assert isinstance(timed_out, NotificationFailed) and timed_out.data.reason == "provider_error"
    assert timed_out.data.detail == "timeout after 0.5s after 3 attempts"

    service.sink.mode = "ok"
    later = ev.complaint_filed(10, contact_phone=ev.phone(10))
    await service.publish(later)
    assert isinstance(await service.outcome(nid(later, KEYS.phone(ev.phone(10)), "complaint_receipt")),
                      NotificationSent)
    dlq = await service.js.stream_info(service.topology.dead_letter_stream)
    assert dlq.state.messages == 0  # nothing was dead-lettered: failures are recorded outcomes


async def test_officer_directory_and_officer_notifications(service: Service) -> None:
    reply = await service.command("officer_upsert", {"officer_id": "tksk-blimbing", "phone": "081300000001",
                                                     "role": "coordinator", "scope": ["35.73.01"]})
    assert reply["ok"] and reply["result"]["phone_masked"] == "0813****0001"
    bad = await service.command("officer_upsert", {"officer_id": "x", "phone": "0341-123456", "role": "coordinator",
                                                   "scope": ["35.73"]})
    assert not bad["ok"] and bad["error"]["fields"][0]["loc"] == ["phone"] and "0341" not in str(bad)
    operator = token(OfficerRole.OPERATOR, "35.73")
    put = await service.http.put("/notifications/officers/dinsos-op-1", headers=operator,
                                 json={"phone": "+6281300000002", "role": "operator", "scope": ["35.73"]})
    assert put.status_code == 200, put.text
    outsider = await service.http.put("/notifications/officers/x", headers=token(OfficerRole.OPERATOR, "35.09"),
                                      json={"phone": "+6281300000003", "role": "operator", "scope": ["35.73"]})
    assert outsider.status_code == 403
    no_token = await service.http.put("/notifications/officers/y",
                                      json={"phone": "+6281300000003", "role": "operator", "scope": ["35.73"]})
    assert no_token.status_code == 401
    invalid = await service.http.put("/notifications/opt-outs", headers=operator,
                                     json={"phone": "0341-123456", "opted_out": "maybe"})
    assert invalid.status_code == 422 and "0341" not in invalid.text
    assert {tuple(e["loc"]) for e in invalid.json()["errors"]} == {("body", "phone"), ("body", "opted_out")}
    clerk = await service.http.put("/notifications/officers/y", headers=token(OfficerRole.FRONT_OFFICE, "35.73"),
                                   json={"phone": "+6281300000003", "role": "operator", "scope": ["35.73"]})
    assert clerk.status_code == 403

    retrying, final = ev.disbursement_failed(11, final=False), ev.disbursement_failed(12, final=True)
    complaint = ev.complaint_filed(13, contact_phone=ev.phone(13))
    escalated = ev.case_escalated(13, to_level="kecamatan")
    await service.publish(retrying, final, complaint, ev.case_opened(13, complaint), escalated)
    for officer in ("tksk-blimbing", "dinsos-op-1"):
        assert isinstance(await service.outcome(nid(final, officer, "disbursement_failed")), NotificationSent)
    to_tksk = await service.outcome(nid(escalated, "tksk-blimbing", "case_escalated"))
    assert isinstance(to_tksk, NotificationSent) and to_tksk.data.recipient.kind == "coordinator"
    assert "Kasus 3573011001/2026/00013" in (service.sink.text_for(str(to_tksk.data.notification_id)) or "")
    await wait_until(service.idle, what="every event to be handled")
    assert not [e for e in (await service.outcomes()).values()
                if e.data.source_event_id == retrying.event_id]  # type: ignore[attr-defined]
    listing = await service.http.get("/notifications/deliveries", params={"source_event_id": str(final.event_id)},
                                     headers=token(OfficerRole.COORDINATOR, "35.73.01"))
    assert sorted(item["recipient"]["id"] for item in listing.json()["items"]) == ["dinsos-op-1", "tksk-blimbing"]
    removed = await service.http.delete("/notifications/officers/dinsos-op-1", headers=operator)
    assert removed.status_code == 200 and removed.json()["removed"] is True


async def test_a_crash_after_the_provider_call_resends_under_the_same_key(service: Service) -> None:
    """A pending record (the process died after the provider call, before recording it) is resent harmlessly."""
    store = service.runtime.state["store"]
    complaint = ev.complaint_filed(14, contact_phone=ev.phone(14))
    expected = nid(complaint, KEYS.phone(ev.phone(14)), "complaint_receipt")
    # the first run: record pending and the provider called, then the "crash" (no finish)
    planned = Planned(RecipientKind.RESIDENT, KEYS.phone(ev.phone(14)), "complaint_receipt", {},
                      Reach(phone=ev.phone(14)))
    notification = build_notification(complaint, planned,
                                       render("complaint_receipt", messages.complaint_receipt(complaint)))
    channel = service.runtime.state["channel"]
    record = await store.begin(notification, channel.kind)
    await channel.send(OutgoingMessage(notification_id=expected, to=ev.phone(14), text=record.notification.text,
                                       template_id="complaint_receipt", template_version=1))
    await service.publish(complaint)  # the redelivery after the restart
    sent = await service.outcome(expected)
    assert isinstance(sent, NotificationSent)
    requests, accepted = service.sink.snapshot()
    assert requests[str(expected)] == 2 and accepted[str(expected)] == 1  # resent, one message
    stored = await store.get(expected)
    assert stored.state == "sent" and stored.outbox == []
    assert sent.data.sent_at.tzinfo is not None and sent.data.sent_at <= dt.datetime.now(dt.UTC)


async def test_two_replicas_delivering_the_same_notification_at_once_send_one_message(service: Service) -> None:
    """All coordination is in the store and the provider: two concurrent runs (two replicas) give one message."""
    complaint = ev.complaint_filed(15, contact_phone=ev.phone(15))
    planned = Planned(RecipientKind.RESIDENT, KEYS.phone(ev.phone(15)), "complaint_receipt", {},
                      Reach(phone=ev.phone(15)))
    notification = build_notification(complaint, planned,
                                      render("complaint_receipt", messages.complaint_receipt(complaint)))
    deliverer = service.runtime.state["deliverer"]
    first, second = await asyncio.gather(deliverer.deliver(notification), deliverer.deliver(notification))
    assert first.state == second.state == "sent"
    assert first.provider_message_id == second.provider_message_id
    _, accepted = service.sink.snapshot()
    assert accepted[str(notification.notification_id)] == 1
    outcomes = await service.outcomes()  # fails on two outcome events for one notification
    assert isinstance(outcomes[notification.notification_id], NotificationSent)
