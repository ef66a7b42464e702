"""Case progress: the referral service's events become the complaint's status history."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from intake_testkit import FRONT, Replica, complaint, nik, publish, wait_for
from nats.js import JetStreamContext
from puskesos_shared.contracts import Event
from puskesos_shared.contracts.examples import example
from puskesos_shared.topology import Topology

pytestmark = pytest.mark.integration


def case_event(kind: str, case_id: uuid.UUID, minutes: int, **data: Any) -> Event:
    base = example(kind)
    payload = base.data.model_copy(update={"case_id": case_id, **data})  # type: ignore[attr-defined]
    return base.model_copy(update={"event_id": uuid.uuid4(), "data": payload, "correlation_id": f"case:{case_id}",
                                   "occurred_at": dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)})


async def file(app: Replica, **kw: Any) -> dict[str, Any]:
    r = await app.http.post("/complaints", json=complaint(**kw), headers=FRONT)
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()["complaint"]
    return created


async def status_of(app: Replica, case_number: str) -> dict[str, Any]:
    r = await app.http.get(f"/complaints/{case_number}", headers=FRONT)
    assert r.status_code == 200
    found: dict[str, Any] = r.json()
    return found


async def test_history_follows_case_events_in_any_order(app: Replica, jetstream: JetStreamContext,
                                                        topology: Topology) -> None:
    c = await file(app)
    case_id = uuid.uuid4()
    opened = case_event("CaseOpened", case_id, 1, complaint_id=uuid.UUID(c["complaint_id"]),
                        case_number=c["case_number"])
    assessed = case_event("CaseAssessed", case_id, 2)
    referred = case_event("ReferralIssued", case_id, 3)
    # CaseAssessed arrives before CaseOpened: it is retried until the case is known
    await publish(jetstream, topology, assessed)
    await publish(jetstream, topology, opened)
    await publish(jetstream, topology, referred)
    await publish(jetstream, topology, referred)  # a duplicate publish (same Nats-Msg-Id) changes nothing

    async def all_recorded() -> bool:
        return len((await status_of(app, c["case_number"]))["history"]) == 4
    await wait_for(all_recorded, timeout=30, what="three case events recorded (one after retries)")
    detail = await status_of(app, c["case_number"])
    assert [h["status"] for h in detail["history"]] == ["filed", "case_opened", "assessed", "referred"]
    assert detail["case_id"] == str(case_id)
    assert detail["history"][3]["summary"].startswith("Referred to BLT Dinas Sosial Kota Malang")

    async def listed_referred() -> bool:
        rows = (await app.http.get("/complaints", params={"status": "referred"}, headers=FRONT)).json()["items"]
        return [r["case_number"] for r in rows] == [c["case_number"]]
    await wait_for(listed_referred, what="listing row settled")


async def test_closing_the_case_lets_the_resident_complain_again(app: Replica, jetstream: JetStreamContext,
                                                                 topology: Topology) -> None:
    resident = nik()
    c = await file(app, nik_=resident)
    case_id = uuid.uuid4()
    await publish(jetstream, topology, case_event("CaseOpened", case_id, 1, complaint_id=uuid.UUID(c["complaint_id"]),
                                                  case_number=c["case_number"]))
    again = await app.http.post("/complaints", json=complaint(nik_=resident), headers=FRONT)
    assert again.status_code == 200  # still open: the same complaint comes back
    await publish(jetstream, topology, case_event("CaseClosed", case_id, 5))

    async def closed() -> bool:
        return (await status_of(app, c["case_number"]))["status"] == "closed"
    await wait_for(closed, what="closed")
    await publish(jetstream, topology, case_event("CaseEscalated", case_id, 6))  # late event: closed stays closed

    async def escalation_recorded() -> bool:
        return len((await status_of(app, c["case_number"]))["history"]) == 4
    await wait_for(escalation_recorded, what="late escalation recorded")
    assert (await status_of(app, c["case_number"]))["status"] == "closed"

    async def reopened() -> bool:
        r = await app.http.post("/complaints", json=complaint(nik_=resident), headers=FRONT)
        return r.status_code == 201
    await wait_for(reopened, what="a new complaint accepted after closing")


async def test_case_event_contradicting_the_complaint_is_dead_lettered(app: Replica, jetstream: JetStreamContext,
                                                                        topology: Topology) -> None:
    c = await file(app)
    wrong = case_event("CaseOpened", uuid.uuid4(), 1, complaint_id=uuid.UUID(c["complaint_id"]),
                       case_number="3573011001/2020/00042")
    await publish(jetstream, topology, wrong)

    async def dead_lettered() -> bool:
        info = await jetstream.stream_info(topology.dead_letter_stream)
        return info.state.messages == 1
    await wait_for(dead_lettered, what="dead letter")
    msg = await jetstream.get_msg(topology.dead_letter_stream, 1)
    assert "case number" in (msg.headers or {}).get("Puskesos-Dlq-Reason", "")
    assert (await status_of(app, c["case_number"]))["status"] == "filed"
