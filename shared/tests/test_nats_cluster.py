"""The local NATS cluster (3 real nats-server processes): leaders, failover, catching up, frozen nodes.

The election times are printed (``-s`` shows them), never asserted beyond the tests' deadlines.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import PubAck
from puskesos_shared.messaging.streams import ensure_streams
from puskesos_shared.settings import ServiceSettings
from puskesos_shared.testing.servers import NatsCluster
from puskesos_shared.topology import Topology

DEADLINE = 30.0
TOPOLOGY = Topology(namespace="chaos", replicas=3)
STREAM = TOPOLOGY.events_stream
SUBJECT = TOPOLOGY.event_subject("intake", "complaint_filed", 1)


@asynccontextmanager
async def client(urls: list[str]) -> AsyncIterator[NatsClient]:
    """A client on the URL list (in that order), noticing a frozen server after two 1 s pings."""
    nc = await nats.connect(urls, dont_randomize=True, max_reconnect_attempts=-1, reconnect_time_wait=0.2,
                            ping_interval=1, max_outstanding_pings=2, name="test-nats-cluster")
    try:
        yield nc
    finally:
        await nc.close()


async def publish_until_acked(js: JetStreamContext, msg_id: str, deadline: float = DEADLINE) -> PubAck:
    """Publishes with ``Nats-Msg-Id`` until the stream acknowledges (the way the outbox retries)."""
    end = time.monotonic() + deadline
    while True:
        try:
            return await js.publish(SUBJECT, msg_id.encode(), timeout=1, headers={"Nats-Msg-Id": msg_id})
        except (nats.errors.Error, TimeoutError):
            if time.monotonic() > end:
                raise
            await asyncio.sleep(0.05)


async def wait_for_new_leader(cluster: NatsCluster, old: str) -> str:
    end = time.monotonic() + DEADLINE
    while (leader := await asyncio.to_thread(cluster.stream_leader, STREAM)) in (None, old):
        assert time.monotonic() < end, f"no new leader of {STREAM}: {cluster.problems([STREAM])}"
        await asyncio.sleep(0.1)
    assert leader is not None
    return leader


def stored_on(cluster: NatsCluster, node_name: str) -> int:
    """Messages of the stream in ``node_name``'s own store."""
    for account in (cluster.node(node_name).jsz("?streams=true") or {}).get("account_details") or []:
        for detail in account.get("stream_detail") or []:
            if detail["name"] == STREAM:
                return int(detail["state"]["messages"])
    return -1


def test_the_url_list_is_a_setting(nats_cluster: NatsCluster) -> None:
    settings = ServiceSettings(_env_file=None, nats_url=f" {nats_cluster.urls[0]}, {nats_cluster.urls[1]},")  # type: ignore[call-arg]
    assert settings.nats_servers == nats_cluster.urls[:2]
    assert ServiceSettings(_env_file=None, nats_url=nats_cluster.url).nats_servers == nats_cluster.urls  # type: ignore[call-arg]


async def test_a_killed_stream_leader_is_replaced_and_catches_up(nats_cluster: NatsCluster) -> None:
    cluster = nats_cluster
    assert cluster.meta_leader() in {node.name for node in cluster.nodes}
    async with client(cluster.urls) as nc:
        js = nc.jetstream()
        await ensure_streams(js, TOPOLOGY)
        await asyncio.to_thread(cluster.wait_healthy, [STREAM], DEADLINE)
        info = await js.stream_info(STREAM)
        assert info.config.num_replicas == 3 and info.cluster is not None
        leader = cluster.leader_node(STREAM)
        assert info.cluster.leader == leader.name
        assert sorted(r.name for r in info.cluster.replicas or []) == sorted(n.name for n in cluster.followers(STREAM))
        for i in range(20):
            assert not (await publish_until_acked(js, f"before-{i}")).duplicate

    # the client connects to the leader first: killing it moves the client as well
    async with client([leader.url, *(n.url for n in cluster.followers(STREAM))]) as nc:
        js = nc.jetstream()
        assert nc.connected_url is not None and nc.connected_url.port == leader.port
        killed_at = time.monotonic()
        leader.kill()
        ack = await publish_until_acked(js, "after-kill")
        first_ack = time.monotonic() - killed_at
        new_leader = await wait_for_new_leader(cluster, leader.name)
        elected = time.monotonic() - killed_at
        print(f"\nstream leader {leader.name} killed: {new_leader} leads after {elected:.2f} s; "
              f"first publish acknowledged after {first_ack:.2f} s (client moved to port {nc.connected_url.port})")
        assert not ack.duplicate and ack.seq == 21
        assert (await publish_until_acked(js, "before-3")).duplicate  # the duplicate window survived the failover
        for i in range(10):
            await publish_until_acked(js, f"during-{i}")  # two of three replicas: still a quorum

        started = time.monotonic()
        leader.restart()
        await asyncio.to_thread(cluster.wait_healthy, [STREAM], DEADLINE)
        print(f"{leader.name} restarted and caught up in {time.monotonic() - started:.2f} s")
        assert stored_on(cluster, leader.name) == 31
        assert (await js.stream_info(STREAM)).state.messages == 31


async def test_a_frozen_leader_is_replaced_and_rejoins(nats_cluster: NatsCluster) -> None:
    cluster = nats_cluster
    async with client(cluster.urls) as nc:
        await ensure_streams(nc.jetstream(), TOPOLOGY)
    await asyncio.to_thread(cluster.wait_healthy, [STREAM], DEADLINE)
    frozen = cluster.leader_node(STREAM)
    async with client([frozen.url, *(n.url for n in cluster.followers(STREAM))]) as nc:
        js = nc.jetstream()
        await publish_until_acked(js, "before-freeze")
        frozen_at = time.monotonic()
        frozen.pause()
        try:
            ack = await publish_until_acked(js, "while-frozen")
            first_ack = time.monotonic() - frozen_at
            new_leader = await wait_for_new_leader(cluster, frozen.name)
            print(f"\nstream leader {frozen.name} frozen (SIGSTOP): {new_leader} leads after "
                  f"{time.monotonic() - frozen_at:.2f} s; first publish acknowledged after {first_ack:.2f} s")
            assert ack.seq == 2 and frozen.alive()
            assert cluster.meta_leader() != frozen.name
        finally:
            frozen.resume()
        await asyncio.to_thread(cluster.wait_healthy, [STREAM], DEADLINE)
        assert stored_on(cluster, frozen.name) == 2
        assert cluster.stream_leader(STREAM) is not None
        assert not (await publish_until_acked(js, "after-thaw")).duplicate


@pytest.mark.parametrize("nats_cluster", [1], indirect=True)
async def test_one_server_with_production_settings(nats_cluster: NatsCluster) -> None:
    """``size=1``: one server with ``sync_interval: always`` and no cluster (the benchmark's baseline)."""
    (node,) = nats_cluster.nodes
    assert nats_cluster.meta_leader() == node.name
    assert ((node.jsz() or {}).get("config") or {}).get("sync_always") is True
    async with client(nats_cluster.urls) as nc:
        await ensure_streams(nc.jetstream(), Topology(namespace="single"))
    assert nats_cluster.stream_leader("SINGLE_EVENTS") == node.name
    nats_cluster.wait_healthy(["SINGLE_EVENTS"], DEADLINE)
