"""SIGKILL mid-burst: every notification delivered, none twice (counted at the provider, per key).

A real ``python -m puskesos_notification`` process sends to a local provider that, like a real
one, creates one message per ``Idempotency-Key`` and counts what it created. 300 notifications
(100 to households known only through HouseholdRegistered, 200 to anonymous complainants) are
published at once; the process is killed with SIGKILL twice while it works through them (the
channel's rate limit keeps the burst going for seconds, so "mid-burst" holds by construction)
and restarted each time.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from nats.js import JetStreamContext
from puskesos_notification.domain import ContactKeys, notification_id
from puskesos_notification.testing import ProviderSink
from puskesos_notification.testing import events as ev
from puskesos_notification.testing.streams import read_events, wait_until
from puskesos_shared.contracts import Event, NotificationSent
from puskesos_shared.testing.processes import ServiceProcess
from puskesos_shared.topology import Topology
from pymongo import AsyncMongoClient

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
HASH_SECRET = "k" * 40
HOUSEHOLDS, ANONYMOUS = 100, 200
TOTAL = HOUSEHOLDS + ANONYMOUS


@pytest.fixture
def slow_sink() -> Iterator[ProviderSink]:
    provider = ProviderSink(latency_seconds=0.02).start()
    yield provider
    provider.stop()


def expected_notifications() -> tuple[list[Event], set[str]]:
    keys = ContactKeys(HASH_SECRET.encode())
    events: list[Event] = []
    expected: set[str] = set()
    for n in range(1, HOUSEHOLDS + 1):
        member = ev.nik(n * 10)
        complaint = ev.complaint_filed(n, nik_of=member)
        events += [ev.household_registered(n, phone_number=ev.phone(n)), complaint]
        expected.add(str(notification_id(complaint.event_id, keys.nik(member), "complaint_receipt")))
    for n in range(HOUSEHOLDS + 1, TOTAL + 1):
        complaint = ev.complaint_filed(n, contact_phone=ev.phone(n))
        events.append(complaint)
        expected.add(str(notification_id(complaint.event_id, keys.phone(ev.phone(n)), "complaint_receipt")))
    return events, expected


async def test_sigkill_mid_burst_delivers_every_notification_exactly_once(
    nats_url: str, mongo_url: str, namespace: str, db_prefix: str, topology: Topology,
    jetstream: JetStreamContext, mongo_client: AsyncMongoClient[dict[str, object]], slow_sink: ProviderSink,
    tmp_path: Path,
) -> None:
    env = {
        "PUSKESOS_NATS_URL": nats_url, "PUSKESOS_MONGO_URL": mongo_url, "PUSKESOS_NAMESPACE": namespace,
        "PUSKESOS_MONGO_DB": f"{db_prefix}_notification", "PUSKESOS_AUTH_SECRET": "a" * 40,
        "PUSKESOS_NOTIFY_HASH_SECRET": HASH_SECRET, "PUSKESOS_NOTIFY_CHANNEL": "webhook",
        "PUSKESOS_NOTIFY_WEBHOOK_URL": slow_sink.url, "PUSKESOS_NOTIFY_RATE_PER_SECOND": "60",
        "PUSKESOS_NOTIFY_RATE_BURST": "10", "PUSKESOS_NOTIFY_CONSUMER_ACK_WAIT_SECONDS": "3",
        "PUSKESOS_NOTIFY_CONSUMER_BACKOFF_SECONDS": "0.2", "PUSKESOS_LOG_LEVEL": "info",
    }
    process = ServiceProcess("puskesos_notification", log_path=tmp_path / "notification.log", env=env)
    events, expected = expected_notifications()
    try:
        process.start()
        await asyncio.to_thread(process.wait_ready, 60)
        for event in events:
            await ev.publish(jetstream, topology, event)

        delivered_at_kill: list[int] = []
        for kill_after in (TOTAL // 5, TOTAL // 2):
            await wait_until(lambda k=kill_after: len(slow_sink.snapshot()[1]) >= k,  # type: ignore[misc]
                             timeout=120, what=f"{kill_after} messages at the provider", interval=0.01)
            assert process.kill() == -9
            assert len(slow_sink.snapshot()[1]) < TOTAL, "the burst was over before the kill"
            delivered_at_kill.append(len(slow_sink.snapshot()[1]))
            process.start()
            await asyncio.to_thread(process.wait_ready, 60)

        await wait_until(lambda: set(slow_sink.snapshot()[1]) >= expected, timeout=120,
                         what="every notification at the provider")

        async def all_announced() -> list[Event] | None:
            found = await read_events(jetstream, topology)
            return found if len(found) >= TOTAL else None

        outcomes = await wait_until(all_announced, timeout=60, what="an outcome event per notification")
    finally:
        process.stop()

    requests, accepted = slow_sink.snapshot()
    assert set(accepted) == expected  # every notification delivered, nothing unexpected
    assert set(accepted.values()) == {1}  # each created exactly once at the provider
    assert not slow_sink.conflicts and slow_sink.without_key == 0  # a resend was always the same message
    sent = [e for e in outcomes if isinstance(e, NotificationSent)]
    assert len(sent) == len(outcomes) == TOTAL  # one event per notification (the broker de-duplicated resends)
    assert {str(e.data.notification_id) for e in sent} == expected
    deliveries = mongo_client[f"{db_prefix}_notification"]["deliveries"]
    assert await deliveries.count_documents({"state": "sent"}) == TOTAL
    assert await deliveries.count_documents({"_outbox.0": {"$exists": True}}) == 0
    log = process.log_tail(10**9)
    assert "notification_finished" in log
    assert not re.search(r"62812\d{8}|357301\d{10}", log), "a phone number or NIK in clear in the logs"
    resent = sum(1 for key in expected if requests[key] > 1)
    print(f"\nkilled at {delivered_at_kill} of {TOTAL} delivered; {resent} notifications were sent again after a "
          f"kill and absorbed by the idempotency key; {sum(requests.values())} provider requests in all")
