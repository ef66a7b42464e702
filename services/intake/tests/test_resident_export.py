"""A resident's data export at the intake edge (real NATS and Mongo-compatible server; other services faked).

The whole export across real service processes is proven in ``tests/e2e/test_resident_export.py``.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from intake_testkit import (
    BACK,
    FRONT,
    OTHER_VILLAGE,
    VILLAGE,
    Replica,
    bearer,
    command,
    complaint,
    household,
    member,
    nik,
    replica,
    settings_for,
)
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from puskesos_intake.niks import nik_key
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.resident_export import REMOTE_SECTIONS, export_subject
from puskesos_shared.topology import Topology

pytestmark = pytest.mark.integration
COORDINATOR = bearer(OfficerRole.COORDINATOR, "35.73.01", officer_id="tksk-blimbing")
SYSTEM = {"kind": "system", "id": "pdp-desk"}


@pytest_asyncio.fixture
async def quick(nats_url: str, mongo_url: str, namespace: str, db_prefix: str, jetstream: Any,
                mongo_client: Any) -> AsyncIterator[Replica]:
    """Intake with a short wait for the other services' parts."""
    async with replica(settings_for(nats_url, mongo_url, namespace, db_prefix,
                                    intake_export_timeout_seconds=1.0)) as running:
        yield running


async def register_family(app: Replica) -> tuple[dict[str, Any], str, str]:
    head, spouse = nik(), nik(dt.date(1985, 5, 17), female=True)
    data = household(members=[member(head, "kepala_keluarga", name="Slamet Riyadi"),
                              member(spouse, "pasangan", birth=dt.date(1985, 5, 17), sex="P", name="Siti Aminah")])
    assert (await app.http.post("/households", json=data, headers=BACK)).status_code == 201
    return data, head, spouse


async def export(app: Replica, nik_: str, headers: dict[str, str] = BACK) -> Any:
    return await app.http.post("/residents/export", json={"nik": nik_}, headers=headers, timeout=30)


async def test_export_gathers_intake_data_and_names_every_missing_service(quick: Replica, mongo_client: Any,
                                                                         db_prefix: str) -> None:
    data, head, spouse = await register_family(quick)
    filed = await quick.http.post("/complaints", json=complaint(nik_=head), headers=FRONT)
    assert filed.status_code == 201, filed.text

    response = await export(quick, head)
    assert response.status_code == 200, response.text
    assert "attachment" in response.headers["content-disposition"]
    assert response.headers["cache-control"] == "no-store"
    doc = response.json()
    assert doc["format"] == "puskesos.resident-export.v1"
    assert doc["subject"] == {"nik_masked": f"{head[:4]}********{head[-4:]}", "name_masked": "S*** R***",
                              "village_code": VILLAGE, "village_name": "Balearjosari"}
    assert doc["requested_by"] == {"kind": "officer", "id": "bo-1", "role": "back_office"}
    # nothing else runs on this bus: each missing service is named, with why
    assert doc["complete"] is False and doc["unavailable"] == list(REMOTE_SECTIONS)
    for service in REMOTE_SECTIONS:
        assert doc["sections"][service]["error"] == "unavailable"
        assert doc["sections"][service]["reason"] in ("no_responders", "timeout")

    intake = doc["sections"]["intake"]
    assert intake["service"] == "intake" and intake["found"] is True
    (entry,) = intake["records"]["households"]
    assert entry["current"] is True and entry["kk_number"] == data["kk_number"]
    assert entry["you"]["nik"] == head and entry["you"]["name"] == "Slamet Riyadi"
    assert entry["other_members"] == [{"relationship": "pasangan", "nik_masked": f"{spouse[:4]}********{spouse[-4:]}"}]
    assert spouse not in json.dumps(doc) and "Siti Aminah" not in json.dumps(doc)
    (filed_complaint,) = intake["records"]["complaints"]
    assert filed_complaint["case_number"] == filed.json()["complaint"]["case_number"]
    assert filed_complaint["complainant"]["nik"] == head
    assert intake["records"]["exports"] == []

    # the access log: who, when, the keyed hash (never the NIK), which services answered
    log = [d async for d in mongo_client[f"{db_prefix}_intake"]["export_log"].find({})]
    assert len(log) == 1 and log[0]["_id"] == doc["export_id"]
    assert log[0]["nik_hash"] == nik_key(quick.runtime.settings.nik_hash_key(), head)  # type: ignore[attr-defined]
    assert head not in str(log[0])
    assert log[0]["outcome"] == "exported" and log[0]["complete"] is False
    assert log[0]["sections"]["intake"] == "answered"
    assert log[0]["requested_by"]["id"] == "bo-1"

    again = (await export(quick, head, COORDINATOR)).json()  # a kecamatan coordinator may export too
    assert [e["export_id"] for e in again["sections"]["intake"]["records"]["exports"]] == [doc["export_id"]]


