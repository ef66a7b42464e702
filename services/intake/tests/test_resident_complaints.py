"""``POST /residents/complaints``: every complaint filed under a resident's NIK, in scope, newest first."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from intake_testkit import FRONT, OTHER_VILLAGE, VILLAGE, Replica, bearer, complaint, nik, publish, wait_for
from nats.js import JetStreamContext
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.topology import Topology
from test_progress import case_event

pytestmark = pytest.mark.integration
FRONT_OF_OTHER_VILLAGE = bearer(OfficerRole.FRONT_OFFICE, OTHER_VILLAGE, officer_id="fo-2")
COORDINATOR = bearer(OfficerRole.COORDINATOR, "35.73.01", officer_id="tksk-blimbing")
ROW_FIELDS = {"complaint_id", "case_number", "status", "category", "channel", "urgency", "anonymous", "village_code",
              "filed_at", "updated_at"}


async def file(app: Replica, headers: dict[str, str], **kw: Any) -> dict[str, Any]:
    r = await app.http.post("/complaints", json=complaint(**kw), headers=headers)
    assert r.status_code == 201, r.text
    filed: dict[str, Any] = r.json()["complaint"]
    return filed


async def of_resident(app: Replica, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    r = await app.http.post("/residents/complaints", json=body, headers=headers)
    assert r.status_code == 200, r.text
    page: dict[str, Any] = r.json()
    return page


async def test_a_residents_complaints_newest_first_in_scope(app: Replica, jetstream: JetStreamContext,
                                                            topology: Topology) -> None:
    resident, other = nik(), nik()
    first = await file(app, FRONT, nik_=resident, category="aid_not_received")
    second = await file(app, FRONT, nik_=resident, category="health_referral", phone=None)
    elsewhere = await file(app, FRONT_OF_OTHER_VILLAGE, nik_=resident, category="disability", village=OTHER_VILLAGE)
    await file(app, FRONT, nik_=other, category="aid_not_received")  # another resident's
    await file(app, FRONT, category="aid_not_received")  # anonymous (phone only)

    # the first is closed, and the resident complains about the same thing again: both are theirs
    case_id = uuid.uuid4()
    await publish(jetstream, topology, case_event("CaseOpened", case_id, 1, complaint_id=uuid.UUID(
        first["complaint_id"]), case_number=first["case_number"]))
    await publish(jetstream, topology, case_event("CaseClosed", case_id, 2))

    async def closed() -> bool:
        rows = (await of_resident(app, FRONT, nik=resident))["items"]
        return any(r["case_number"] == first["case_number"] and r["status"] == "closed" for r in rows)
    await wait_for(closed, what="the first complaint closed")
    again = await app.http.post("/complaints", json=complaint(nik_=resident, category="aid_not_received"),
                                headers=FRONT)
    assert again.status_code == 201, again.text
    third = again.json()["complaint"]

    everything = await of_resident(app, COORDINATOR, nik=resident)
    assert everything["total"] == 4 and everything["page"] == 1 and everything["page_size"] == 20
    assert [r["case_number"] for r in everything["items"]] == [
        third["case_number"], elsewhere["case_number"], second["case_number"], first["case_number"]]
    assert all(set(r) == ROW_FIELDS for r in everything["items"])
    by_case = {r["case_number"]: r for r in everything["items"]}
    assert by_case[first["case_number"]]["status"] == "closed" and by_case[third["case_number"]]["status"] == "filed"
    assert by_case[second["case_number"]]["category"] == "health_referral"
    assert (by_case[second["case_number"]]["channel"], by_case[second["case_number"]]["urgency"]) == (
        "walk_in", "normal")
    # the same items as the village listing
    listing = (await app.http.get("/complaints", headers=COORDINATOR, params={"page_size": 100})).json()["items"]
    assert [r for r in listing if r["case_number"] in by_case] == everything["items"]

    in_village = await of_resident(app, FRONT, nik=resident)  # the other village is outside fo-1's scope
    assert in_village["total"] == 3 and elsewhere["case_number"] not in str(in_village)
    paged = await of_resident(app, COORDINATOR, nik=resident, page=2, page_size=3)
    assert paged["total"] == 4 and [r["case_number"] for r in paged["items"]] == [first["case_number"]]
    nobody = await of_resident(app, COORDINATOR, nik=nik())
    assert nobody == {"items": [], "page": 1, "page_size": 20, "total": 0}


async def test_resident_complaints_input(app: Replica) -> None:
    resident = nik()
    for wrong in ({}, {"nik": "3573013213900003"}, {"nik": resident, "page": 0}, {"nik": resident, "page_size": 101},
                  {"nik": resident, "kk": "x"}):
        r = await app.http.post("/residents/complaints", json=wrong, headers=FRONT)
        assert r.status_code == 422, wrong
        assert resident not in r.text and "3573013213900003" not in r.text
    assert (await app.http.post("/residents/complaints", json={"nik": resident})).status_code == 401
    outside = bearer(OfficerRole.FRONT_OFFICE, "35.09.01.2001", officer_id="fo-jember")
    await file(app, FRONT, nik_=resident, village=VILLAGE)
    assert (await of_resident(app, outside, nik=resident))["total"] == 0  # nothing of it in their scope
