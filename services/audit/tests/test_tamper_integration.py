"""Tampering with the stored log is pinpointed by ``audit verify`` (API, CLI and exit code)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from audit_flow import RULES_DIR, build_flow
from audit_testkit import load_chunk, publish, rewrite_chunk, settings_for, wait_logged
from nats.js import JetStreamContext
from puskesos_audit import queries
from puskesos_audit.app import create_app
from puskesos_audit.chain import make_record
from puskesos_audit.cli import app as cli
from puskesos_audit.reader import LogReader
from puskesos_shared.testing.app import running_app
from puskesos_shared.topology import Topology
from pymongo import AsyncMongoClient
from typer.testing import CliRunner

pytestmark = pytest.mark.integration


@pytest.fixture
async def logged(nats_url: str, mongo_url: str, namespace: str, db_prefix: str, jetstream: JetStreamContext,
                 topology: Topology, mongo_client: AsyncMongoClient[Any]) -> Any:
    """A log of 24 events in chunks of at most 4 records; the service is stopped before tampering."""
    settings = settings_for(nats_url, mongo_url, namespace, db_prefix, audit_chunk_max_records=4)
    db = mongo_client[settings.database_name]
    async with running_app(create_app(settings)):
        last = await publish(jetstream, topology, build_flow(10).events + build_flow(11).events)
        await wait_logged(db, last)
    return settings, db, last


def _verify(settings: Any) -> Any:
    reader, client = LogReader.connect(settings.mongo_url, settings.database_name)
    try:
        return queries.verify(reader, settings.checkpoint_key())
    finally:
        client.close()


def findings(report: Any) -> list[tuple[str, int | None]]:
    return [(f.kind, f.seq) for f in report.findings if f.failure]


async def test_each_kind_of_tampering_is_pinpointed(logged: Any) -> None:
    settings, db, _ = logged
    assert _verify(settings).ok
    doc, records = await load_chunk(db, 2)
    original = dict(doc)
    target = records[1]

    # change one record (an amount, a name...) and leave its hash
    changed = list(records)
    changed[1] = dataclasses.replace(target, body=target.body.replace(b"300000", b"900000") + b" ")
    await rewrite_chunk(db, doc, changed)
    assert findings(_verify(settings)) == [("altered", target.seq)]

    # change it and recompute its hash: the next record no longer chains to it
    forged = list(records)
    forged[1] = make_record(seq=target.seq, ts=target.ts, subject=target.subject, headers=target.headers,
                            body=target.body.replace(b"300000", b"900000") + b" ", prev=target.prev)
    await rewrite_chunk(db, doc, forged)
    assert findings(_verify(settings)) == [("relinked", target.seq + 1)]

    # delete one record
    await rewrite_chunk(db, doc, records[:1] + records[2:])
    assert findings(_verify(settings)) == [("deleted", target.seq)]

    # swap two records
    await rewrite_chunk(db, doc, [records[0], records[2], records[1], *records[3:]])
    assert findings(_verify(settings)) == [("reordered", target.seq)]

    # delete the whole chunk
    await db["chunks"].delete_one({"_id": doc["_id"]})
    report = _verify(settings)
    assert findings(report) == [("chunk_missing", None), ("deleted", records[0].seq)]
    assert report.findings[-1].last_seq == records[-1].seq

    # put the original back: intact again
    await db["chunks"].insert_one(original)
    assert _verify(settings).ok


async def test_the_cli_exits_non_zero_and_checkpoints_kept_outside_catch_a_rewrite(
    logged: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    settings, db, last = logged
    for name, value in {"PUSKESOS_MONGO_URL": settings.mongo_url, "PUSKESOS_MONGO_DB": settings.database_name,
                        "PUSKESOS_AUTH_SECRET": settings.auth_secret.get_secret_value(),
                        "PUSKESOS_NAMESPACE": settings.namespace}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    async def invoke(args: list[str], **kwargs: Any) -> Any:  # the CLI runs its own event loop: not on this one
        return await asyncio.to_thread(runner.invoke, cli, args, **kwargs)

    kept = tmp_path / "checkpoints.json"
    assert (await invoke(["checkpoint", "create"])).exit_code == 0
    result = await invoke(["checkpoint", "export", str(kept)])
    assert result.exit_code == 0, result.output
    assert json.loads(kept.read_text())[-1]["seq"] == last

    ok = await invoke(["verify", "--json", "--checkpoints", str(kept)])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["ok"] is True

    flow = build_flow(10)
    traced = await invoke(["trace", "allocation", str(flow.ids["allocation_id"]), "--format", "json"])
    assert traced.exit_code == 0, traced.output
    assert "CaseAssessed" in {n["event_type"] for n in json.loads(traced.output)["nodes"]}
    from_stdin = await invoke(["trace", "nik", "-", "--format", "mermaid"], input=flow.ids["nik"] + "\n")
    assert from_stdin.exit_code == 0 and from_stdin.output.startswith("graph LR")
    tree = await invoke(["trace", "complaint", str(flow.ids["complaint_id"])])
    assert tree.exit_code == 0 and "DECISION" in tree.output
    decided = await invoke(["replay", "decisions", "--no-ask-referral", "--json"],
                            env={"PUSKESOS_AUDIT_RULES_DIR": str(RULES_DIR)})
    assert decided.exit_code == 0, decided.output
    assert json.loads(decided.output)["matches"] == 8

    # someone rewrites the last chunk with re-hashed records and removes the stored checkpoints
    number = await db["chunks"].count_documents({}) - 1
    doc, records = await load_chunk(db, number)
    prev, forged = records[0].prev, []
    for r in records:
        f = make_record(seq=r.seq, ts=r.ts, subject=r.subject, headers=r.headers, body=r.body.replace(b"3", b"4"),
                        prev=prev)
        forged.append(f)
        prev = f.hash
    await rewrite_chunk(db, doc, forged)
    await db["checkpoints"].delete_many({})
    await db["meta"].update_one({"_id": "head"}, {"$set": {"hash": prev}})

    blind = await invoke(["verify", "--json"])
    assert blind.exit_code == 0  # the chain alone is self-consistent after a full rewrite of its tail ...
    caught = await invoke(["verify", "--json", "--checkpoints", str(kept)])
    assert caught.exit_code == 1  # ... but not with the head an outside party kept
    report = json.loads(caught.output)
    assert [(f["kind"], f["seq"]) for f in report["findings"]] == [("checkpoint_mismatch", last)]
