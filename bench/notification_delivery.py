"""Notification benchmark: a real notification process delivering a burst to a local provider.

    uv run python bench/notification_delivery.py [--notifications 2000] [--latency-ms 0] [--rate-check 10]

Starts nats-server and the local Mongo engine (or uses PUSKESOS_NATS_URL / PUSKESOS_MONGO_URL), a local
HTTP provider that honours Idempotency-Key (``puskesos_notification.testing.ProviderSink``) and
``python -m puskesos_notification`` as its own process (webhook channel, rate limit out of the way).
Publishes ``--notifications`` ComplaintFiled events (anonymous complainants with a contact phone:
one receipt each), and measures the time until every receipt is at the provider and every
NotificationSent is in the stream.

The floor, measured in the same run on the same servers: the same number of messages published
and consumed by plain nats-py, the same number of HTTP POSTs to the provider (16 at a time, as
the service's consumer concurrency), and the same single-document writes per message by plain
PyMongo (insert, then two updates: what a delivery record costs). The service also projects
each complaint (one more upsert, second consumer) and publishes one event per notification.

Then checks the per-channel rate limit (``--rate-check`` per second, 10 s of messages) and times the
outbox sweep query over the deliveries collection (the kit's periodic republish scan).
The load average before and after is printed: other work on the machine shows there.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import httpx
import nats
from nats.js.api import ConsumerConfig, DeliverPolicy
from puskesos_notification.testing import ProviderSink
from puskesos_notification.testing import events as ev
from puskesos_notification.testing.streams import wait_until
from puskesos_shared.contracts import subject_for
from puskesos_shared.messaging import encode_event, ensure_streams, event_headers
from puskesos_shared.testing.processes import ServiceProcess
from puskesos_shared.testing.servers import resolve_mongo, resolve_nats
from puskesos_shared.topology import Topology
from pymongo import AsyncMongoClient


def start_service(stack: ExitStack, workdir: Path, nats_url: str, mongo_url: str, namespace: str,
                  sink: ProviderSink, rate: float, burst: int) -> ServiceProcess:
    process = ServiceProcess("puskesos_notification", log_path=workdir / f"notification-{namespace}.log", env={
        "PUSKESOS_NATS_URL": nats_url, "PUSKESOS_MONGO_URL": mongo_url, "PUSKESOS_NAMESPACE": namespace,
        "PUSKESOS_MONGO_DB": f"{namespace}_notification", "PUSKESOS_AUTH_SECRET": "b" * 40,
        "PUSKESOS_NOTIFY_HASH_SECRET": "h" * 40, "PUSKESOS_NOTIFY_CHANNEL": "webhook",
        "PUSKESOS_NOTIFY_WEBHOOK_URL": sink.url, "PUSKESOS_NOTIFY_RATE_PER_SECOND": str(rate),
        "PUSKESOS_NOTIFY_RATE_BURST": str(burst), "PUSKESOS_LOG_LEVEL": "warning",
    })
    process.start()
    stack.callback(process.stop)
    process.wait_ready(90)
    return process


async def publish_burst(nats_url: str, topology: Topology, first: int, count: int) -> float:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_streams(js, topology)
    started = time.perf_counter()
    acks = [js.publish(subject, body, headers=headers) for subject, body, headers in
            (_raw(topology, n) for n in range(first, first + count))]
    for chunk in range(0, len(acks), 500):
        await asyncio.gather(*acks[chunk:chunk + 500])
    await nc.close()
    return started


def _raw(topology: Topology, n: int) -> tuple[str, bytes, dict[str, str]]:
    event = ev.complaint_filed(n, contact_phone=f"+62813{n:08d}")
    return subject_for(event, topology), encode_event(event), event_headers(event)


async def sent_events(nats_url: str, topology: Topology) -> int:
    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().stream_info(topology.events_stream, subjects_filter=">")
        subject = f"{topology.namespace}.events.notification.notification_sent.v1"
        return int((info.state.subjects or {}).get(subject, 0))
    finally:
        await nc.close()


async def measure_service(nats_url: str, topology: Topology, sink: ProviderSink, count: int) -> float:
    started = await publish_burst(nats_url, topology, 1, count)
    await wait_until(lambda: len(sink.snapshot()[1]) >= count, timeout=3600, what="every receipt", interval=0.05)

    async def all_sent() -> bool:
        return await sent_events(nats_url, topology) >= count

    done: bool = await wait_until(all_sent, timeout=600, what="every NotificationSent", interval=0.2)
    assert done
    return time.perf_counter() - started


async def measure_floor(nats_url: str, mongo_url: str, sink: ProviderSink, count: int) -> dict[str, float]:
    topology = Topology(namespace=f"floor{uuid.uuid4().hex[:8]}")
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_streams(js, topology)
    subject = f"{topology.namespace}.events.intake.complaint_filed.v1"
    body = b"x" * 900
    t0 = time.perf_counter()
    for chunk in range(0, count, 500):
        await asyncio.gather(*(js.publish(subject, body, headers={"Nats-Msg-Id": f"f{i}"})
                               for i in range(chunk, min(count, chunk + 500))))
    sub = await js.pull_subscribe(subject, durable="floor", config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL))
    got = 0
    while got < count:
        for msg in await sub.fetch(200, timeout=5):
            await msg.ack()
            got += 1
    nats_seconds = time.perf_counter() - t0
    await nc.close()

    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo_url)
    coll = client[f"{topology.namespace}_floor"]["docs"]
    semaphore = asyncio.Semaphore(16)

    async def three_writes(i: int) -> None:
        async with semaphore:
            await coll.insert_one({"_id": i, "state": "pending", "text": "x" * 300})
            await coll.update_one({"_id": i, "state": "pending"}, {"$set": {"state": "sent", "_outbox": [{"e": i}]}})
            await coll.update_one({"_id": i}, {"$pullAll": {"_outbox": [{"e": i}]}})

    t0 = time.perf_counter()
    await asyncio.gather(*(three_writes(i) for i in range(count)))
    mongo_seconds = time.perf_counter() - t0
    await client.drop_database(f"{topology.namespace}_floor")
    await client.close()

    t0 = time.perf_counter()
    async with httpx.AsyncClient() as http:
        async def post(i: int) -> None:
            async with semaphore:
                await http.post(sink.url, json={"to": "62813", "text": "x" * 300},
                                headers={"Idempotency-Key": f"floor-{i}"})

        await asyncio.gather(*(post(i) for i in range(count)))
    http_seconds = time.perf_counter() - t0
    return {"nats": nats_seconds, "mongo": mongo_seconds, "http": http_seconds}


async def sweep_seconds(mongo_url: str, namespace: str) -> tuple[int, float]:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo_url)
    deliveries = client[f"{namespace}_notification"]["deliveries"]
    total = await deliveries.count_documents({})
    t0 = time.perf_counter()
    left = [d async for d in deliveries.find({"_outbox.0": {"$exists": True}}, {"_outbox": 1})]
    seconds = time.perf_counter() - t0
    assert not left
    await client.close()
    return total, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notifications", type=int, default=2000)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="provider latency per request")
    parser.add_argument("--rate-check", type=float, default=10.0, help="rate limit to verify (per second)")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="notification-bench-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        nats_handle, mongo_handle = resolve_nats(workdir), resolve_mongo(workdir)
        stack.callback(nats_handle.close)
        stack.callback(mongo_handle.close)
        sink = ProviderSink(latency_seconds=args.latency_ms / 1000).start()
        stack.callback(sink.stop)

        namespace = f"bench{uuid.uuid4().hex[:8]}"
        start_service(stack, workdir, nats_handle.url, mongo_handle.url, namespace, sink, rate=100_000, burst=1000)
        count = args.notifications
        service_s = asyncio.run(measure_service(nats_handle.url, Topology(namespace=namespace), sink, count))
        requests, accepted = sink.snapshot()
        floor = asyncio.run(measure_floor(nats_handle.url, mongo_handle.url, sink, count))
        floor_s = sum(floor.values())
        total, sweep_s = asyncio.run(sweep_seconds(mongo_handle.url, namespace))

        print(f"notifications: {count} (provider latency {args.latency_ms:g} ms), each created once: "
              f"{len(accepted) == count and set(accepted.values()) == {1}}, provider requests {sum(requests.values())}")
        print(f"service: {service_s:.1f} s end to end = {count / service_s:.0f} notifications/s")
        print(f"floor:   {floor_s:.1f} s = {count / floor_s:.0f}/s (nats publish+consume {floor['nats']:.1f} s, "
              f"3 mongo writes each {floor['mongo']:.1f} s, http posts {floor['http']:.1f} s)")
        print(f"ratio service/floor: {service_s / floor_s:.2f}x")
        print(f"outbox sweep query over {total} delivery records: {sweep_s * 1000:.0f} ms")

        rate_ns = f"rate{uuid.uuid4().hex[:8]}"
        rate_sink = ProviderSink().start()
        stack.callback(rate_sink.stop)
        start_service(stack, workdir, nats_handle.url, mongo_handle.url, rate_ns, rate_sink, rate=args.rate_check,
                      burst=1)
        n = int(args.rate_check * 10)
        asyncio.run(publish_burst(nats_handle.url, Topology(namespace=rate_ns), 100_000, n))
        asyncio.run(wait_until(lambda: len(rate_sink.snapshot()[1]) >= 1, timeout=60, what="first", interval=0.005))
        first = time.perf_counter()
        asyncio.run(wait_until(lambda: len(rate_sink.snapshot()[1]) >= n, timeout=600, what="all", interval=0.005))
        achieved = (n - 1) / (time.perf_counter() - first)
        print(f"rate limit {args.rate_check:g}/s (burst 1): {n} messages at {achieved:.1f}/s")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
