"""The trace index on a real server: every query a trace sends is one an index serves, indexing a chunk
again (after a crash, or by a second replica) inserts nothing twice, and ``reindex`` rebuilds it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from audit_flow import build_flow
from audit_testkit import publish, publish_raw, settings_for, wait_logged
from nats.js import JetStreamContext
from puskesos_audit.app import create_app
from puskesos_audit.chain import chunk_records
from puskesos_audit.cli import app as cli
from puskesos_audit.indexer import Indexer
from puskesos_audit.store import EVENTS, INDEX_KEYS, ORIGINS, AuditStore
from puskesos_audit.trace import TraceKind, trace
from puskesos_shared.contracts import subject_for
from puskesos_shared.messaging import encode_event
from puskesos_shared.testing.app import running_app
from puskesos_shared.topology import Topology
from pymongo import AsyncMongoClient, monitoring
from typer.testing import CliRunner

pytestmark = pytest.mark.integration


class Finds(monitoring.CommandListener):
    """Records the collection and filter of every ``find`` sent."""

    def __init__(self) -> None:
        self.filters: list[tuple[str, dict[str, Any]]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find":
            self.filters.append((str(event.command["find"]), dict(event.command.get("filter") or {})))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def served_by_an_index(collection: str, query: dict[str, Any]) -> bool:
    """``_id`` equality or ``$in`` (the primary key), or equality on ``events.index_keys`` (its index)."""
    if set(query) == {"_id"}:
        value = query["_id"]
        return isinstance(value, str) or (isinstance(value, dict) and set(value) == {"$in"})
    return collection == EVENTS and set(query) == {INDEX_KEYS} and isinstance(query[INDEX_KEYS], str)


async def test_a_trace_only_sends_indexed_lookups_and_reindexing_inserts_nothing_twice(
    nats_url: str, mongo_url: str, namespace: str, db_prefix: str, jetstream: JetStreamContext,
    topology: Topology, mongo_client: AsyncMongoClient[Any],
) -> None:
    settings = settings_for(nats_url, mongo_url, namespace, db_prefix)
    flows = [build_flow(40), build_flow(41)]
    db = mongo_client[settings.database_name]
    async with running_app(create_app(settings)):
        await publish(jetstream, topology, flows[0].events + flows[1].events)
        # the same event published a second time (another message id): logged twice, traced once
        allocated = next(e for e in flows[1].events if e.event_type == "AidAllocated")
        tail = subject_for(allocated, topology).removeprefix(f"{topology.namespace}.events.")
        again = await publish_raw(jetstream, topology, tail, encode_event(allocated), "republished-1")
        await wait_logged(db, again)
    copy = await db[EVENTS].find_one({"_id": f"s:{again}"})
    assert copy is not None and copy["duplicate_of"] == f"e:{allocated.event_id}" and copy[INDEX_KEYS] == []
    assert any(index["key"] == {INDEX_KEYS: 1} for index in await (await db[EVENTS].list_indexes()).to_list())

    finds = Finds()
    watched: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url, event_listeners=[finds])
    try:
        store = AuditStore(watched[settings.database_name])
        key = settings.index_key()
        flow = flows[1]
        before = {kind: await trace(store, kind, value, key) for kind, value in (
            (TraceKind.ALLOCATION, str(flow.ids["allocation_id"])), (TraceKind.NIK, flow.ids["nik"]),
            (TraceKind.COMPLAINT, str(flow.ids["complaint_id"])), (TraceKind.KK, flow.ids["kk"]),
            (TraceKind.EVENT, str(flow.ids["allocated"])))}
        assert all(result.nodes for result in before.values())
        assert f"s:{again}" not in {n.id for r in before.values() for n in r.nodes}
        assert finds.filters and all(served_by_an_index(c, q) for c, q in finds.filters), finds.filters

        # the follower crashed after writing chunk 0's index but before recording it: chunk 0 again
        counts = (await db[EVENTS].count_documents({}), await db[ORIGINS].count_documents({}))
        chunk = await store.get_chunk(0)
        assert chunk is not None
        await Indexer(store, key).index(chunk_records(chunk), 0)
        assert (await db[EVENTS].count_documents({}), await db[ORIGINS].count_documents({})) == counts
        for kind, result in before.items():
            again = await trace(store, kind, result.query["value"] if kind not in (TraceKind.NIK, TraceKind.KK)
                                else flow.ids[kind.value], key)
            assert [n.id for n in again.nodes] == [n.id for n in result.nodes]
            assert again.edges == result.edges
    finally:
        await watched.close()


async def test_reindex_rebuilds_the_trace_index_of_an_earlier_version(
    nats_url: str, mongo_url: str, namespace: str, db_prefix: str, jetstream: JetStreamContext,
    topology: Topology, mongo_client: AsyncMongoClient[Any], monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = settings_for(nats_url, mongo_url, namespace, db_prefix, audit_chunk_max_records=5)
    flow = build_flow(42)
    db = mongo_client[settings.database_name]
    async with running_app(create_app(settings)):
        last = await publish(jetstream, topology, flow.events)
        await wait_logged(db, last)
    store = AuditStore(db)
    key = settings.index_key()
    before = await trace(store, TraceKind.ALLOCATION, str(flow.ids["allocation_id"]), key)
    # what an earlier version left: summaries without index_keys, numbered postings
    await db[EVENTS].update_many({}, {"$unset": {INDEX_KEYS: ""}})
    await db["postings"].insert_one({"_id": "p:case:x:0", "key": "case:x", "n": 0, "doc": "e:x", "seq": 1})
    assert not (await trace(store, TraceKind.ALLOCATION, str(flow.ids["allocation_id"]), key)).nodes

    for name, value in {"PUSKESOS_MONGO_URL": settings.mongo_url, "PUSKESOS_MONGO_DB": settings.database_name,
                        "PUSKESOS_AUTH_SECRET": settings.auth_secret.get_secret_value(),
                        "PUSKESOS_NAMESPACE": settings.namespace}.items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()
    refused = await asyncio.to_thread(runner.invoke, cli, ["reindex"])  # the CLI runs its own event loop
    assert refused.exit_code == 2 and "Stop the audit service first" in refused.output
    result = await asyncio.to_thread(runner.invoke, cli, ["reindex", "--yes"])
    assert result.exit_code == 0, result.output
    last_chunk = int((await store.get_head())["chunk"])
    assert f"rebuilt from {last_chunk + 1} chunks" in result.output
    assert "postings" not in await db.list_collection_names()
    assert await store.index_position() == last_chunk
    after = await trace(store, TraceKind.ALLOCATION, str(flow.ids["allocation_id"]), key)
    assert [n.id for n in after.nodes] == [n.id for n in before.nodes] and after.edges == before.edges