async def test_scope_role_unknown_and_invalid_nik(quick: Replica, mongo_client: Any, db_prefix: str) -> None:
    _, head, _ = await register_family(quick)
    elsewhere = await export(quick, head, bearer(OfficerRole.BACK_OFFICE, OTHER_VILLAGE, officer_id="bo-other"))
    assert elsewhere.status_code == 403 and elsewhere.json()["code"] == "outside_scope"
    front = await export(quick, head, FRONT)
    assert front.status_code == 403 and "back_office" in front.json()["detail"]
    assert (await quick.http.post("/residents/export", json={"nik": head})).status_code == 401

    # a person the registry does not know: the kecamatan that issued the NIK decides the scope
    stranger = nik()
    village_only = await export(quick, stranger)
    assert village_only.status_code == 403 and "35.73.01" in village_only.json()["detail"]
    unknown = await export(quick, stranger, COORDINATOR)
    assert unknown.status_code == 200, unknown.text
    assert unknown.json()["subject"]["village_code"] is None
    records = unknown.json()["sections"]["intake"]["records"]
    assert records["households"] == records["complaints"] == []
    assert [e["outcome"] for e in records["exports"]] == ["outside_scope"]  # the refused attempt, shown to them

    invalid = "3573013213900003"  # day 32: not a NIK
    bad = await export(quick, invalid)
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == ["body", "nik"]
    assert invalid not in bad.text
    extra = await quick.http.post("/residents/export", json={"nik": head, "kk": "x"}, headers=BACK)
    assert extra.status_code == 422

    outcomes = sorted([d["outcome"] async for d in mongo_client[f"{db_prefix}_intake"]["export_log"].find({})])
    assert outcomes == ["exported", "outside_scope", "outside_scope"]  # refused attempts are recorded too


async def test_a_former_household_and_the_transfer_are_exported(quick: Replica) -> None:
    source, _, spouse = await register_family(quick)
    target = household(members=[member(nik(), "kepala_keluarga")])
    assert (await quick.http.post("/households", json=target, headers=BACK)).status_code == 201
    moved = await quick.http.post("/households/transfers", json={
        "from_kk": source["kk_number"], "nik": spouse, "to_kk": target["kk_number"], "relationship": "pasangan"},
        headers=BACK)
    assert moved.status_code == 200, moved.text

    records = (await export(quick, spouse)).json()["sections"]["intake"]["records"]
    by_kk = {h["kk_number"]: h for h in records["households"]}
    assert by_kk[target["kk_number"]]["current"] is True and by_kk[target["kk_number"]]["left_at"] is None
    former = by_kk[source["kk_number"]]
    assert former["current"] is False and former["revision"] == 1 and former["left_at"] is not None
    assert former["you"]["nik"] == spouse
    (transfer,) = records["transfers"]
    assert (transfer["from_kk"], transfer["to_kk"], transfer["state"]) == (
        source["kk_number"], target["kk_number"], "done")


async def test_slow_and_answering_services(quick: Replica, nats_client: NatsClient, topology: Topology) -> None:
    """A service that answers is included as it answered; one that never answers is named (timeout)."""
    _, head, _ = await register_family(quick)
    asked: list[dict[str, Any]] = []

    async def distribution(msg: Msg) -> None:
        request = json.loads(msg.data)
        asked.append(request)
        part = {"service": "distribution", "generated_at": dt.datetime.now(dt.UTC).isoformat(), "found": False,
                "records": {"rounds": []}, "notes": []}
        await msg.respond(json.dumps({"ok": True, "result": part}).encode())

    async def silent(msg: Msg) -> None:
        return None

    async def failing(msg: Msg) -> None:
        error = {"code": "internal_error", "message": "the command failed", "fields": []}
        await msg.respond(json.dumps({"ok": False, "error": error}).encode())

    subs = [await nats_client.subscribe(export_subject(topology, "distribution"), cb=distribution),
            await nats_client.subscribe(export_subject(topology, "referral"), cb=silent),
            await nats_client.subscribe(export_subject(topology, "audit"), cb=failing)]
    await nats_client.flush()
    try:
        doc = (await export(quick, head)).json()
    finally:
        for sub in subs:
            await sub.unsubscribe()
    assert doc["sections"]["distribution"]["records"] == {"rounds": []}
    assert doc["sections"]["referral"]["reason"] == "timeout"
    assert doc["sections"]["audit"]["reason"] == "internal_error"
    assert doc["unavailable"] == ["referral", "notification", "audit"]
    (request,) = asked
    assert request["nik"] == head and request["export_id"] == doc["export_id"]
    assert request["requested_by"] == {"kind": "officer", "id": "bo-1", "role": "back_office"}
    assert request["kk_numbers"] == [doc["sections"]["intake"]["records"]["households"][0]["kk_number"]]


async def test_export_resident_command(app: Replica, nats_client: NatsClient, topology: Topology) -> None:
    _, head, _ = await register_family(app)
    body = {"export_id": str(uuid.uuid4()), "requested_by": SYSTEM}
    found = await command(nats_client, topology, "export_resident", {**body, "nik": head})
    assert found.ok and found.result is not None and found.result["found"] is True
    assert found.result["records"]["households"][0]["you"]["nik"] == head

    unknown = await command(nats_client, topology, "export_resident", {**body, "nik": nik()})
    assert unknown.ok and unknown.result is not None and unknown.result["found"] is False
    assert unknown.result["records"] == {"households": [], "transfers": [], "complaints": [], "exports": [],
                                         "household_reveals": []}

    invalid = "3573013213900003"
    bad = await command(nats_client, topology, "export_resident", {**body, "nik": invalid})
    assert not bad.ok and bad.error is not None and bad.error["code"] == "invalid_request"
    assert [f["loc"] for f in bad.error["fields"]] == [["nik"]] and invalid not in json.dumps(bad.error)
