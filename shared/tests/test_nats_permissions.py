"""NATS users and permissions (from puskesos_shared.permissions) enforced by a real nats-server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
import pytest_asyncio
from nats.errors import NoServersError
from nats.js.errors import APIError, NoStreamResponseError
from puskesos_shared.contracts.examples import example
from puskesos_shared.contracts.pseudonymous import PiiLevel
from puskesos_shared.localstack import ManagedProcess, find_nats_server, start_nats
from puskesos_shared.messaging import encode_event, ensure_streams, event_headers
from puskesos_shared.permissions import SERVICES, admin_user, generate_passwords, nats_config, service_user
from puskesos_shared.subscribers import Subscriber, subscriber_user
from puskesos_shared.topology import Topology

pytestmark = pytest.mark.integration
TOPOLOGY = Topology(namespace="puskesos")
DASHBOARD = Subscriber(name="dashboard", events=(">",), pii=PiiLevel.NONE)


@pytest.fixture(scope="module")
def secured_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ManagedProcess, dict[str, str]]]:
    binary = find_nats_server()
    assert binary is not None
    workdir = tmp_path_factory.mktemp("secured-nats")
    passwords = generate_passwords([*SERVICES, "admin", "dashboard"])
    users = [service_user(s, passwords[s], TOPOLOGY) for s in SERVICES]
    dashboard = subscriber_user(DASHBOARD, passwords["dashboard"], TOPOLOGY)
    assert dashboard is not None
    users += [admin_user(passwords["admin"]), dashboard]
    config = workdir / "nats.conf"
    config.write_text(nats_config(users, store_dir=str(workdir / "js")))
    proc = start_nats(binary, workdir / "js", workdir / "nats.log", config_file=config)
    yield proc, passwords
    proc.stop()


@pytest_asyncio.fixture
async def admin(secured_nats: tuple[ManagedProcess, dict[str, str]]) -> AsyncIterator[nats.NATS]:
    proc, passwords = secured_nats
    nc = await nats.connect(proc.url, user="admin", password=passwords["admin"])
    await ensure_streams(nc.jetstream(), TOPOLOGY)
    yield nc
    await nc.drain()


async def _connect(secured: tuple[ManagedProcess, dict[str, str]], user: str, **options: str) -> nats.NATS:
    proc, passwords = secured
    return await nats.connect(proc.url, user=user, password=passwords[user], allow_reconnect=False, **options)


async def _publish(nc: nats.NATS, event_type: str) -> None:
    event = example(event_type).model_copy(update={"event_id": uuid.uuid4()})
    subject = TOPOLOGY.event_subject(type(event).PRODUCER, type(event).SUBJECT_NAME, 1)
    await nc.jetstream().publish(subject, encode_event(event), headers=event_headers(event), timeout=1.5)


async def test_the_notification_user_cannot_publish_aid_disbursed(
    secured_nats: tuple[ManagedProcess, dict[str, str]], admin: nats.NATS
) -> None:
    before = (await admin.jetstream().stream_info(TOPOLOGY.events_stream)).state.messages
    notification = await _connect(secured_nats, "notification")
    errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    notification._error_cb = on_error  # collect the server's permission violation
    try:
        with pytest.raises((TimeoutError, NoStreamResponseError, nats.errors.TimeoutError)):
            await _publish(notification, "AidDisbursed")
        await _publish(notification, "NotificationSent")  # its own subject is fine
    finally:
        await notification.close()
    after = (await admin.jetstream().stream_info(TOPOLOGY.events_stream)).state.messages
    assert after == before + 1  # only the NotificationSent landed
    assert any("permissions violation" in str(e).lower() for e in errors)


async def test_a_service_cannot_delete_the_event_stream(
    secured_nats: tuple[ManagedProcess, dict[str, str]], admin: nats.NATS
) -> None:
    intake = await _connect(secured_nats, "intake")
    try:
        with pytest.raises((TimeoutError, nats.errors.TimeoutError, APIError)):  # denied: never succeeds
            await asyncio.wait_for(intake.jetstream().delete_stream(TOPOLOGY.events_stream), 3)
    finally:
        await intake.close()
    assert (await admin.jetstream().stream_info(TOPOLOGY.events_stream)).config.name == TOPOLOGY.events_stream


async def test_an_unknown_client_cannot_connect(secured_nats: tuple[ManagedProcess, dict[str, str]]) -> None:
    proc, _ = secured_nats
    with pytest.raises((NoServersError, nats.errors.Error, OSError)):
        await nats.connect(proc.url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=2)
    with pytest.raises((NoServersError, nats.errors.Error, OSError)):
        await nats.connect(proc.url, user="intake", password="wrong", allow_reconnect=False,
                           max_reconnect_attempts=0, connect_timeout=2)


async def test_a_subscriber_reads_its_feed_but_cannot_publish(
    secured_nats: tuple[ManagedProcess, dict[str, str]], admin: nats.NATS
) -> None:
    """A subscriber reads the notification service's relayed copies in its own feed, never the events stream
    (the full checks of ``subscriber_user``, on the production rendering: tests/deploy)."""
    notification = await _connect(secured_nats, "notification")
    try:  # the notification service relays a copy into the feed
        event = TOPOLOGY.event_subject("intake", "complaint_filed", 1)
        await notification.jetstream().publish(TOPOLOGY.feed_subject("dashboard", event), b"{}", timeout=3)
    finally:
        await notification.close()
    await _publish(admin, "ComplaintFiled")
    reader = await _connect(secured_nats, "dashboard", inbox_prefix=DASHBOARD.inbox_prefix)
    try:
        sub = await reader.jetstream().pull_subscribe(
            DASHBOARD.feed_filter(TOPOLOGY), durable="dashboard", stream=TOPOLOGY.feeds_stream
        )
        msgs = await sub.fetch(1, timeout=5)
        assert msgs and msgs[0].subject.startswith(TOPOLOGY.feed_prefix("dashboard") + ".")
        await msgs[0].ack()
        with pytest.raises((TimeoutError, NoStreamResponseError, nats.errors.TimeoutError)):
            await _publish(reader, "ComplaintFiled")
        with pytest.raises((TimeoutError, nats.errors.TimeoutError)):  # the events stream is not its to read
            await reader.jetstream(timeout=1).pull_subscribe(TOPOLOGY.all_events, durable="dashboard",
                                                            stream=TOPOLOGY.events_stream)
    finally:
        await reader.close()


def test_the_generated_configuration_is_valid_for_nats_server(tmp_path: Path) -> None:
    import subprocess

    binary = find_nats_server()
    assert binary is not None
    passwords = generate_passwords([*SERVICES, "admin"])
    users = [service_user(s, passwords[s], TOPOLOGY) for s in SERVICES] + [admin_user(passwords["admin"])]
    config = tmp_path / "nats.conf"
    config.write_text(nats_config(users, store_dir=str(tmp_path / "js"), sync_always=True))
    result = subprocess.run([str(binary), "-c", str(config), "-t"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
