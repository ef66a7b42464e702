"""Bad input on every command (HTTP and NATS): a clear error, and nothing written or published.

Each test sets up cases, takes a snapshot of every collection and of the stream, sends a table
of bad requests, checks each answer, and compares the snapshot afterwards.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from puskesos_referral.catalog import packaged_rule_sets
from puskesos_shared.auth import issue_token
from puskesos_shared.contracts.intake import ComplaintCategory, Urgency
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.ids import stable_id
from puskesos_shared.topology import Topology
from referral_testkit import (
    JEMBER_VILLAGE,
    SECRET,
    FakeClock,
    Replica,
    bearer,
    command,
    complaint_filed,
    household_registered,
    officer,
    publish,
    replica,
    settings_for,
    token,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
A, OP, C = OfficerRole.ASSESSOR, OfficerRole.OPERATOR, OfficerRole.COORDINATOR
OTHER_VILLAGE = "35.09.01.2002"
UNKNOWN_KK = "3509011111110009"


@dataclass
class World:
    r: Replica
    fresh: uuid.UUID  # opened, not assessed
    assessed: uuid.UUID  # assessed, no hospital need observed

    async def snapshot(self, js: JetStreamContext, topology: Topology) -> dict[str, Any]:
        db = self.r.runtime.db
        out: dict[str, Any] = {}
        for name in ("case_changes", "cases", "pending", "household_revisions", "households",
                     "rule_sets", "referral_numbers"):
            out[name] = sorted([json.dumps(d, default=str, sort_keys=True) async for d in db[name].find({})])
        out["stream_last_seq"] = (await js.stream_info(topology.events_stream)).state.last_seq
        return out


@pytest_asyncio.fixture
async def world(nats_url: str, mongo_url: str, namespace: str, db_prefix: str, topology: Topology,
                jetstream: JetStreamContext) -> AsyncIterator[World]:
    async with replica(settings_for(nats_url, mongo_url, namespace, db_prefix), FakeClock()) as r:
        await publish(jetstream, topology, household_registered())
        complaints = [complaint_filed(sequence=1),
                      complaint_filed(sequence=2, category=ComplaintCategory.AID_NOT_RECEIVED, urgency=Urgency.NORMAL)]
        for complaint in complaints:
            await publish(jetstream, topology, complaint)
        fresh, assessed = (stable_id("case", c.data.complaint_id) for c in complaints)
        store = r.runtime.state["store"]

        async def ready() -> bool:
            return (await store.latest(fresh) is not None and await store.latest(assessed) is not None
                    and await store.household("3509012003150001") is not None)

        await wait_for(ready, what="cases and household")
        response = await r.http.post(f"/cases/{assessed}/assessments", json={"observations": {}}, headers=bearer(A))
        assert response.status_code == 201
        yield World(r, fresh, assessed)


def _v1_doc(**changes: Any) -> dict[str, Any]:
    return {**packaged_rule_sets()[0].document(), **changes}


async def test_http_commands_refuse_bad_input_and_write_nothing(world: World, topology: Topology,
                                                                jetstream: JetStreamContext) -> None:
    http, fresh, assessed = world.r.http, world.fresh, world.assessed
    before = await world.snapshot(jetstream, topology)
    expired = issue_token(officer(A), SECRET, now=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    cases: list[tuple[str, str, str, Any, dict[str, str], int, str]] = [
        # (what, method, path, body, headers, status, expected text in the answer)
        ("no token", "POST", f"/cases/{fresh}/assessments", {"observations": {}}, {}, 401, "unauthenticated"),
        ("expired token", "POST", f"/cases/{fresh}/assessments", {"observations": {}},
         {"Authorization": f"Bearer {expired}"}, 401, "expired"),
        ("forged token", "POST", f"/cases/{fresh}/assessments", {"observations": {}},
         {"Authorization": "Bearer abc.def.ghi"}, 401, "invalid token"),
        ("wrong role", "POST", f"/cases/{fresh}/assessments", {"observations": {}}, bearer(OfficerRole.FRONT_OFFICE),
         403, "may not do this"),
        ("other village", "POST", f"/cases/{fresh}/assessments", {"observations": {}}, bearer(A, OTHER_VILLAGE),
         403, "outside this officer's scope"),
        ("unknown case", "POST", f"/cases/{uuid.uuid4()}/assessments", {"observations": {}}, bearer(A), 404,
         "case_not_found"),
        ("bad case id", "POST", "/cases/not-a-uuid/assessments", {"observations": {}}, bearer(A), 422, "uuid"),
        ("wrong type", "POST", f"/cases/{fresh}/assessments", {"observations": {"homeless": "kind of"}}, bearer(A),
         422, "observations"),
        ("unknown field", "POST", f"/cases/{fresh}/assessments", {"observations": {}, "score": 99}, bearer(A), 422,
         "extra_forbidden"),
        ("invalid KK", "POST", f"/cases/{fresh}/assessments", {"observations": {}, "kk_number": "3509019999990000"},
         bearer(A), 422, "kk_number"),
        ("unregistered KK", "POST", f"/cases/{fresh}/assessments", {"observations": {}, "kk_number": UNKNOWN_KK},
         bearer(A), 409, "household_unknown"),
        ("refer unassessed", "POST", f"/cases/{fresh}/referrals", {"target_code": "RSD-SOEBANDI"}, bearer(A), 409,
         "invalid_state"),
        ("refer not eligible", "POST", f"/cases/{assessed}/referrals", {"target_code": "RSD-SOEBANDI"}, bearer(A),
         409, "not_eligible"),
        ("unknown target", "POST", f"/cases/{assessed}/referrals", {"target_code": "RS-NOWHERE"}, bearer(A), 422,
         "unknown referral target"),
        ("target of another regency", "POST", f"/cases/{assessed}/referrals", {"target_code": "DINSOS-MALANG"},
         bearer(A), 422, "serves regency 35.73"),
        ("due days out of range", "POST", f"/cases/{assessed}/referrals",
         {"target_code": "DINSOS-JEMBER", "due_in_working_days": 0}, bearer(A), 422, "due_in_working_days"),
        ("unknown referral", "POST", "/referrals/responses",
         {"referral_number": "RJK/3509012001/2026/09999", "outcome": "accepted", "responded_by": "x"}, bearer(A),
         404, "referral_not_found"),
        ("two referral references", "POST", "/referrals/responses",
         {"referral_number": "RJK/1", "referral_id": str(uuid.uuid4()), "outcome": "accepted", "responded_by": "x"},
         bearer(A), 422, "exactly one of referral_id and referral_number"),
        ("unknown outcome", "POST", "/referrals/responses",
         {"referral_number": "RJK/1", "outcome": "maybe", "responded_by": "x"}, bearer(A), 422, "outcome"),
        ("close without reason", "POST", f"/cases/{fresh}/close", {"resolution": "resolved", "reason": ""},
         bearer(A), 422, "reason"),
        ("close completed without referral", "POST", f"/cases/{fresh}/close",
         {"resolution": "referred_and_completed", "reason": "selesai"}, bearer(A), 409, "invalid_state"),
        ("close by front office", "POST", f"/cases/{fresh}/close", {"resolution": "resolved", "reason": "x"},
         bearer(OfficerRole.FRONT_OFFICE), 403, "may not do this"),
        ("rules by an assessor", "POST", "/rule-sets", {"rule_set": _v1_doc(version=2)}, bearer(A), 403,
         "may not do this"),
        ("rules with an unknown fact", "POST", "/rule-sets",
         {"rule_set": _v1_doc(version=2, categories=[{"category": "fakir_miskin",
                                                      "when": {"fact": "household.gold", "op": "eq", "value": 1}}])},
         bearer(OP, "35.09"), 422, "unknown fact"),
        ("rules rewriting version 1", "POST", "/rule-sets", {"rule_set": _v1_doc(title="Diubah diam-diam")},
         bearer(OP, "35.09"), 409, "published versions never change"),
        ("rules of another family", "POST", "/rule-sets", {"rule_set": _v1_doc(name="blt", version=7)},
         bearer(OP, "35.09"), 422, "unknown_rule_set"),
        ("list with two scopes", "GET", f"/cases?village_code={JEMBER_VILLAGE}&kecamatan_code=35.09.01", None,
         bearer(C, "35.09.01"), 422, "exactly one of village_code and kecamatan_code"),
        ("list outside scope", "GET", "/cases?kecamatan_code=35.09.02", None, bearer(C, "35.09.01"), 403,
         "outside this officer's scope"),
        ("list sla_state of closed", "GET", f"/cases?village_code={JEMBER_VILLAGE}&status=all&sla_state=breached",
         None, bearer(C, "35.09.01"), 422, "sla_state"),
        ("summary bad month", "GET", "/cases/summary?kecamatan_code=35.09.01&month=2026-13", None,
         bearer(C, "35.09.01"), 422, "YYYY-MM"),
        ("get case outside scope", "GET", f"/cases/{fresh}", None, bearer(A, OTHER_VILLAGE), 403, "outside"),
        ("unknown rule set", "GET", "/rule-sets/assessment@99", None, bearer(A), 404, "rule_set_not_found"),
        ("acknowledge never escalated", "POST", f"/cases/{fresh}/escalation/acknowledge", {}, bearer(C, "35.09.01"),
         409, "no_open_escalation"),
        ("acknowledge by an assessor", "POST", f"/cases/{fresh}/escalation/acknowledge", {}, bearer(A), 403,
         "may not do this"),
        ("resolve unknown action", "POST", f"/cases/{fresh}/escalation/resolve", {"action": "ignored", "note": "x"},
         bearer(C, "35.09.01"), 422, "action"),
        ("return without deadline", "POST", f"/cases/{fresh}/escalation/resolve",
         {"action": "returned_to_village", "note": "x"}, bearer(C, "35.09.01"), 422, "due_in_working_days"),
        ("resolve without note", "POST", f"/cases/{fresh}/escalation/resolve",
         {"action": "handled_at_level", "note": ""}, bearer(C, "35.09.01"), 422, "note"),
        ("escalations bad status", "GET", "/escalations?status=pending", None, bearer(C, "35.09.01"), 422, "status"),
        ("escalations at the village", "GET", "/escalations?level=village", None, bearer(C, "35.09.01"), 422,
         "no escalation reaches the village"),
        ("escalations outside scope", "GET", "/escalations?kecamatan_code=35.09.02", None, bearer(C, "35.09.01"),
         403, "outside this officer's scope"),
    ]
    for what, method, path, body, headers, status, text in cases:
        response = await http.request(method, path, json=body, headers=headers)
        assert response.status_code == status, f"{what}: {response.status_code} {response.text}"
        assert text in response.text, f"{what}: {response.text}"
        assert "3509019999990000" not in response.text and "kind of" not in response.text, f"{what} echoes input"
    malformed = await http.post(f"/cases/{fresh}/assessments", content=b'{"observations": {',
                                headers={**bearer(A), "content-type": "application/json"})
    assert malformed.status_code == 422 and "json_invalid" in malformed.text
    huge = await http.post(f"/cases/{fresh}/close", json={"resolution": "resolved", "reason": "x" * 300_000},
                           headers=bearer(A))
    assert huge.status_code == 413
    assert await world.snapshot(jetstream, topology) == before


async def test_nats_commands_refuse_bad_input_and_write_nothing(world: World, topology: Topology,
                                                                jetstream: JetStreamContext,
                                                                nats_client: NatsClient) -> None:
    fresh, assessed = str(world.fresh), str(world.assessed)
    before = await world.snapshot(jetstream, topology)
    tok = token(A)
    cases: list[tuple[str, str, Any, str, str]] = [
        # (what, command, body, error code, text in the message or fields)
        ("malformed JSON", "assess_case", b'{"token": ', "malformed_json", "not valid JSON"),
        ("not an object", "close_case", b"[1, 2]", "invalid_request", "schema"),
        ("missing token", "assess_case", {"case_id": fresh, "observations": {}}, "invalid_request", "token"),
        ("bad token", "assess_case", {"token": "x", "case_id": fresh, "observations": {}}, "invalid_token",
         "invalid token"),
        ("wrong role", "issue_referral", {"token": token(C, "35.09.01"), "case_id": assessed,
                                          "target_code": "DINSOS-JEMBER"}, "forbidden", "may not do this"),
        ("wrong type", "assess_case", {"token": tok, "case_id": fresh, "observations": {"begging": [1]}},
         "invalid_request", '["observations", "begging"]'),
        ("unknown field", "close_case", {"token": tok, "case_id": fresh, "resolution": "resolved", "reason": "x",
                                         "force": True}, "invalid_request", "force"),
        ("bad case id", "close_case", {"token": tok, "case_id": "12", "resolution": "resolved", "reason": "x"},
         "invalid_request", "case_id"),
        ("unknown case", "get_case", {"token": tok, "case_id": str(uuid.uuid4())}, "case_not_found", "no case"),
        ("not eligible", "issue_referral", {"token": tok, "case_id": assessed, "target_code": "RSD-SOEBANDI"},
         "not_eligible", "HOSPITAL_REFERRAL"),
        ("unknown target", "issue_referral", {"token": tok, "case_id": assessed, "target_code": "??"},
         "unknown_target", "target_code"),
        ("response without reference", "respond_referral", {"outcome": "completed", "responded_by": "RSD"},
         "invalid_request", "exactly one of referral_id and referral_number"),
        ("response to nothing", "respond_referral", {"referral_id": str(uuid.uuid4()), "outcome": "completed",
                                                     "responded_by": "RSD"}, "referral_not_found", "no such"),
        ("response without responder", "respond_referral", {"referral_number": "RJK/1", "outcome": "completed"},
         "invalid_request", "responded_by"),
        ("bad resolution", "close_case", {"token": tok, "case_id": fresh, "resolution": "done", "reason": "x"},
         "invalid_request", "resolution"),
        ("list bad scope", "list_cases", {"token": tok, "village_code": "35.09.01"}, "invalid_request",
         "village_code"),
        ("summary without month", "case_summary", {"token": tok, "village_code": JEMBER_VILLAGE},
         "invalid_request", "month"),
        ("rules not newer", "publish_rule_set", {"token": token(OP, "35.09"), "rule_set": _v1_doc(title="x")},
         "rule_set_exists", "never change"),
        ("rules wrong format", "publish_rule_set",
         {"token": token(OP, "35.09"), "rule_set": _v1_doc(version=2, format="x")}, "invalid_request",
         '["rule_set", "format"]'),
        ("rule set bad tag", "get_rule_set", {"tag": "assessment"}, "invalid_request", "tag"),
        ("acknowledge never escalated", "acknowledge_escalation", {"token": token(C, "35.09.01"), "case_id": fresh},
         "no_open_escalation", "never escalated"),
        ("resolve by an assessor", "resolve_escalation",
         {"token": tok, "case_id": fresh, "action": "handled_at_level", "note": "x"}, "forbidden", "may not do this"),
        ("escalations bad page", "list_escalations", {"token": tok, "page": 0}, "invalid_request", "page"),
    ]
    for what, name, body, code, text in cases:
        reply = await command(nats_client, topology, name, body)
        assert not reply.ok and reply.error is not None, f"{what}: {reply}"
        assert reply.error["code"] == code, f"{what}: {reply.error}"
        assert text in json.dumps(reply.error), f"{what}: {reply.error}"
    assert await world.snapshot(jetstream, topology) == before


async def test_bad_messages_on_the_bus_go_to_the_dead_letter_stream(world: World, topology: Topology,
                                                                    jetstream: JetStreamContext) -> None:
    """The kit's consumer dead-letters what the contract refuses; the service keeps going."""
    subject = topology.event_subject("intake", "complaint_filed", 1)
    await jetstream.publish(subject, b"{broken", headers={"Nats-Msg-Id": "bad-1"}, stream=topology.events_stream)
    future = json.loads(complaint_filed().model_dump_json())
    future["schema_version"] = 9
    await jetstream.publish(subject, json.dumps(future).encode(), headers={"Nats-Msg-Id": "bad-2"},
                            stream=topology.events_stream)

    async def dead_lettered() -> bool:
        info = await jetstream.stream_info(topology.dead_letter_stream)
        return info.state.messages == 2

    await wait_for(dead_lettered, what="two dead letters")
    good = complaint_filed(sequence=3)
    await publish(jetstream, topology, good)
    store = world.r.runtime.state["store"]

    async def opened() -> bool:
        return await store.latest(stable_id("case", good.data.complaint_id)) is not None

    await wait_for(opened, what="the next good complaint handled")
