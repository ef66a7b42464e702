"""``POST /households/search``: a household by a member's NIK or by KK, both in the body, never in the URL;
masked by default, unmasked only by a reveal (with a purpose) that is recorded in the access log."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from intake_testkit import (
    ASSESSOR,
    BACK,
    FRONT,
    OTHER_VILLAGE,
    VILLAGE,
    Replica,
    bearer,
    household,
    kk,
    member,
    nik,
)
from puskesos_intake.niks import nik_key
from puskesos_intake.settings import IntakeSettings
from puskesos_shared.contracts.primitives import OfficerRole

pytestmark = pytest.mark.integration
BACK_OF_OTHER_VILLAGE = bearer(OfficerRole.BACK_OFFICE, OTHER_VILLAGE, officer_id="bo-2")
COORDINATOR = bearer(OfficerRole.COORDINATOR, "35.73.01", officer_id="tksk-blimbing")
OPERATOR = bearer(OfficerRole.OPERATOR, VILLAGE, officer_id="op-1")
SIXTEEN_DIGITS = re.compile(r"(?<![0-9])[0-9]{16}(?![0-9])")
PURPOSE = "verifikasi data untuk rujukan RSUD"


def reveal(**body: Any) -> dict[str, Any]:
    return {**body, "reveal": True, "purpose": PURPOSE}


async def access_log(app: Replica, settings: IntakeSettings) -> list[dict[str, Any]]:
    log = app.runtime.db.client[settings.database_name]["export_log"]
    return [doc async for doc in log.find({"kind": "household_reveal"}).sort([("at", 1), ("_id", 1)])]


async def test_search_by_nik_and_by_kk(app: Replica) -> None:
    body = household()
    assert (await app.http.post("/households", json=body, headers=BACK)).status_code == 201
    spouse = body["members"][1]["nik"]
    by_nik = await app.http.post("/households/search", json={"nik": spouse}, headers=ASSESSOR)
    by_kk = await app.http.post("/households/search", json={"kk": body["kk_number"]}, headers=ASSESSOR)
    assert by_nik.status_code == by_kk.status_code == 200
    assert by_nik.json() == by_kk.json()
    assert by_nik.json()["masked"] is True and by_nik.json()["revision"] == 1
    assert by_nik.json()["kk_number"] == body["kk_number"][:4] + "*" * 8 + body["kk_number"][-4:]


async def test_a_masked_search_shows_no_number_name_phone_address_or_birth_date(app: Replica) -> None:
    odd = nik(dt.date(1990, 3, 4), female=True)  # the NIK's sex disagrees: a warning that quotes the birth date
    body = household(members=[member(nik(), "kepala_keluarga", name="Slamet Riyadi", birth=dt.date(1980, 1, 1)),
                              member(odd, "pasangan", name="Siti Aminah", birth=dt.date(1990, 3, 4), sex="L")])
    body["members"][0]["occupation"] = "petani, hp 081298765432"
    assert (await app.http.post("/households", json=body, headers=BACK)).status_code == 201
    r = await app.http.post("/households/search", json={"nik": odd}, headers=FRONT)
    assert r.status_code == 200, r.text
    text, found = r.text, r.json()
    assert not SIXTEEN_DIGITS.search(text), "a NIK or KK in a masked answer"
    for clear in ("Slamet", "Riyadi", "Siti", "Aminah", "Raya Balearjosari", "81234567890", "1980-01-01",
                  "1990-03-04", "04-03-90", "081298765432"):
        assert clear not in text, clear
    head, spouse = found["household"]["members"]
    assert head["name"] == "S*** R***" and head["nik"].count("*") == 8 and head["birth_date"] == "***"
    assert head["occupation"].startswith("petani") and head["relationship"] == "kepala_keluarga"
    assert spouse["sex"] == "L" and spouse["relationship"] == "pasangan"
    assert found["household"]["phone"] == "0812****7890"
    address = found["household"]["address"]
    assert address == {"village_code": VILLAGE, "village_name": address["village_name"], "street": "Jl. ***",
                       "rt": "***", "rw": "***"}
    assert found["household"]["socio_economic"] == body["socio_economic"]  # not personal: the assessment needs it
    assert found["warnings"] == [{"code": "nik_sex_mismatch", "field": "members.1.sex"}]


async def test_a_reveal_answers_the_record_and_is_in_the_access_log(app: Replica, settings: IntakeSettings) -> None:
    body = household()
    assert (await app.http.post("/households", json=body, headers=BACK)).status_code == 201
    head = body["members"][0]["nik"]
    before = await access_log(app, settings)
    r = await app.http.post("/households/search", json=reveal(nik=head), headers=FRONT)
    assert r.status_code == 200, r.text
    found = r.json()
    assert found["masked"] is False and found["kk_number"] == body["kk_number"]
    assert found["household"]["members"][0]["name"] == "Slamet Riyadi"
    assert [m["nik"] for m in found["household"]["members"]] == [m["nik"] for m in body["members"]]

    (entry,) = [e for e in await access_log(app, settings) if e not in before]
    assert entry["access_id"] == found["access_id"] and entry["outcome"] == "revealed"
    assert entry["requested_by"] == {"kind": "officer", "id": "fo-1", "role": "front_office"}
    assert entry["purpose"] == PURPOSE and entry["channel"] == "http" and entry["at"] is not None
    secret = settings.nik_hash_key()
    assert entry["kk_hash"] == nik_key(secret, f"kk:{body['kk_number']}") and entry["nik_hash"] == nik_key(secret, head)
    stored = str(entry)
    assert body["kk_number"] not in stored and head not in stored  # only keyed hashes

    by_kk = await app.http.post("/households/search", json=reveal(kk=body["kk_number"]), headers=COORDINATOR)
    assert by_kk.status_code == 200 and by_kk.json()["household"] == found["household"]
    assert sorted((e["requested_by"]["id"], e["searched_by"], e["nik_hash"] or "") for e in await access_log(
        app, settings) if e not in before) == [("fo-1", "nik", entry["nik_hash"]), ("tksk-blimbing", "kk", "")]

    # the resident's data export shows who saw their household
    export = await app.http.post("/residents/export", json={"nik": head}, headers=BACK)
    reveals = export.json()["sections"]["intake"]["records"]["household_reveals"]
    assert sorted((x["requested_by"]["id"], x["purpose"], x["outcome"]) for x in reveals) == [
        ("fo-1", PURPOSE, "revealed"), ("tksk-blimbing", PURPOSE, "revealed")]
    assert export.json()["sections"]["intake"]["records"]["exports"] == []


async def test_refused_reveals_are_logged_too(app: Replica, settings: IntakeSettings) -> None:
    body = household(village=OTHER_VILLAGE)
    assert (await app.http.post("/households", json=body, headers=BACK_OF_OTHER_VILLAGE)).status_code == 201
    kk_number = body["kk_number"]
    outside = await app.http.post("/households/search", json=reveal(kk=kk_number), headers=BACK)
    assert outside.status_code == 403 and outside.json()["code"] == "outside_scope"
    role = await app.http.post("/households/search", json=reveal(kk=kk_number),
                               headers=bearer(OfficerRole.ASSESSOR, OTHER_VILLAGE, officer_id="as-2"))
    assert role.status_code == 403 and role.json()["code"] == "forbidden"
    for refused in (outside, role):
        assert not SIXTEEN_DIGITS.search(refused.text) and "Slamet" not in refused.text
    entries = await access_log(app, settings)
    who = sorted((e["requested_by"]["id"], e["requested_by"]["role"], e["outcome"], e["purpose"]) for e in entries)
    assert who == [("as-2", "assessor", "refused_role", PURPOSE), ("bo-1", "back_office", "outside_scope", PURPOSE)]
    assert all(e["kk_hash"] == nik_key(settings.nik_hash_key(), f"kk:{kk_number}") for e in entries)
    # the assessor may still search masked, which is not a reveal
    masked = await app.http.post("/households/search", json={"kk": kk_number},
                                 headers=bearer(OfficerRole.ASSESSOR, OTHER_VILLAGE, officer_id="as-2"))
    assert masked.status_code == 200 and masked.json()["masked"] is True
    assert len(await access_log(app, settings)) == 2


async def test_a_reveal_needs_a_purpose(app: Replica, settings: IntakeSettings) -> None:
    body = household()
    assert (await app.http.post("/households", json=body, headers=BACK)).status_code == 201
    kk_number = body["kk_number"]
    for wrong in ({"kk": kk_number, "reveal": True}, {"kk": kk_number, "reveal": True, "purpose": "cek"},
                  {"kk": kk_number, "reveal": True, "purpose": "   cek    "},
                  {"kk": kk_number, "reveal": True, "purpose": None}, {"kk": kk_number, "reveal": "ya"}):
        r = await app.http.post("/households/search", json=wrong, headers=BACK)
        assert r.status_code == 422, wrong
        assert kk_number not in r.text
    r = await app.http.post("/households/search", json={"kk": kk_number, "reveal": True}, headers=BACK)
    assert r.json()["errors"][0]["loc"] == ["body", "purpose"]
    assert await access_log(app, settings) == []
    # a purpose without a reveal changes nothing: masked, not logged
    r = await app.http.post("/households/search", json={"kk": kk_number, "purpose": PURPOSE}, headers=BACK)
    assert r.status_code == 200 and r.json()["masked"] is True and await access_log(app, settings) == []


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
    assert (await app.http.post("/households/search", json=reveal(kk=kk()), headers=BACK)).status_code == 404


async def test_search_input_and_scope(app: Replica) -> None:
    body = household(village=OTHER_VILLAGE)
    assert (await app.http.post("/households", json=body, headers=BACK_OF_OTHER_VILLAGE)).status_code == 201
    head = body["members"][0]["nik"]
    assert (await app.http.post("/households/search", json={"nik": head}, headers=BACK)).status_code == 403
    assert (await app.http.post("/households/search", json={"nik": head}, headers=OPERATOR)).status_code == 403
    for wrong in ({}, {"nik": head, "kk": body["kk_number"]}, {"nik": "3573013201800001"}, {"kk": "12"},
                  {"nik": head, "name": "x"}):
        r = await app.http.post("/households/search", json=wrong, headers=BACK)
        assert r.status_code == 422, wrong
        assert head not in r.text and "3573013201800001" not in r.text
    assert (await app.http.post("/households/search", json={"nik": head})).status_code == 401
