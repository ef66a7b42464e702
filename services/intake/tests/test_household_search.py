"""``POST /households/search``: a household by a member's NIK or by KK, both in the body, never in the URL."""

from __future__ import annotations

from intake_testkit import ASSESSOR, BACK, OTHER_VILLAGE, Replica, bearer, household, kk, member, nik
from puskesos_shared.contracts.primitives import OfficerRole

BACK_OF_OTHER_VILLAGE = bearer(OfficerRole.BACK_OFFICE, OTHER_VILLAGE, officer_id="bo-2")


async def test_search_by_nik_and_by_kk(app: Replica) -> None:
    body = household()
    assert (await app.http.post("/households", json=body, headers=BACK)).status_code == 201
    spouse = body["members"][1]["nik"]
    by_nik = await app.http.post("/households/search", json={"nik": spouse}, headers=ASSESSOR)
    by_kk = await app.http.post("/households/search", json={"kk": body["kk_number"]}, headers=ASSESSOR)
    assert by_nik.status_code == by_kk.status_code == 200
    assert by_nik.json() == by_kk.json()
    assert by_nik.json()["kk_number"] == body["kk_number"] and by_nik.json()["revision"] == 1


async def test_search_follows_the_member_and_answers_404_for_unknown_ones(app: Replica) -> None:
    body = household()
    await app.http.post("/households", json=body, headers=BACK)
    child = nik()
    assert (await app.http.post("/households/search", json={"nik": child}, headers=BACK)).status_code == 404
    body["members"].append(member(child))
    assert (await app.http.post("/households", json=body, headers=BACK)).status_code == 200
    found = await app.http.post("/households/search", json={"nik": child}, headers=BACK)
    assert found.status_code == 200 and found.json()["revision"] == 2
    body["members"].pop()
    await app.http.post("/households", json=body, headers=BACK)
    assert (await app.http.post("/households/search", json={"nik": child}, headers=BACK)).status_code == 404
    assert (await app.http.post("/households/search", json={"kk": kk()}, headers=BACK)).status_code == 404


async def test_search_input_and_scope(app: Replica) -> None:
    body = household(village=OTHER_VILLAGE)
    assert (await app.http.post("/households", json=body, headers=BACK_OF_OTHER_VILLAGE)).status_code == 201
    head = body["members"][0]["nik"]
    assert (await app.http.post("/households/search", json={"nik": head}, headers=BACK)).status_code == 403
    for wrong in ({}, {"nik": head, "kk": body["kk_number"]}, {"nik": "3573013201800001"}, {"kk": "12"},
                  {"nik": head, "name": "x"}):
        r = await app.http.post("/households/search", json=wrong, headers=BACK)
        assert r.status_code == 422, wrong
        assert head not in r.text and "3573013201800001" not in r.text
    assert (await app.http.post("/households/search", json={"nik": head})).status_code == 401
