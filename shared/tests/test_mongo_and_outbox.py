"""MongoDB round trip on the Mongo-compatible server, and the outbox inside the document."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from faststream.nats import NatsBroker
from nats.js import JetStreamContext
from puskesos_shared.contracts import ComplaintFiled
from puskesos_shared.contracts.examples import example
from puskesos_shared.messaging import EventPublisher, PublishError
from puskesos_shared.mongo import Mongo, insert_once, is_duplicate_key
from puskesos_shared.outbox import OUTBOX_FIELD, OutboxRelay, outbox_entries
from puskesos_shared.topology import Topology
from pymongo import AsyncMongoClient

pytestmark = pytest.mark.integration


async def test_round_trip_and_unique_violation_is_already_done(mongo_url: str, db_prefix: str) -> None:
    mongo = Mongo(mongo_url, f"{db_prefix}_roundtrip")
    try:
        assert await mongo.ping()
        allocations = mongo.db["allocations"]
        await allocations.create_index([("round_id", 1), ("kk_number", 1)], unique=True, name="one_per_kk")
        doc = {"_id": str(uuid.uuid4()), "round_id": "r1", "kk_number": "3573010502200001", "amount": 300_000}
        assert await insert_once(allocations, doc) is True
        again = {**doc, "_id": str(uuid.uuid4())}  # another id, same family and round
        assert await insert_once(allocations, again) is False
        assert await insert_once(allocations, doc) is False  # same _id
        stored = await allocations.find_one({"round_id": "r1"})
        assert stored is not None and stored["amount"] == 300_000
        assert await allocations.count_documents({}) == 1
        with pytest.raises(Exception) as caught:  # noqa: PT011 - the point is classifying it
            await allocations.insert_one(again)
        assert is_duplicate_key(caught.value)
    finally:
        await mongo.client.drop_database(f"{db_prefix}_roundtrip")
        await mongo.close()


def complaint(n: int) -> ComplaintFiled:
    base = example("ComplaintFiled")
    assert isinstance(base, ComplaintFiled)
    return base.model_copy(update={"event_id": uuid.UUID(int=n)})


async def test_outbox_survives_a_crash_between_write_and_publish(
    broker: NatsBroker, topology: Topology, jetstream: JetStreamContext,
    mongo_client: AsyncMongoClient[dict[str, Any]], db_prefix: str,
) -> None:
    complaints = mongo_client[f"{db_prefix}_outbox"]["complaints"]
    publisher = EventPublisher(broker, topology)
    relay = OutboxRelay(publisher, [complaints])
    events = [complaint(1), complaint(2)]
    # the write: document and its events in one single-document insert
    await complaints.insert_one({"_id": "c1", "status": "filed", OUTBOX_FIELD: outbox_entries(events, topology)})
    # crash #1: before any publish. Start-up republishes.
    assert await relay.republish_pending() == 2
    doc = await complaints.find_one({"_id": "c1"})
    assert doc is not None and doc[OUTBOX_FIELD] == []
    # crash #2: published, but the process died before removing the entries; they are put back
    await complaints.update_one({"_id": "c1"}, {"$set": {OUTBOX_FIELD: outbox_entries(events, topology)}})
    assert await relay.republish_pending() == 2
    info = await jetstream.stream_info(topology.events_stream)
    assert info.state.messages == 2  # exactly once in the stream despite three publishes of each
    assert await relay.republish_pending() == 0


async def test_outbox_keeps_entries_when_the_broker_refuses(
    nats_url: str, topology: Topology, jetstream: JetStreamContext,
    mongo_client: AsyncMongoClient[dict[str, Any]], db_prefix: str,
) -> None:
    complaints = mongo_client[f"{db_prefix}_outbox2"]["complaints"]
    broker = NatsBroker(nats_url)
    await broker.connect()
    # a publisher bound to a namespace that has no stream: every publish fails
    publisher = EventPublisher(broker, Topology(namespace=f"{topology.namespace}x"), timeout=0.5)
    relay = OutboxRelay(publisher, [complaints])
    entries = outbox_entries([complaint(3)], topology)
    await complaints.insert_one({"_id": "c2", OUTBOX_FIELD: entries})
    with pytest.raises(PublishError):
        await relay.flush(complaints, "c2", entries)
    doc = await complaints.find_one({"_id": "c2"})
    assert doc is not None and len(doc[OUTBOX_FIELD]) == 1  # nothing lost
    await broker.stop()
