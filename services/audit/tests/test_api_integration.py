"""The auditors' HTTP API and the replay command, in-process with real servers."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from audit_flow import VILLAGE, build_flow
from audit_testkit import auth, publish, settings_for, token, wait_for, wait_logged
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from puskesos_audit.app import create_app
from puskesos_shared.commands import send_command
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.testing.app import running_app
from puskesos_shared.topology import Topology
from pymongo import AsyncMongoClient

pytestmark = pytest.mark.integration


async def test_auditor_api(nats_url: str, mongo_url: str, namespace: str, db_prefix: str, jetstream: JetStreamContext,
                           topology: Topology, mongo_client: AsyncMongoClient[Any], nats_client: NatsClient) -> None:
    settings = settings_for(nats_url, mongo_url, namespace, db_prefix)
    flow = build_flow(20)
    async with running_app(create_app(settings)) as http:
        last = await publish(jetstream, topology, flow.events)
        await wait_logged(mongo_client[settings.database_name], last)

        assert (await http.get("/audit/verify")).status_code == 401
        assert (await http.get("/audit/verify", headers=auth(OfficerRole.OPERATOR))).status_code == 403
        verified = (await http.get("/audit/verify", headers=auth())).json()
        assert verified["ok"] and verified["records"] == last
        status = (await http.get("/audit/status", headers=auth())).json()
        assert status["head"]["seq"] == last and status["appender"]["state"] == "appending"

        # a NIK is asked in the body, never in the URL; the answer masks it
        body = {"kind": "nik", "value": flow.ids["nik"]}
        traced = await http.post("/audit/trace", json=body, headers=auth())
        assert traced.status_code == 200, traced.text
        assert flow.ids["nik"] not in traced.text and "AidAllocated" in traced.text
        chart = await http.post("/audit/trace", params={"format": "mermaid"}, headers=auth(),
                                json={"kind": "disbursement", "value": str(flow.ids["disbursement_id"])})
        assert chart.text.startswith("graph LR") and "CaseAssessed" in chart.text and "-->|" in chart.text
        missing = await http.post("/audit/trace", json={"kind": "case", "value": str(uuid.uuid4())}, headers=auth())
        assert missing.status_code == 404 and missing.json()["code"] == "trace_not_found"
        invalid = await http.post("/audit/trace", json={"kind": "case", "value": "no-such-case"}, headers=auth())
        assert invalid.status_code == 422 and invalid.json()["errors"][0]["loc"] == ["body", "value"]
        assert "is a UUID" in invalid.json()["errors"][0]["msg"]
        bad_nik = await http.post("/audit/trace", json={"kind": "nik", "value": "1234"}, headers=auth())
        assert bad_nik.status_code == 422 and "invalid NIK" in bad_nik.json()["errors"][0]["msg"]
        # an auditor of another regency sees the shape of the trace, not its content
        outside = (await http.post("/audit/trace", json=body, headers=auth(OfficerRole.AUDITOR, "35.09"))).json()
        assert all(n["data"] is None for n in outside["nodes"] if n["village_code"])

        decisions = (await http.get("/audit/decisions", headers=auth())).json()
        assert decisions["ok"] and decisions["matches"] == 4
        history = (await http.get(f"/audit/rounds/{flow.ids['round_id']}/history", headers=auth())).json()
        assert history["ok"] and history["comparisons"] == {"reported_at_close": [], "stream": []}
        village = (await http.get(f"/audit/villages/{VILLAGE}/history", headers=auth())).json()
        assert village["ok"] and village["log"]["complaints_filed"] == 1
        assert (await http.get("/audit/villages/35.09.01.2001/history", headers=auth())).status_code == 403
        checkpoints = (await http.get("/audit/checkpoints", headers=auth())).json()
        assert checkpoints and checkpoints[0]["signature"]

        # a late subscriber gets the history replayed on its own subject, with an end marker
        received: list[Msg] = []
        done = asyncio.Event()

        async def on_message(msg: Msg) -> None:
            received.append(msg)
            if msg.subject.endswith("._end"):
                done.set()

        sub = await nats_client.subscribe(f"{namespace}.replay.late-1.>", cb=on_message)
        await nats_client.flush()  # the subscription is on the server before the replay starts
        started = await http.post("/audit/replay", json={"request_id": "late-1", "from_seq": 3}, headers=auth())
        assert started.status_code == 202, started.text
        await wait_for(lambda: _is_set(done), what="the replay's end marker")
        await sub.unsubscribe()
        events = [m for m in received if not m.subject.endswith("._end")]
        assert [int(m.headers["Puskesos-Replay-Seq"]) for m in events] == list(range(3, last + 1))  # type: ignore[index]
        assert events[0].data == flow.events[2].model_dump_json().encode()
        assert events[0].subject == f"{namespace}.replay.late-1.referral.case_opened.v1"
        assert json.loads(received[-1].data)["published"] == last - 2

        # the same through the NATS command, for a subscriber without HTTP access
        received.clear()
        done.clear()
        sub = await nats_client.subscribe(f"{namespace}.replay.late-2.>", cb=on_message)
        await nats_client.flush()
        subject = topology.command_subject("audit", "replay")
        refused = await send_command(nats_client, subject, {"token": token(OfficerRole.OPERATOR), "request_id": "x"})
        assert not refused.ok and refused.error and refused.error["code"] == "forbidden"
        reply = await send_command(nats_client, subject, {"token": token(), "request_id": "late-2", "to_seq": 4})
        assert reply.ok, reply.error
        await wait_for(lambda: _is_set(done), what="the command replay's end marker")
        await sub.unsubscribe()
        assert len([m for m in received if not m.subject.endswith("._end")]) == 4


async def _is_set(event: asyncio.Event) -> bool:
    return event.is_set()
