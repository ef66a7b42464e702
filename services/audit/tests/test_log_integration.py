"""The audit log against real NATS and the Mongo engine: append, verify, trace, decision and history replay."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from audit_flow import VILLAGE, build_flow
from audit_testkit import publish, publish_raw, settings_for, wait_logged
from nats.js import JetStreamContext
from puskesos_audit import queries
from puskesos_audit.app import create_app
from puskesos_audit.reader import LogReader
from puskesos_audit.trace import TraceKind, trace
from puskesos_shared.testing.app import running_app, runtime_of
from puskesos_shared.topology import Topology
from pymongo import AsyncMongoClient

pytestmark = pytest.mark.integration

FLOW_TYPES = ["ComplaintFiled", "CaseOpened", "CaseAssessed", "AidAllocated", "AidDisbursed", "NotificationSent"]


@pytest.fixture
def settings(nats_url: str, mongo_url: str, namespace: str, db_prefix: str) -> Any:
    return settings_for(nats_url, mongo_url, namespace, db_prefix)


async def test_full_flow_is_logged_verified_traced_and_replayed(
    settings: Any, jetstream: JetStreamContext, topology: Topology, mongo_client: AsyncMongoClient[Any],
) -> None:
    flow = build_flow(1)
    app = create_app(settings)
    async with running_app(app):
        runtime = runtime_of(app)
        last = await publish(jetstream, topology, flow.events[:6])
        garbage = await publish_raw(jetstream, topology, "intake.complaint_filed.v1", b"{not json", "bad-1")
        last = await publish(jetstream, topology, flow.events[6:])
        db = mongo_client[settings.database_name]
        await wait_logged(db, last)
        store = runtime.state["store"]

        # every message is in the log once, the malformed one too (raw bytes, with the reason)
        reader, client = LogReader.connect(settings.mongo_url, settings.database_name)
        try:
            records = list(reader.records())
            assert [r.seq for r in records] == list(range(1, last + 1))
            assert records[garbage - 1].body == b"{not json"
            bad = await store.get("events", f"s:{garbage}")
            assert bad is not None and bad["error"].startswith("malformed JSON")

            report = queries.verify(reader, settings.checkpoint_key())
            assert report.ok, report.findings
            assert report.records == last and report.checkpoints_checked >= 1

            # the whole chain from the allocation: complaint -> case -> assessment -> allocation -> payment -> message
            result = await trace(store, TraceKind.ALLOCATION, str(flow.ids["allocation_id"]), settings.index_key())
            types = [n.event_type for n in result.nodes]
            for expected in [*FLOW_TYPES, "AidRoundOpened", "HouseholdRegistered"]:
                assert expected in types, (expected, types)
            by_type = {n.event_type: n for n in result.nodes}
            edges = {(result.node(e.parent).event_type if result.node(e.parent) else e.parent,
                      result.node(e.child).event_type) for e in result.edges}
            for parent, child in itertools.pairwise(FLOW_TYPES):
                assert (parent, child) in edges, (parent, child, edges)
            assessed = by_type["CaseAssessed"]
            assert assessed.decision is not None and assessed.decision["rule_set_version"] == "assessment@1"
            assert assessed.decision["inputs"]["household"]["kk_revision"] == 1
            assert assessed.actor == {"kind": "officer", "id": "officer-blimbing-03", "role": "assessor"}
            assert assessed.village_code == VILLAGE
            assert by_type["AidAllocated"].decision["amount"] == 300_000  # type: ignore[index]
            assert "3573010101800002" not in result.model_dump_json()  # personal data masked

            # from the NIK (through its keyed hash) and from the complaint: the same decisions
            by_nik = await trace(store, TraceKind.NIK, flow.ids["nik"], settings.index_key())
            assert {"CaseAssessed", "AidAllocated", "AidDisbursed"} <= {n.event_type for n in by_nik.nodes}
            by_complaint = await trace(store, TraceKind.COMPLAINT, str(flow.ids["complaint_id"]), settings.index_key())
            assert set(FLOW_TYPES) <= {n.event_type for n in by_complaint.nodes}

            # decision replay: every decision re-derived from its recorded inputs and rule version
            decisions = await queries.decisions(reader, directories=settings.rules_dirs())
            assert decisions.ok, decisions.mismatches
            assert decisions.checked == {"CaseAssessed": 1, "AidAllocated": 1, "AidAllocationRejected": 1,
                                         "AidDisbursed": 1}
            assert decisions.matches == 4 and decisions.rule_sets_used == ["assessment@1"]

            # history replay: the log's projection equals the stream's and the totals reported at close
            rid = str(flow.ids["round_id"])
            history = await queries.round_history(reader, rid, js=jetstream, topology=topology)
            assert history["ok"], history
            assert history["log"]["allocated_count"] == 1 and history["log"]["rejected_by_reason"] == {
                "budget_exhausted": 1}
            assert history["comparisons"] == {"reported_at_close": [], "stream": []}
            village = await queries.village_history(reader, VILLAGE, js=jetstream, topology=topology)
            assert village["ok"] and village["log"]["cases_opened"] == 1 and village["log"]["cases_closed"] == 1
        finally:
            client.close()


async def test_restart_never_appends_twice_and_continues_the_chain(
    settings: Any, jetstream: JetStreamContext, topology: Topology, mongo_client: AsyncMongoClient[Any],
) -> None:
    flow = build_flow(2)
    db = mongo_client[settings.database_name]
    async with running_app(create_app(settings)):
        last = await publish(jetstream, topology, flow.events[:5])
        await wait_logged(db, last)
    # a second instance (a restart, or a replica) reads the same stream: nothing is appended twice
    async with running_app(create_app(settings)), running_app(create_app(settings)):
        last = await publish(jetstream, topology, flow.events[5:])
        await wait_logged(db, last)
    reader, client = LogReader.connect(settings.mongo_url, settings.database_name)
    try:
        assert [r.seq for r in reader.records()] == list(range(1, last + 1))
        report = queries.verify(reader, settings.checkpoint_key())
        assert report.ok, report.findings
    finally:
        client.close()
    assert await db["events"].count_documents({}) == last


async def test_messages_gone_from_the_stream_are_recorded_as_a_gap(
    settings: Any, jetstream: JetStreamContext, topology: Topology, mongo_client: AsyncMongoClient[Any],
) -> None:
    flow = build_flow(3)
    await publish(jetstream, topology, flow.events[:4])
    await jetstream.purge_stream(topology.events_stream, keep=1)  # 1..3 gone before the audit service ran
    db = mongo_client[settings.database_name]
    async with running_app(create_app(settings)):
        last = await publish(jetstream, topology, flow.events[4:6])
        await wait_logged(db, last)
    reader, client = LogReader.connect(settings.mongo_url, settings.database_name)
    try:
        report = queries.verify(reader, settings.checkpoint_key())
    finally:
        client.close()
    assert report.ok  # a recorded gap is a warning, not tampering
    gaps = [f for f in report.findings if f.kind == "recorded_gap"]
    assert [(g.seq, g.last_seq) for g in gaps] == [(1, 3)]
    assert report.last_seq == last
