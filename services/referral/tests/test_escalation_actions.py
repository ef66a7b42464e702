"""Acting on escalations on real servers: the list per level and scope, acknowledge, resolve, the events.

A case escalates to the kecamatan by the SLA sweep (a controllable clock); its coordinator sees it
(another kecamatan's does not), acknowledges it and returns it to the village with a new deadline;
past that deadline it escalates again (a new event id), then to the Dinas Sosial, whose operator
handles it over NATS. Wrong roles and scopes are refused with the problem shape; the case page has
its timeline and the case list its SLA state in working days.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import httpx
import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from puskesos_referral.domain.case import CASE_CLOSED_ACTION, EscalationStatus
from puskesos_referral.domain.decisions import (
    acknowledge_escalation,
    close_case,
    escalate_overdue,
    open_case,
    resolve_escalation,
)
from puskesos_shared.contracts import Actor, ActorKind, subject_for
from puskesos_shared.contracts.intake import ComplaintCategory, Urgency
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.contracts.referral import (
    CaseResolution,
    EscalationAcknowledged,
    EscalationAction,
    EscalationLevel,
    EscalationResolved,
)
from puskesos_shared.ids import derived_event_id, stable_id
from puskesos_shared.topology import Topology
from referral_testkit import (
    JEMBER_VILLAGE,
    FakeClock,
    bearer,
    command,
    complaint_filed,
    officer,
    publish,
    replica,
    settings_for,
    stream_events,
    token,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
KECAMATAN = JEMBER_VILLAGE.rsplit(".", 1)[0]  # 35.09.01 Jombang
OTHER_KECAMATAN = "35.09.02"
REGENCY = "35.09"  # Kabupaten Jember
COORDINATOR = OfficerRole.COORDINATOR
NOTE = "Kunjungi rumah Bapak Slamet besok, bawa formulir asesmen."


def _problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"] == f"urn:puskesos:problem:{code}" and body["code"] == code and body["status"] == status
    assert isinstance(body["title"], str) and isinstance(body["detail"], str) and isinstance(body["errors"], list)


async def _escalations(http: httpx.AsyncClient, role: OfficerRole, scope: str, **params: Any) -> dict[str, Any]:
    response = await http.get("/escalations", params=params, headers=bearer(role, scope))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_coordinator_acknowledges_and_returns_an_escalation_then_the_dinas_sosial_handles_it(
        nats_url: str, mongo_url: str, namespace: str, db_prefix: str, topology: Topology,
        jetstream: JetStreamContext, nats_client: NatsClient) -> None:
    clock = FakeClock()  # Monday 23 Nov 2026, 09:00 WIB
    settings = settings_for(nats_url, mongo_url, namespace, db_prefix, escalation_interval_seconds=0.02)
    async with replica(settings, clock) as r:
        store = r.runtime.state["store"]
        complaint = complaint_filed(category=ComplaintCategory.AID_NOT_RECEIVED, urgency=Urgency.NORMAL)
        await publish(jetstream, topology, complaint)  # 5 working days: due Monday 30 Nov
        case_id = stable_id("case", complaint.data.complaint_id)

        async def at(level: str, escalations: int) -> bool:
            case = await store.current(case_id)
            return case is not None and case.level.value == level and len(case.escalations) == escalations

        await wait_for(lambda: at("village", 0), what="case opened")
        nothing = await _escalations(r.http, COORDINATOR, KECAMATAN)
        assert nothing["total"] == 0 and nothing["items"] == []

        clock.advance(days=7, hours=16)  # Tuesday 1 Dec, 01:00 WIB: a day late
        await wait_for(lambda: at("kecamatan", 1), what="escalated to the kecamatan")

        # the list: the kecamatan's coordinator sees it, another kecamatan's does not
        mine = await _escalations(r.http, COORDINATOR, KECAMATAN)
        assert (mine["total"], mine["page"], mine["page_size"], mine["levels"]) == (1, 1, 50, ["kecamatan"])
        (row,) = mine["items"]
        first_escalation = stable_id("escalation", case_id, "kecamatan")
        assert row["case_id"] == str(case_id) and row["case_number"] == complaint.data.case_number
        assert (row["village_code"], row["kecamatan_code"], row["category"]) == (JEMBER_VILLAGE, KECAMATAN,
                                                                                 "aid_not_received")
        assert (row["level"], row["status"], row["escalation_event_id"]) == ("kecamatan", "open",
                                                                             str(first_escalation))
        assert (row["sla_due_on"], row["overdue_working_days"], row["level_due_on"]) == ("2026-11-30", 1,
                                                                                        "2026-12-04")
        assert dt.datetime.fromisoformat(row["escalated_at"]) == clock.now
        assert row["acknowledged_by"] is None and row["resolution"] is None
        assert (await _escalations(r.http, COORDINATOR, OTHER_KECAMATAN))["total"] == 0
        assert (await _escalations(r.http, COORDINATOR, REGENCY))["total"] == 1  # a regency-wide coordinator
        # the Dinas Sosial's own level is empty; it may look at the kecamatan's
        assert (await _escalations(r.http, OfficerRole.OPERATOR, REGENCY))["total"] == 0
        assert (await _escalations(r.http, OfficerRole.OPERATOR, REGENCY, level="kecamatan"))["total"] == 1
        assert (await _escalations(r.http, OfficerRole.ASSESSOR, JEMBER_VILLAGE))["levels"] == ["kecamatan",
                                                                                               "dinas_sosial"]
        _problem(await r.http.get("/escalations", params={"village_code": JEMBER_VILLAGE},
                                  headers=bearer(COORDINATOR, OTHER_KECAMATAN)), 403, "outside_scope")
        _problem(await r.http.get("/escalations", params={"status": "pending"}, headers=bearer(COORDINATOR, KECAMATAN)),
                 422, "invalid_request")

        # wrong role or scope: refused before anything is written
        ack_url, resolve_url = f"/cases/{case_id}/escalation/acknowledge", f"/cases/{case_id}/escalation/resolve"
        _problem(await r.http.post(ack_url, json={}, headers=bearer(OfficerRole.ASSESSOR, JEMBER_VILLAGE)),
                 403, "forbidden")
        _problem(await r.http.post(ack_url, json={}, headers=bearer(OfficerRole.OPERATOR, REGENCY)),
                 403, "forbidden")  # the kecamatan's escalation is the coordinator's
        _problem(await r.http.post(ack_url, json={}, headers=bearer(COORDINATOR, OTHER_KECAMATAN)),
                 403, "outside_scope")
        _problem(await r.http.post(f"/cases/{uuid.uuid4()}/escalation/acknowledge", json={},
                                   headers=bearer(COORDINATOR, KECAMATAN)), 404, "case_not_found")
        _problem(await r.http.post(ack_url, json={}), 401, "unauthenticated")

        # acknowledge; the same command again is a duplicate, another coordinator is refused
        coordinator = {"Authorization": f"Bearer {token(COORDINATOR, KECAMATAN, officer_id='tksk-jombang-01')}"}
        ack_id = str(uuid.uuid4())
        ack = {"command_id": ack_id, "note": "Saya tangani hari ini."}
        first = await r.http.post(ack_url, json=ack, headers=coordinator)
        assert first.status_code == 201, first.text
        escalation = first.json()["escalation"]
        assert (escalation["status"], escalation["acknowledged_by"]) == ("acknowledged", "tksk-jombang-01")
        again = await r.http.post(ack_url, json=ack, headers=coordinator)
        assert again.status_code == 200 and again.json()["duplicate"] is True
        same_officer = await r.http.post(ack_url, json={}, headers=coordinator)  # a new command, nothing to do
        assert same_officer.status_code == 200 and same_officer.json()["duplicate"] is True
        other = {"Authorization": f"Bearer {token(COORDINATOR, KECAMATAN, officer_id='tksk-jombang-02')}"}
        _problem(await r.http.post(ack_url, json={}, headers=other), 409, "already_acknowledged")
        assert (await _escalations(r.http, COORDINATOR, KECAMATAN))["total"] == 0
        assert (await _escalations(r.http, COORDINATOR, KECAMATAN, status="acknowledged"))["total"] == 1

        # resolve: back to the village with a new deadline of 2 working days (Thursday 3 Dec)
        bad = await r.http.post(resolve_url, json={"action": "returned_to_village", "note": NOTE}, headers=coordinator)
        _problem(bad, 422, "invalid_request")
        assert NOTE not in bad.text
        resolve_id = str(uuid.uuid4())
        resolve = {"command_id": resolve_id, "action": "returned_to_village", "note": NOTE,
                   "due_in_working_days": 2}
        done = await r.http.post(resolve_url, json=resolve, headers=coordinator)
        assert done.status_code == 201, done.text
        body = done.json()
        assert body["escalation"]["status"] == "resolved" and body["escalation"]["resolution"] == "returned_to_village"
        assert (body["case"]["level"], body["case"]["level_due_on"]) == ("village", "2026-12-03")
        repeat = await r.http.post(resolve_url, json=resolve, headers=coordinator)
        assert repeat.status_code == 200 and repeat.json()["duplicate"] is True
        _problem(await r.http.post(resolve_url, json={**resolve, "command_id": str(uuid.uuid4())}, headers=coordinator),
                 409, "no_open_escalation")
        resolved = await _escalations(r.http, COORDINATOR, KECAMATAN, status="resolved")
        assert resolved["total"] == 1 and resolved["items"][0]["resolved_by"] == "tksk-jombang-01"
        assert resolved["items"][0]["current_level"] == "village"

        # the events: once each, with the envelope of a command
        stored = {s.event.event_type: s for s in await stream_events(jetstream, topology)}
        events = [s.event for s in await stream_events(jetstream, topology)]
        assert [e.event_type for e in events].count("EscalationAcknowledged") == 1
        assert [e.event_type for e in events].count("EscalationResolved") == 1
        acknowledged = stored["EscalationAcknowledged"].event
        assert isinstance(acknowledged, EscalationAcknowledged)
        assert acknowledged.event_id == derived_event_id(ack_id, "escalation_acknowledged")
        assert (acknowledged.causation_id, acknowledged.correlation_id) == (ack_id, f"case:{case_id}")
        assert (acknowledged.producer, acknowledged.village_code) == ("referral", JEMBER_VILLAGE)
        assert acknowledged.actor == Actor(kind=ActorKind.OFFICER, id="tksk-jombang-01", role=COORDINATOR)
        assert (acknowledged.data.level, acknowledged.data.escalation_event_id) == (EscalationLevel.KECAMATAN,
                                                                                    first_escalation)
        assert acknowledged.data.note == "Saya tangani hari ini."
        assert stored["EscalationAcknowledged"].subject == subject_for(EscalationAcknowledged, topology)
        assert stored["EscalationAcknowledged"].headers["Nats-Msg-Id"] == str(acknowledged.event_id)
        resolved_event = stored["EscalationResolved"].event
        assert isinstance(resolved_event, EscalationResolved)
        assert resolved_event.event_id == derived_event_id(resolve_id, "escalation_resolved")
        assert resolved_event.causation_id == resolve_id
        assert stored["EscalationResolved"].subject == subject_for(EscalationResolved, topology)
        assert (resolved_event.data.action, resolved_event.data.level_after, resolved_event.data.due_on) == (
            EscalationAction.RETURNED_TO_VILLAGE, EscalationLevel.VILLAGE, dt.date(2026, 12, 3))
        assert resolved_event.data.escalation_event_id == first_escalation

        # past the village's new deadline the case escalates again, under a new event id
        clock.advance(days=3)  # Friday 4 Dec, 01:00 WIB
        await wait_for(lambda: at("kecamatan", 2), what="escalated to the kecamatan again")
        again_open = await _escalations(r.http, COORDINATOR, KECAMATAN)
        assert again_open["total"] == 1
        assert again_open["items"][0]["escalation_event_id"] == str(stable_id("escalation", case_id, "kecamatan", 2))

        # then to the Dinas Sosial (the kecamatan's 3 working days end Wednesday 9 Dec)
        clock.advance(days=6)  # Thursday 10 Dec
        await wait_for(lambda: at("dinas_sosial", 3), what="escalated to the Dinas Sosial")
        _problem(await r.http.post(ack_url, json={}, headers=coordinator), 403, "forbidden")
        regency = await _escalations(r.http, OfficerRole.OPERATOR, REGENCY)
        assert regency["total"] == 1 and regency["items"][0]["level"] == "dinas_sosial"
        operator_token = token(OfficerRole.OPERATOR, REGENCY, officer_id="dinsos-jember-op-01")
        handled = {"token": operator_token, "case_id": str(case_id), "command_id": str(uuid.uuid4()),
                   "action": "handled_at_level", "note": "Dinas Sosial menangani langsung."}
        reply = await command(nats_client, topology, "resolve_escalation", handled)
        assert reply.ok and reply.result is not None, reply.error
        assert reply.result["escalation"]["status"] == "resolved" and reply.result["case"]["level"] == "dinas_sosial"
        listed = await command(nats_client, topology, "list_escalations", {"token": operator_token,
                                                                           "status": "resolved"})
        assert listed.ok and listed.result is not None and listed.result["total"] == 1
        refused = await command(nats_client, topology, "acknowledge_escalation",
                                {"token": operator_token, "case_id": str(case_id)})
        assert not refused.ok and refused.error is not None and refused.error["code"] == "no_open_escalation"

        # the case page: every event in order, who did it, a summary without personal data
        page = await r.http.get(f"/cases/{case_id}", headers=bearer(OfficerRole.ASSESSOR, JEMBER_VILLAGE))
        assert page.status_code == 200, page.text
        timeline = page.json()["timeline"]
        assert [t["event_type"] for t in timeline] == [
            "CaseOpened", "CaseEscalated", "EscalationAcknowledged", "EscalationResolved", "CaseEscalated",
            "CaseEscalated", "EscalationResolved"]
        assert timeline[2]["actor"] == {"kind": "officer", "id": "tksk-jombang-01", "role": "coordinator"}
        assert timeline[1]["actor"] == {"kind": "system", "id": "referral-sla", "role": None}
        assert timeline[3]["summary"] == ("escalation at kecamatan resolved (returned_to_village): back to village, "
                                          "due 2026-12-03")
        times = [dt.datetime.fromisoformat(t["occurred_at"]) for t in timeline]
        assert times == sorted(times)
        assert all(NOTE not in t["summary"] and "Slamet" not in t["summary"] for t in timeline)
        assert [e["status"] for e in page.json()["escalations"]] == ["resolved", "resolved", "resolved"]
        over_nats = await command(nats_client, topology, "get_case", {"token": operator_token, "case_id": str(case_id)})
        assert over_nats.ok and over_nats.result is not None and over_nats.result["timeline"] == timeline

        # the case list: SLA state in working days (due 30 Nov; Thursday 10 Dec is 8 working days later)
        cases = await r.http.get("/cases", params={"village_code": JEMBER_VILLAGE},
                                 headers=bearer(OfficerRole.ASSESSOR, JEMBER_VILLAGE))
        (listed_case,) = cases.json()["items"]
        assert (listed_case["sla_state"], listed_case["working_days_left"], listed_case["overdue_working_days"]) == (
            "breached", 0, 8)
        assert listed_case["escalation_status"] == "resolved"


def test_working_days_left_on_a_case_on_track() -> None:
    from puskesos_referral.views import case_row

    now = dt.datetime(2026, 11, 23, 2, tzinfo=dt.UTC)  # Monday; due Monday 30 Nov
    case = open_case(complaint_filed(category=ComplaintCategory.AID_NOT_RECEIVED, urgency=Urgency.NORMAL), now).case
    row = case_row(case, now)
    assert (row["sla_state"], row["working_days_left"], row["overdue_working_days"]) == ("on_track", 5, 0)
    row = case_row(case, now + dt.timedelta(days=6))  # Sunday 29 Nov: due on the next working day
    assert (row["sla_state"], row["working_days_left"], row["overdue_working_days"]) == ("at_risk", 1, 0)


def test_closing_a_case_resolves_its_open_escalation_and_nothing_else_does_without_one() -> None:
    now = dt.datetime(2026, 11, 23, 2, tzinfo=dt.UTC)
    case = open_case(complaint_filed(category=ComplaintCategory.AID_NOT_RECEIVED, urgency=Urgency.NORMAL), now).case
    coordinator = officer(COORDINATOR, KECAMATAN).actor()
    with pytest.raises(Exception, match="no escalation awaiting"):
        acknowledge_escalation(case, command_id="c1", actor=coordinator, note="", now=now)
    late = now + dt.timedelta(days=8)
    escalated = escalate_overdue(case, late)
    assert escalated is not None
    acked = acknowledge_escalation(escalated.case, command_id="c2", actor=coordinator, note="", now=late).case
    assert acked.escalations[-1].status is EscalationStatus.ACKNOWLEDGED
    closed = close_case(acked, command_id="c3", resolution=CaseResolution.RESOLVED, reason="Bantuan sudah diterima.",
                        actor=coordinator, now=late)
    record = closed.case.escalations[-1]
    assert record.status is EscalationStatus.RESOLVED and record.resolution is not None
    assert record.resolution.action == CASE_CLOSED_ACTION and closed.case.open_escalation is None
    with pytest.raises(Exception, match="closed"):
        resolve_escalation(closed.case, command_id="c4", actor=coordinator, action=EscalationAction.HANDLED_AT_LEVEL,
                           note="x", due_in_working_days=None, now=late)
