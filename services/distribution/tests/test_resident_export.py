"""The distribution service's part of a resident's data export (``export_resident``, real NATS and the Mongo server)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from puskesos_distribution.app import create_app
from puskesos_distribution.domain import allocation_id_for, round_id_for
from puskesos_distribution.gateway import InMemoryGateway
from puskesos_distribution.sample_data import recipient_rows
from puskesos_shared.commands import CommandReply, send_command
from puskesos_shared.contracts import HouseholdRegistered
from puskesos_shared.contracts.examples import example
from puskesos_shared.contracts.intake import Relationship
from puskesos_shared.contracts.registry import subject_for
from puskesos_shared.messaging import encode_event, event_headers
from puskesos_shared.resident_export import export_subject
from puskesos_shared.testing.app import running_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
HOME = "35.73.01.1001"
REQUESTED_BY = {"kind": "officer", "id": "bo-balearjosari", "role": "back_office"}


def registered(kk: str, head_nik: str) -> HouseholdRegistered:
    base = example("HouseholdRegistered")
    assert isinstance(base, HouseholdRegistered)
    hh = base.data.household
    members = tuple(m.model_copy(update={"nik": head_nik}) if m.relationship is Relationship.HEAD else m
                    for m in hh.members)
    household = hh.model_copy(update={"kk_number": kk, "members": members,
                                      "address": hh.address.model_copy(update={"village_code": HOME})})
    return base.model_copy(update={"event_id": uuid.uuid4(), "data": base.data.model_copy(
        update={"household": household, "household_id": uuid.uuid4()})})


async def export(helpers: Any, body: dict[str, Any]) -> CommandReply:
    """The command as intake sends it: no officer token (NATS permissions decide who may send it)."""
    return await send_command(helpers.nc, export_subject(helpers.topology, "distribution"), body, timeout=30)


def ask(nik: str, *kks: str) -> dict[str, Any]:
    return {"export_id": str(uuid.uuid4()), "requested_by": REQUESTED_BY, "nik": nik, "kk_numbers": list(kks)}


async def test_a_family_head_gets_the_rounds_decisions_and_payout(settings_for: Any, helpers: Any, round_body: Any,
                                                                 topology: Any) -> None:
    mine, other = recipient_rows(2, seed=11, village_codes=(HOME,))
    kk, head = mine["kk_number"], mine["head_nik"]
    js = helpers.nc.jetstream()
    event = registered(kk, head)
    await js.publish(subject_for(event, topology), encode_event(event), headers=event_headers(event))
    gateway = InMemoryGateway()
    async with running_app(create_app(settings_for(), gateway=gateway)):
        await helpers.wait_projected()
        await helpers.ok("open_round", round_body("export-round"))
        first, second = str(uuid.uuid4()), str(uuid.uuid4())
        await helpers.ok("import_rows", {"round": "export-round", "batch_id": first,
                                         "rows": [{"row": 2, "fields": mine}, {"row": 3, "fields": other}]})
        # a second list names the family again: its candidate is rejected as a duplicate KK
        await helpers.ok("import_rows", {"round": "export-round", "batch_id": second,
                                         "rows": [{"row": 7, "fields": mine}]})

        async def settled() -> bool:
            return len(gateway.payments) == 2 and len(await helpers.events("AidAllocationRejected")) == 1

        await helpers.wait_until(settled, timeout=60, what="two payouts and one rejection")

        reply = await export(helpers, ask(head))
        assert reply.ok, reply.error
        part = reply.result
        assert part is not None and part["service"] == "distribution" and part["found"] is True
        (household,) = part["records"]["households"]
        assert household["kk_number"] == kk and household["you_are_head"] is True and household["head_nik"] == head
        (round_,) = part["records"]["rounds"]
        round_id = round_id_for("export-round")
        assert round_["round_id"] == str(round_id) and round_["kk_number"] == kk
        assert round_["allocation_id"] == str(allocation_id_for(round_id, kk))
        assert sorted((r["batch_id"], r["row"]) for r in round_["recipient_list_rows"]) == sorted(
            [(first, 2), (second, 7)])
        outcomes = {d["candidate_id"]: (d["outcome"], d.get("reason")) for d in round_["decisions"]}
        assert outcomes == {f"import:{first}:2": ("allocated", None),
                            f"import:{second}:7": ("rejected", "duplicate_kk")}
        assert round_["disbursement"]["outcome"] == "disbursed" and round_["disbursement"]["amount"] == 300_000
        assert other["kk_number"] not in json.dumps(part)

        # a member who is not the head: found through the family card intake names
        member = await export(helpers, ask(other["head_nik"], kk))
        assert member.ok and member.result is not None
        assert member.result["records"]["households"][0]["you_are_head"] is False
        assert member.result["records"]["households"][0]["head_nik"] == f"{head[:4]}********{head[-4:]}"
        assert len(member.result["records"]["rounds"]) == 1

        unknown = await export(helpers, ask("3509016607900005"))
        assert unknown.ok and unknown.result is not None and unknown.result["found"] is False
        assert unknown.result["records"] == {"households": [], "assessments": [], "rounds": []}

        invalid = "3509013213900003"
        bad = await export(helpers, ask(invalid))
        assert not bad.ok and bad.error is not None and bad.error["code"] == "invalid_request"
        assert [f["loc"] for f in bad.error["fields"]] == [["nik"]] and invalid not in json.dumps(bad.error)
