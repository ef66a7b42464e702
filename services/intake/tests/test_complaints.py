"""Filing complaints over HTTP: case numbers, idempotency, duplicates, listing, bad input."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections import Counter

import pytest
from intake_testkit import (
    ASSESSOR,
    BACK,
    FRONT,
    JEMBER_VILLAGE,
    OTHER_VILLAGE,
    VILLAGE,
    Replica,
    bearer,
    complaint,
    events_of,
    household,
    member,
    nik,
    replica,
    wait_for,
)
from nats.js import JetStreamContext
from puskesos_intake.domain.complaints import complaint_filed_event_id
from puskesos_intake.settings import IntakeSettings
from puskesos_shared.contracts.intake import ComplaintFiled
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.messaging import PublishError
from puskesos_shared.topology import Topology

pytestmark = pytest.mark.integration
YEAR = dt.datetime.now(dt.timezone(dt.timedelta(hours=7))).year


async def test_file_and_read_a_complaint(app: Replica, jetstream: JetStreamContext, topology: Topology) -> None:
    filed = await app.http.post("/complaints", json=complaint(), headers=FRONT)
    assert filed.status_code == 201, filed.text
    body = filed.json()
    assert body["created"] is True
    c = body["complaint"]
    assert c["case_number"] == f"3573011001/{YEAR}/00001"
    assert c["complainant"] == {"nik": None, "kk_number": None, "contact_phone": "+6281234567890"}
    assert c["status"] == "filed" and [h["status"] for h in c["history"]] == ["filed"]
    assert c["filed_by"] == "fo-1"

    read = await app.http.get(f"/complaints/{c['case_number']}", headers=ASSESSOR)  # any in-scope role reads
    assert read.status_code == 200 and read.json() == c

    async def published() -> bool:
        return len(await events_of(jetstream, topology, "ComplaintFiled")) == 1
    await wait_for(published, what="ComplaintFiled published")
    (event,) = await events_of(jetstream, topology, "ComplaintFiled")
    assert isinstance(event, ComplaintFiled)
    complaint_id = uuid.UUID(c["complaint_id"])
    assert event.event_id == complaint_filed_event_id(complaint_id)
    assert event.correlation_id == f"complaint:{complaint_id}"
    assert event.data.case_number == c["case_number"] and event.actor.id == "fo-1"


async def test_idempotency_key_returns_the_same_complaint(app: Replica) -> None:
    headers = {**FRONT, "Idempotency-Key": "desk-7-0001"}
    first = await app.http.post("/complaints", json=complaint(), headers=headers)
    again = await app.http.post("/complaints", json=complaint(), headers=headers)
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["created"] is False
    assert again.json()["complaint"]["case_number"] == first.json()["complaint"]["case_number"]
    other = await app.http.post("/complaints", json=complaint(description="Lain"), headers=headers)
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"
    concurrent = await asyncio.gather(*(app.http.post("/complaints", json=complaint(description="X"),
                                                      headers={**FRONT, "Idempotency-Key": "same"})
                                        for _ in range(5)))
    assert len({r.json()["complaint"]["case_number"] for r in concurrent}) == 1
    assert sorted(r.status_code for r in concurrent) == [200, 200, 200, 200, 201]


async def test_open_complaint_of_same_resident_and_category_comes_back(app: Replica) -> None:
    resident = nik()
    first = await app.http.post("/complaints", json=complaint(nik_=resident, phone=None), headers=FRONT)
    assert first.status_code == 201
    again = await app.http.post("/complaints", json=complaint(nik_=resident, description="Lagi"), headers=FRONT)
    assert again.status_code == 200 and again.json()["created"] is False
    assert again.json()["complaint"]["complaint_id"] == first.json()["complaint"]["complaint_id"]
    other_category = await app.http.post("/complaints", json=complaint(nik_=resident, category="health_referral"),
                                         headers=FRONT)
    assert other_category.status_code == 201
    burst = await asyncio.gather(*(app.http.post("/complaints", json=complaint(nik_=nik()), headers=FRONT)
                                   for _ in range(3)))
    assert all(r.status_code == 201 for r in burst)
    same_resident = nik()
    racing = await asyncio.gather(*(app.http.post("/complaints", json=complaint(nik_=same_resident), headers=FRONT)
                                    for _ in range(4)))
    assert len({r.json()["complaint"]["complaint_id"] for r in racing}) == 1


async def test_registered_resident_is_linked_to_the_household(app: Replica) -> None:
    head = nik()
    data = household(members=[member(head, "kepala_keluarga")])
    assert (await app.http.post("/households", json=data, headers=BACK)).status_code == 201
    filed = await app.http.post("/complaints", json=complaint(nik_=head), headers=FRONT)
    assert filed.json()["complaint"]["complainant"]["kk_number"] == data["kk_number"]


async def test_200_concurrent_filings_on_two_replicas_number_1_to_200(
    app: Replica, settings: IntakeSettings, jetstream: JetStreamContext, topology: Topology
) -> None:
    async with replica(settings) as second:
        clients = [app.http, second.http]
        responses = await asyncio.gather(*(
            clients[i % 2].post("/complaints", json=complaint(description=f"keluhan {i}"), headers=FRONT)
            for i in range(200)
        ))
        assert all(r.status_code == 201 for r in responses), {r.status_code for r in responses}
        numbers = sorted(int(r.json()["complaint"]["case_number"].rsplit("/", 1)[1]) for r in responses)
        assert numbers == list(range(1, 201))

        async def all_published() -> bool:
            return len(await events_of(jetstream, topology, "ComplaintFiled")) >= 200
        await wait_for(all_published, timeout=60, what="200 ComplaintFiled")
        events = await events_of(jetstream, topology, "ComplaintFiled")
        counts = Counter(e.data.case_number for e in events if isinstance(e, ComplaintFiled))
        assert len(events) == 200 and set(counts.values()) == {1}


async def test_listing_filters_pages_and_scope(app: Replica) -> None:
    for category in ("aid_not_received", "aid_not_received", "health_referral"):
        assert (await app.http.post("/complaints", json=complaint(category=category), headers=FRONT)).status_code == 201
    wide = bearer(OfficerRole.FRONT_OFFICE, "35.73.01", officer_id="tksk-1")  # a kecamatan scope
    assert (await app.http.post("/complaints", json=complaint(village=OTHER_VILLAGE), headers=wide)).status_code == 201

    page = (await app.http.get("/complaints", params={"village_code": VILLAGE}, headers=FRONT)).json()
    assert page["total"] == 3 and len(page["items"]) == 3
    assert [i["case_number"][-5:] for i in page["items"]] == ["00003", "00002", "00001"]  # newest first
    assert {i["status"] for i in page["items"]} == {"filed"}
    filtered = (await app.http.get("/complaints", params={"category": "health_referral", "status": "filed"},
                                   headers=FRONT)).json()
    assert filtered["total"] == 1 and filtered["items"][0]["category"] == "health_referral"
    paged = (await app.http.get("/complaints", params={"page": 2, "page_size": 2}, headers=FRONT)).json()
    assert paged["total"] == 3 and len(paged["items"]) == 1  # the other village is outside FRONT's scope
    assert (await app.http.get("/complaints", headers=wide)).json()["total"] == 4
    assert (await app.http.get("/complaints", params={"village_code": OTHER_VILLAGE}, headers=FRONT)).status_code == 403
    assert (await app.http.get("/complaints", params={"status": "nope"}, headers=FRONT)).status_code == 422
    assert (await app.http.get("/complaints", params={"page_size": 1000}, headers=FRONT)).status_code == 422


async def test_bad_complaint_input_gets_field_level_4xx(app: Replica) -> None:
    post = app.http.post
    r = await post("/complaints", json=complaint(nik_="3573013213900003"), headers=FRONT)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "complainant", "nik"]
    r = await post("/complaints", json=complaint(phone=None), headers=FRONT)
    assert r.status_code == 422 and "NIK or, when anonymous, a contact phone" in r.text
    r = await post("/complaints", json=complaint(phone="12"), headers=FRONT)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "complainant", "contact_phone"]
    r = await post("/complaints", json={**complaint(), "category": "ghosts"}, headers=FRONT)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "category"]
    r = await post("/complaints", json=complaint(village="35.73.01.9999"), headers=FRONT)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "village_code"]
    r = await post("/complaints", json={**complaint(), "description": "x" * 5000}, headers=FRONT)
    assert r.status_code == 422
    r = await post("/complaints", content=b"[1, 2", headers={**FRONT, "content-type": "application/json"})
    assert r.status_code == 422
    r = await post("/complaints", content=b'{"d": "' + b"x" * 400_000 + b'"}',
                   headers={**FRONT, "content-type": "application/json"})
    assert r.status_code == 413
    assert (await post("/complaints", json=complaint(), headers=BACK)).status_code == 403
    r = await post("/complaints", json=complaint(village=JEMBER_VILLAGE), headers=FRONT)
    assert r.status_code == 403
    assert (await app.http.get("/complaints/3573011001/2026/1", headers=FRONT)).status_code == 422
    assert (await app.http.get("/complaints/3573011001/2026/00009", headers=FRONT)).status_code == 404
    r = await post("/complaints", json=complaint(), headers={**FRONT, "Idempotency-Key": "k" * 300})
    assert r.status_code == 422
    listing = (await app.http.get("/complaints", headers=FRONT)).json()
    assert listing["total"] == 0  # nothing half-written by any of the above


async def test_publish_failure_keeps_the_event_until_the_sweep_sends_it(
    app: Replica, jetstream: JetStreamContext, topology: Topology, monkeypatch: pytest.MonkeyPatch
) -> None:
    publisher = app.runtime.publisher

    async def refuse(*_: object, **__: object) -> None:
        raise PublishError("broker away (test)")

    monkeypatch.setattr(publisher, "publish_raw", refuse)
    filed = await app.http.post("/complaints", json=complaint(), headers=FRONT)
    assert filed.status_code == 201  # the write is durable; the event waits in the outbox
    monkeypatch.undo()
    assert await events_of(jetstream, topology, "ComplaintFiled") == []
    await app.runtime.relay().republish_pending()  # what the kit's sweep does after a failed flush
    (event,) = await events_of(jetstream, topology, "ComplaintFiled")
    assert isinstance(event, ComplaintFiled)
    assert event.data.case_number == filed.json()["complaint"]["case_number"]
