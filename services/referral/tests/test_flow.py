"""The whole flow on real NATS and Mongo: complaint -> case -> assessment -> referral -> answer -> closure.

The complaint and the household are real intake events published into the stream; the service
runs in-process with its real lifespan; officers use HTTP, the hospital answers over NATS.
"""

from __future__ import annotations

import json
import uuid

import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from puskesos_referral.catalog import packaged_rule_sets
from puskesos_shared.contracts import CaseAssessed
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.ids import derived_event_id, stable_id
from puskesos_shared.topology import Topology
from referral_testkit import (
    JEMBER_VILLAGE,
    KK,
    FakeClock,
    bearer,
    command,
    complaint_filed,
    household_registered,
    publish,
    replica,
    settings_for,
    stream_events,
    token,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
ASSESSOR = OfficerRole.ASSESSOR
KECAMATAN = JEMBER_VILLAGE.rsplit(".", 1)[0]


async def test_complaint_to_closure(nats_url: str, mongo_url: str, namespace: str, db_prefix: str,
                                    topology: Topology, jetstream: JetStreamContext, nats_client: NatsClient) -> None:
    clock = FakeClock()
    async with replica(settings_for(nats_url, mongo_url, namespace, db_prefix), clock) as r:
        store = r.runtime.state["store"]
        await publish(jetstream, topology, household_registered())
        complaint = complaint_filed()
        await publish(jetstream, topology, complaint)
        case_id = stable_id("case", complaint.data.complaint_id)

        async def opened() -> bool:
            return any(s.event.event_type == "CaseOpened" for s in await stream_events(jetstream, topology))

        await wait_for(opened, what="CaseOpened")
        await wait_for(lambda: _has_household(store), what="household projected")

        # the assessor assesses, with the household the service projected from intake's event
        body = {"command_id": str(uuid.uuid4()), "observations": {"chronic_illness": True, "needs_hospital_care": True}}
        response = await r.http.post(f"/cases/{case_id}/assessments", json=body, headers=bearer(ASSESSOR))
        assert response.status_code == 201, response.text
        assessed = response.json()
        assert assessed["rule_set_version"] == "assessment@1"
        assert assessed["result"]["pmks_category"] == "rentan_kesehatan"
        assert assessed["case"]["status"] == "assessed" and assessed["case"]["kk_number"] == KK

        # referral to the hospital, with a number unique in the village's year
        refer = {"command_id": str(uuid.uuid4()), "target_code": "RSD-SOEBANDI",
                 "instructions": "Bawa KK, KTP dan surat rujukan ke IGD."}
        response = await r.http.post(f"/cases/{case_id}/referrals", json=refer, headers=bearer(ASSESSOR))
        assert response.status_code == 201, response.text
        referral = response.json()["referral"]
        assert referral["referral_number"] == "RJK/3509012001/2026/00001"
        assert referral["target"]["name"] == "RSD dr. Soebandi Jember"
        assert referral["due_on"] == "2026-11-24"

        # the hospital answers on the command subject, by number, then by id
        reply = await command(nats_client, topology, "respond_referral",
                              {"referral_number": referral["referral_number"], "outcome": "accepted",
                               "note": "Pasien diterima di IGD.", "responded_by": "RSD-SOEBANDI"})
        assert reply.ok and reply.result is not None, reply.error
        assert reply.result["case_status"] == "referral_accepted"
        reply = await command(nats_client, topology, "respond_referral",
                              {"referral_id": referral["referral_id"], "outcome": "completed",
                               "note": "Pasien pulang setelah rawat inap.", "responded_by": "RSD-SOEBANDI"})
        assert reply.ok and reply.result is not None and reply.result["case_status"] == "referral_completed"

        # the coordinator sees the case in the kecamatan list with its SLA state
        listing = await r.http.get("/cases", params={"kecamatan_code": KECAMATAN},
                                   headers=bearer(OfficerRole.COORDINATOR, KECAMATAN))
        assert listing.status_code == 200, listing.text
        row = listing.json()["items"][0]
        assert row["case_id"] == str(case_id) and row["sla_state"] == "at_risk"  # due tomorrow
        assert row["subject_nik"] == "3509********0001"  # masked in lists

        close = {"command_id": str(uuid.uuid4()), "resolution": "referred_and_completed",
                 "reason": "Pasien telah dirawat di RSD dr. Soebandi."}
        response = await r.http.post(f"/cases/{case_id}/close", json=close, headers=bearer(ASSESSOR))
        assert response.status_code == 201, response.text
        assert response.json()["case"]["closure"]["within_sla"] is True

        summary = await r.http.get("/cases/summary", params={"kecamatan_code": KECAMATAN, "month": "2026-11"},
                                   headers=bearer(OfficerRole.COORDINATOR, KECAMATAN))
        assert summary.status_code == 200, summary.text
        totals = summary.json()["totals"]
        assert (totals["filed"], totals["closed"], totals["closed_within_sla"], totals["open"]) == (1, 1, 1, 0)
        assert (totals["referrals_issued"], totals["referrals_completed"]) == (1, 1)
        earlier = await r.http.get("/cases/summary", params={"kecamatan_code": KECAMATAN, "month": "2026-10"},
                                   headers=bearer(OfficerRole.COORDINATOR, KECAMATAN))
        assert earlier.json()["totals"]["referrals_completed"] == 0

        # the referral form's choices: the targets serving the village's regency (and none of Malang's)
        listed = await r.http.get("/referral-targets", params={"village_code": JEMBER_VILLAGE},
                                  headers=bearer(ASSESSOR))
        assert listed.status_code == 200, listed.text
        codes = {t["code"] for t in listed.json()["targets"]}
        assert {"RSD-SOEBANDI", "DINSOS-JEMBER"} <= codes and "RSUD-KOTA-MALANG" not in codes
        elsewhere = await r.http.get("/referral-targets", params={"village_code": "35.73.01.1001"},
                                     headers=bearer(ASSESSOR))
        assert elsewhere.status_code == 403, elsewhere.text

        verification = await r.http.get(f"/cases/{case_id}/assessments/verification", headers=bearer(ASSESSOR))
        assert verification.json()["all_match"] is True

    # what went out, in order, each exactly once, correlated to the case and caused by its input
    events = await stream_events(jetstream, topology)
    assert [s.event.event_type for s in events] == [
        "CaseOpened", "CaseAssessed", "ReferralIssued", "ReferralResolved", "ReferralResolved", "CaseClosed"]
    assert {s.event.correlation_id for s in events} == {f"case:{case_id}"}
    assert all(s.headers["Nats-Msg-Id"] == str(s.event.event_id) for s in events)
    assert events[0].event.event_id == derived_event_id(complaint.event_id, "case_opened")
    assert events[0].event.causation_id == str(complaint.event_id)
    assert events[1].event.causation_id == body["command_id"]
    assert events[2].event.causation_id == refer["command_id"]
    assert events[5].event.causation_id == close["command_id"]
    assessed_event = events[1].event
    assert isinstance(assessed_event, CaseAssessed)
    assert assessed_event.data.inputs["household"]["kk_revision"] == 1
    assert "3509010505800001" not in json.dumps(assessed_event.data.inputs)  # no NIKs in the inputs


async def _has_household(store: object) -> bool:
    return await store.household(KK) is not None  # type: ignore[attr-defined,no-any-return]


async def test_newer_rule_set_is_used_from_then_on_and_earlier_decisions_keep_theirs(
        nats_url: str, mongo_url: str, namespace: str, db_prefix: str, topology: Topology,
        jetstream: JetStreamContext, nats_client: NatsClient) -> None:
    async with replica(settings_for(nats_url, mongo_url, namespace, db_prefix), FakeClock()) as r:
        await publish(jetstream, topology, household_registered())
        complaints = [complaint_filed(sequence=n) for n in (1, 2)]
        for complaint in complaints:
            await publish(jetstream, topology, complaint)
        case_ids = [stable_id("case", c.data.complaint_id) for c in complaints]
        store = r.runtime.state["store"]

        async def both_open() -> bool:
            return all([await store.latest(c) is not None for c in case_ids]) and await _has_household(store)

        await wait_for(both_open, what="two cases and the household")
        observations = {"observations": {}}
        first = await command(nats_client, topology, "assess_case",
                              {"token": token(ASSESSOR), "case_id": str(case_ids[0]), **observations})
        assert first.ok and first.result is not None and first.result["rule_set_version"] == "assessment@1"

        doc = packaged_rule_sets()[0].document()
        doc = json.loads(json.dumps(doc).replace("600000", "350000"))  # per capita here: 400.000
        doc["version"] = 2
        published = await command(nats_client, topology, "publish_rule_set",
                                  {"token": token(OfficerRole.OPERATOR, "35.09"), "rule_set": doc})
        assert published.ok and published.result is not None, published.error
        assert published.result["tag"] == "assessment@2"
        again = await command(nats_client, topology, "publish_rule_set",
                              {"token": token(OfficerRole.OPERATOR, "35.09"), "rule_set": doc})
        assert again.ok and again.result is not None and again.result["duplicate"] is True
        listed = await r.http.get("/rule-sets", headers=bearer(ASSESSOR))
        assert [row["tag"] for row in listed.json()["rule_sets"]] == ["assessment@2", "assessment@1"]

        second = await command(nats_client, topology, "assess_case",
                               {"token": token(ASSESSOR), "case_id": str(case_ids[1]), **observations})
        assert second.ok and second.result is not None and second.result["rule_set_version"] == "assessment@2"
        assert first.result["result"]["pmks_category"] == "fakir_miskin"
        assert second.result["result"]["pmks_category"] == "bukan_pmks"

        # the first decision is re-derived with its own version, after v2 was published
        service = r.runtime.state["service"]
        recorded = [s.event for s in await stream_events(jetstream, topology) if isinstance(s.event, CaseAssessed)]
        assert [e.data.rule_set_version for e in recorded] == ["assessment@1", "assessment@2"]
        for event in recorded:
            assert await service.rules.reassess_recorded(event) == event.data.result
        fetched = await command(nats_client, topology, "get_rule_set", {"tag": "assessment@1"})
        assert fetched.ok and fetched.result is not None
        assert fetched.result["document"] == packaged_rule_sets()[0].document()
