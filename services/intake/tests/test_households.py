"""The household registry over HTTP, against the real nats-server and the Mongo-compatible server."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid
from typing import Any

import pytest
from intake_testkit import BACK, FRONT, JEMBER_VILLAGE, Replica, events_of, household, member, nik, replica, wait_for
from nats.js import JetStreamContext
from puskesos_intake.domain.households import household_event_id, household_id
from puskesos_intake.settings import IntakeSettings
from puskesos_intake.store import NikKeyChanged
from puskesos_shared.contracts.intake import HouseholdRegistered, HouseholdUpdated
from puskesos_shared.topology import Topology
from pydantic import SecretStr

pytestmark = pytest.mark.integration


async def test_register_update_and_identical_reregistration(app: Replica, jetstream: JetStreamContext,
                                                            topology: Topology) -> None:
    data = household()
    kk = data["kk_number"]
    created = await app.http.post("/households", json=data, headers=BACK)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["outcome"] == "registered" and body["revision"] == 1 and body["warnings"] == []
    assert body["household_id"] == str(household_id(kk))

    same = await app.http.post("/households", json=data, headers=BACK)
    assert same.status_code == 200 and same.json()["outcome"] == "unchanged" and same.json()["revision"] == 1

    changed = {**data, "socio_economic": {**data["socio_economic"], "monthly_income": 750_000}}
    updated = await app.http.put("/households", json=changed, headers=BACK)
    assert updated.status_code == 200, updated.text
    assert updated.json()["outcome"] == "updated" and updated.json()["revision"] == 2
    assert updated.json()["changed_fields"] == ["socio_economic.monthly_income"]

    again = await app.http.post("/households", json=changed, headers=BACK)  # re-registering = no duplicate
    assert again.json()["outcome"] == "unchanged"
    fetched = await app.http.post("/households/search", json={"kk": kk}, headers=FRONT)  # any in-scope officer
    assert fetched.status_code == 200 and fetched.json()["revision"] == 2
    assert fetched.json()["household"]["socio_economic"]["monthly_income"] == 750_000

    await wait_for(lambda: _count(jetstream, topology, "HouseholdUpdated", 1), what="HouseholdUpdated published")
    registered = await events_of(jetstream, topology, "HouseholdRegistered")
    upd = await events_of(jetstream, topology, "HouseholdUpdated")
    assert len(registered) == 1 and len(upd) == 1
    first, second = registered[0], upd[0]
    assert isinstance(first, HouseholdRegistered) and isinstance(second, HouseholdUpdated)
    assert first.event_id == household_event_id(household_id(kk), 1)
    assert second.event_id == household_event_id(household_id(kk), 2)
    assert first.correlation_id == second.correlation_id == f"household:{kk}"
    assert second.data.revision == 2 and second.data.change.value == "update"
    assert second.data.changed_fields == ("socio_economic.monthly_income",)
    assert second.data.household.socio_economic.monthly_income == 750_000


async def _count(js: JetStreamContext, topology: Topology, event_type: str, n: int) -> bool:
    return len(await events_of(js, topology, event_type)) >= n


async def test_nik_disagreeing_with_member_is_accepted_with_warning(app: Replica, jetstream: JetStreamContext,
                                                                    topology: Topology) -> None:
    odd = nik(dt.date(1990, 3, 4), female=True)
    data = household(members=[member(odd, "kepala_keluarga", birth=dt.date(1990, 3, 4), sex="L")])
    response = await app.http.post("/households", json=data, headers=BACK)
    assert response.status_code == 201, response.text
    assert [w["code"] for w in response.json()["warnings"]] == ["nik_sex_mismatch"]
    await wait_for(lambda: _count(jetstream, topology, "HouseholdRegistered", 1), what="event")
    (event,) = await events_of(jetstream, topology, "HouseholdRegistered")
    assert isinstance(event, HouseholdRegistered)
    assert [w.code for w in event.data.warnings] == ["nik_sex_mismatch"]


async def test_a_nik_belongs_to_one_household(app: Replica) -> None:
    shared_nik = nik()
    first = household(members=[member(shared_nik, "kepala_keluarga")])
    assert (await app.http.post("/households", json=first, headers=BACK)).status_code == 201
    second = household(members=[member(nik(), "kepala_keluarga"), member(shared_nik, "anak")])
    conflict = await app.http.post("/households", json=second, headers=BACK)
    assert conflict.status_code == 409, conflict.text
    body = conflict.json()
    assert body["code"] == "nik_in_other_household"
    assert body["errors"][0]["loc"] == ["body", "members", 1, "nik"]
    assert "POST /households/transfers" in body["detail"]
    assert f'"from_kk": "{first["kk_number"]}"' in body["detail"]
    assert shared_nik not in conflict.text  # the error never echoes the NIK
    # nothing half-written: the second household does not exist and its head NIK is free again
    assert (await app.http.post("/households/search", json={"kk": second["kk_number"]},
                                headers=BACK)).status_code == 404
    alone = household(members=[second["members"][0]])
    assert (await app.http.post("/households", json=alone, headers=BACK)).status_code == 201


async def test_concurrent_registrations_of_one_nik_have_one_winner(app: Replica) -> None:
    contested = nik()
    bodies = [household(members=[member(nik(), "kepala_keluarga"), member(contested, "anak")]) for _ in range(4)]
    responses = await asyncio.gather(*(app.http.post("/households", json=b, headers=BACK) for b in bodies))
    codes = sorted(r.status_code for r in responses)
    assert codes == [201, 409, 409, 409], [r.text for r in responses]


async def test_concurrent_updates_of_one_household_lose_nothing(app: Replica) -> None:
    data = household()
    kk = data["kk_number"]
    assert (await app.http.post("/households", json=data, headers=BACK)).status_code == 201
    incomes = [500_000 + i for i in range(6)]
    bodies = [{**data, "socio_economic": {**data["socio_economic"], "monthly_income": v}} for v in incomes]
    responses = await asyncio.gather(*(app.http.put("/households", json=b, headers=BACK) for b in bodies))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    revisions = sorted(r.json()["revision"] for r in responses)
    assert revisions == list(range(2, 8))  # each update got its own revision: none overwrote another
    final = (await app.http.post("/households/search", json={"kk": kk}, headers=BACK)).json()
    assert final["revision"] == 7


async def test_removing_a_member_frees_the_nik(app: Replica) -> None:
    child = nik(dt.date(2012, 3, 20))
    data = household(members=[member(nik(), "kepala_keluarga"), member(child, "anak", birth=dt.date(2012, 3, 20))])
    assert (await app.http.post("/households", json=data, headers=BACK)).status_code == 201
    shrunk = {**data, "members": data["members"][:1]}
    assert (await app.http.put("/households", json=shrunk, headers=BACK)).status_code == 200
    elsewhere = household(members=[member(child, "kepala_keluarga", birth=dt.date(2012, 3, 20))])
    assert (await app.http.post("/households", json=elsewhere, headers=BACK)).status_code == 201


async def test_transfer_moves_a_member_and_updates_both(app: Replica, jetstream: JetStreamContext,
                                                        topology: Topology) -> None:
    child = nik(dt.date(2012, 3, 20))
    source = household(members=[member(nik(), "kepala_keluarga"), member(child, "anak", birth=dt.date(2012, 3, 20))])
    target = household(members=[member(nik(), "kepala_keluarga")])
    for h in (source, target):
        assert (await app.http.post("/households", json=h, headers=BACK)).status_code == 201
    url = "/households/transfers"
    body = {"from_kk": source["kk_number"], "nik": child, "to_kk": target["kk_number"], "relationship": "cucu"}
    headers = {**BACK, "Idempotency-Key": "move-1"}
    moved = await app.http.post(url, json=body, headers=headers)
    assert moved.status_code == 200, moved.text
    result = moved.json()
    assert result["state"] == "done"
    assert [m["nik"] for m in result["from_household"]["household"]["members"]] == [source["members"][0]["nik"]]
    assert result["to_household"]["household"]["members"][-1] == {**source["members"][1], "relationship": "cucu",
                                                                  "disability": "none", "occupation": ""}
    replay = await app.http.post(url, json=body, headers=headers)
    assert replay.status_code == 200 and replay.json()["transfer_id"] == result["transfer_id"]

    await wait_for(lambda: _count(jetstream, topology, "HouseholdUpdated", 2), what="transfer events")
    updates = [e for e in await events_of(jetstream, topology, "HouseholdUpdated") if isinstance(e, HouseholdUpdated)]
    kinds = sorted((e.data.change.value, e.data.household.kk_number, e.data.counterpart_kk) for e in updates)
    assert kinds == sorted([("transfer_out", source["kk_number"], target["kk_number"]),
                            ("transfer_in", target["kk_number"], source["kk_number"])])
    assert all(e.data.transferred_nik == child and e.causation_id == f"transfer:{result['transfer_id']}"
               for e in updates)
    # the NIK now belongs to the receiving household
    third = household(members=[member(nik(), "kepala_keluarga"), member(child, "anak", birth=dt.date(2012, 3, 20))])
    conflict = await app.http.post("/households", json=third, headers=BACK)
    assert conflict.status_code == 409 and target["kk_number"] in conflict.json()["detail"]


async def test_transfer_refusals(app: Replica) -> None:
    head = nik()
    source = household(members=[member(head, "kepala_keluarga"), member(nik(), "anak")])
    target = household(members=[member(nik(), "kepala_keluarga")])
    for h in (source, target):
        assert (await app.http.post("/households", json=h, headers=BACK)).status_code == 201
    url = "/households/transfers"
    child = source["members"][1]["nik"]
    to = {"from_kk": source["kk_number"], "nik": child, "to_kk": target["kk_number"], "relationship": "famili_lain"}
    head_move = await app.http.post(url, json={**to, "nik": head}, headers=BACK)
    assert head_move.status_code == 409 and head_move.json()["code"] == "transfer_refused"
    assert "PUT /households" in head_move.json()["detail"] and "{kk}" not in head_move.json()["detail"]
    second_head = await app.http.post(url, json={**to, "relationship": "kepala_keluarga"}, headers=BACK)
    assert second_head.status_code == 409
    stranger = await app.http.post(url, json={**to, "nik": nik()}, headers=BACK)
    assert stranger.status_code == 404 and stranger.json()["code"] == "member_not_found"
    nowhere = await app.http.post(url, json={**to, "to_kk": household()["kk_number"]}, headers=BACK)
    assert nowhere.status_code == 404
    unknown_source = await app.http.post(url, json={**to, "from_kk": household()["kk_number"]}, headers=BACK)
    assert unknown_source.status_code == 404 and unknown_source.json()["code"] == "household_not_found"
    same = await app.http.post(url, json={**to, "to_kk": source["kk_number"]}, headers=BACK)
    assert same.status_code == 422 and same.json()["code"] == "same_household"
    missing = await app.http.post(url, json={k: v for k, v in to.items() if k != "nik"}, headers=BACK)
    assert missing.status_code == 422 and missing.json()["errors"][0]["loc"] == ["body", "nik"]
    by_front = await app.http.post(url, json=to, headers=FRONT)
    assert by_front.status_code == 403


async def test_bad_household_input_gets_field_level_4xx(app: Replica) -> None:
    post = app.http.post
    bad_nik = household(members=[member("3573013213900003", "kepala_keluarga")])
    r = await post("/households", json=bad_nik, headers=BACK)
    assert r.status_code == 422
    err = next(e for e in r.json()["errors"] if e["loc"][:4] == ["body", "members", 0, "nik"])
    assert "invalid NIK (birth_date" in err["msg"]
    assert "3573013213900003" not in r.text
    r = await post("/households", json={**household(), "kk_number": "3573010002200001"}, headers=BACK)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"][:2] == ["body", "kk_number"]
    r = await post("/households", json=household(village="35.73.01.9999"), headers=BACK)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "address", "village_code"]
    r = await post("/households", content=b'{"kk_number": ', headers={**BACK, "content-type": "application/json"})
    assert r.status_code == 422
    wrong_types = {**household(), "socio_economic": {**household()["socio_economic"], "monthly_income": "banyak"}}
    r = await post("/households", json=wrong_types, headers=BACK)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"][-1] == "monthly_income"
    r = await post("/households", content=b"{" + b" " * 300_000 + b"}",
                   headers={**BACK, "content-type": "application/json"})
    assert r.status_code == 413
    unknown = household()
    r = await app.http.put("/households", json=unknown, headers=BACK)
    assert r.status_code == 404 and r.json()["code"] == "household_not_found"
    assert unknown["kk_number"] not in r.text


async def test_household_roles_and_scope(app: Replica) -> None:
    data = household()
    assert (await app.http.post("/households", json=data)).status_code == 401
    assert (await app.http.post("/households", json=data, headers=FRONT)).status_code == 403
    outside = household(village=JEMBER_VILLAGE)
    r = await app.http.post("/households", json=outside, headers=BACK)
    assert r.status_code == 403 and r.json()["code"] == "outside_scope"
    assert (await app.http.post("/households/search", json={"kk": data["kk_number"]},
                                headers=BACK)).status_code == 404
    assert (await app.http.put("/households", json=data, headers=FRONT)).status_code == 403
    assert uuid.UUID((await app.http.post("/households", json=data, headers=BACK)).json()["household_id"])


async def test_openapi_is_published(app: Replica) -> None:
    spec = (await app.http.get("/openapi.json")).json()
    for path in ("/households", "/households/search", "/households/transfers", "/complaints",
                 "/complaints/{case_number}", "/residents/complaints", "/residents/export"):
        assert path in spec["paths"], path
    assert "put" in spec["paths"]["/households"]


SIXTEEN_DIGITS = re.compile(r"\[0-9\]\{16\}|\\d\{16\}")
NUMBER_NAMES = re.compile(r"^(kk|nik|kk_number|[a-z_]*_(kk|nik))$", re.IGNORECASE)


def numbers_in_paths(spec: dict[str, Any]) -> list[str]:
    """Paths of an OpenAPI document that take a KK or a NIK: a parameter so named, or one of 16 digits."""
    offending = []
    for path, item in spec["paths"].items():
        named = re.findall(r"\{([^}:]+)(?::[^}]*)?\}", path)
        offending += [f"{path} ({name})" for name in named if NUMBER_NAMES.match(name)]
        for operation in item.values():
            for param in operation.get("parameters", []) if isinstance(operation, dict) else ():
                pattern = str(param.get("schema", {}).get("pattern", ""))
                if param.get("in") == "path" and (NUMBER_NAMES.match(str(param["name"]))
                                                  or SIXTEEN_DIGITS.search(pattern)):
                    offending.append(f"{path} ({param['name']})")
    return offending


async def test_no_path_carries_a_kk_or_a_nik(app: Replica) -> None:
    """URLs are logged: no route of intake may take a KK or a NIK in its path."""
    spec = (await app.http.get("/openapi.json")).json()
    assert len(spec["paths"]) >= 8, "the OpenAPI document lists too few paths to be right"
    assert numbers_in_paths(spec) == []
    # the walk finds what it looks for: the routes this check replaced
    old = {"paths": {"/households/{kk}": {"get": {"parameters": [
                         {"name": "kk", "in": "path", "schema": {"type": "string", "pattern": "^[0-9]{16}$"}}]}},
                     "/people/{id}": {"get": {"parameters": [
                         {"name": "id", "in": "path", "schema": {"type": "string", "pattern": "^\\d{16}$"}}]}},
                     "/households/{from_kk}/members/{nik}/transfer": {"post": {}}}}
    assert len(numbers_in_paths(old)) == 5  # {kk} by name and by pattern, \d{16}, {from_kk}, {nik}


async def test_the_old_paths_with_numbers_are_gone(app: Replica) -> None:
    data = household()
    assert (await app.http.post("/households", json=data, headers=BACK)).status_code == 201
    kk, member_nik = data["kk_number"], data["members"][1]["nik"]
    old = [app.http.get(f"/households/{kk}", headers=BACK),
           app.http.put(f"/households/{kk}", json=data, headers=BACK),
           app.http.post(f"/households/{kk}/members/{member_nik}/transfer",
                         json={"to_kk": household()["kk_number"], "relationship": "anak"}, headers=BACK)]
    for response in await asyncio.gather(*old):
        assert response.status_code in (404, 405), (response.request.method, response.status_code)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert kk not in response.text and member_nik not in response.text


async def test_a_changed_nik_hash_key_refuses_to_start(app: Replica, settings: IntakeSettings) -> None:
    other = settings.model_copy(update={"intake_nik_hash_key": SecretStr("another-key-0123456789abcdef")})
    with pytest.raises(NikKeyChanged):
        async with replica(other):
            pass
