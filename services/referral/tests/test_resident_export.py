"""The referral service's part of a resident's data export (``export_resident`` over real NATS and the Mongo engine)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.topology import Topology
from referral_testkit import (
    HEAD_NIK,
    KK,
    SPOUSE_NIK,
    FakeClock,
    command,
    complaint_filed,
    household_registered,
    publish,
    replica,
    settings_for,
    token,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
REQUESTED_BY = {"kind": "officer", "id": "bo-padomasan", "role": "back_office"}
UNKNOWN_NIK = "3509016607900005"


def ask(nik: str, *kks: str) -> dict[str, Any]:
    return {"export_id": str(uuid.uuid4()), "requested_by": REQUESTED_BY, "nik": nik, "kk_numbers": list(kks)}


async def test_a_resident_gets_their_cases_and_the_household_copy(
        nats_url: str, mongo_url: str, namespace: str, db_prefix: str, topology: Topology,
        jetstream: JetStreamContext, nats_client: NatsClient) -> None:
    async with replica(settings_for(nats_url, mongo_url, namespace, db_prefix), FakeClock()):
        await publish(jetstream, topology, household_registered())
        filed = complaint_filed(nik=HEAD_NIK, kk=KK)
        await publish(jetstream, topology, filed)

        async def case_and_household_stored() -> bool:
            reply = await command(nats_client, topology, "export_resident", ask(HEAD_NIK))
            records = (reply.result or {}).get("records", {})
            return bool(records.get("cases")) and bool(records.get("households"))

        await wait_for(case_and_household_stored, what="the case and the household copy")
        # an assessment, so that the export carries its inputs and rule-set version
        reply = await command(nats_client, topology, "export_resident", ask(HEAD_NIK))
        case_id = reply.result["records"]["cases"][0]["case_id"]  # type: ignore[index]
        assessed = await command(nats_client, topology, "assess_case", {
            "token": token(OfficerRole.ASSESSOR), "case_id": case_id,
            "observations": {"chronic_illness": True, "needs_hospital_care": True}})
        assert assessed.ok, assessed.error

        head = await command(nats_client, topology, "export_resident", ask(HEAD_NIK))
        assert head.ok and head.result is not None
        part = head.result
        assert part["service"] == "referral" and part["found"] is True
        (case,) = part["records"]["cases"]
        assert case["relation"] == "subject" and case["subject_nik"] == HEAD_NIK and case["kk_number"] == KK
        assert case["case_number"] == filed.data.case_number
        (assessment,) = case["assessments"]
        assert assessment["rule_set_version"] and assessment["inputs"] and assessment["result"]
        assert "commands" not in case
        (household,) = part["records"]["households"]
        assert household["kk_number"] == KK and household["household"]["members"][0]["nik"] == HEAD_NIK

        # the spouse: the family's case (found by the KK), with the complainant's NIK masked
        spouse = await command(nats_client, topology, "export_resident", ask(SPOUSE_NIK))
        assert spouse.ok and spouse.result is not None
        (family_case,) = spouse.result["records"]["cases"]
        assert family_case["relation"] == "household"
        assert family_case["subject_nik"] == f"{HEAD_NIK[:4]}********{HEAD_NIK[-4:]}"
        assert HEAD_NIK not in json.dumps(family_case)
        assert [h["kk_number"] for h in spouse.result["records"]["households"]] == [KK]

        unknown = await command(nats_client, topology, "export_resident", ask(UNKNOWN_NIK))
        assert unknown.ok and unknown.result is not None
        assert unknown.result["found"] is False and unknown.result["records"] == {"cases": [], "households": []}

        # a KK named by intake (a family the person left) still finds that family's cases
        former = await command(nats_client, topology, "export_resident", ask(UNKNOWN_NIK, KK))
        assert former.ok and former.result is not None and len(former.result["records"]["cases"]) == 1

        invalid = "3509013213900003"
        bad = await command(nats_client, topology, "export_resident", ask(invalid))
        assert not bad.ok and bad.error is not None and bad.error["code"] == "invalid_request"
        assert [f["loc"] for f in bad.error["fields"]] == [["nik"]] and invalid not in json.dumps(bad.error)
