"""deploy/nats/accounts.conf on a real nats-server: every user can do its job and nothing more.

The server runs the committed accounts file unchanged (one node, JetStream, generated passwords).
Each service's user does what the shared kit does at start-up and at work (ensure the streams,
publish its events with Nats-Msg-Id, dead-letter, create and read its durable consumers);
whatever belongs to another service or to nobody is refused by the server.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import httpx
import nats.errors
import pytest
from nats.aio.client import Client as NatsClient
from nats.js.api import AckPolicy, ConsumerConfig
from puskesos_shared.subscribers import DeliveryKind, Subscriber, SubscriberBook
from puskesos_shared.topology import Topology

from tests.deploy.nats_auth import AuthServer, auth_server
from tests.deploy.support import NATS_DIR, SERVICES, gen_secrets, render_kustomization

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

TOPOLOGY = Topology(namespace="puskesos", replicas=1)
EVENTS = TOPOLOGY.events_stream
DLQ = TOPOLOGY.dead_letter_stream
FEEDS = TOPOLOGY.feeds_stream


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    with auth_server(tmp_path_factory.mktemp("nats-auth"), gen_secrets().generate()) as srv:
        yield srv


@pytest.fixture
async def streams(server: AuthServer) -> AuthServer:
    """The topology's streams, as a service creates them at start-up (here as the admin user)."""
    from puskesos_shared.messaging.streams import ensure_streams

    async with server.connect("admin") as (nc, _):
        await ensure_streams(nc.jetstream(), TOPOLOGY)
    return server


#: how long a request the server denies is given before it counts as unanswered (denials are
#: silent for the requester; the violation itself is checked separately, from the error callback)
DENIED_WAIT = 0.4
#: what a denied request raises on the requester's side: no answer comes
DENIED = (nats.errors.TimeoutError, nats.errors.NoRespondersError, asyncio.TimeoutError)


async def published(nc: NatsClient, subject: str, timeout: float = 5.0) -> bool:
    """JetStream publish with Nats-Msg-Id; True when the stream acknowledged it."""
    try:
        await nc.jetstream().publish(subject, b"{}", headers={"Nats-Msg-Id": str(uuid.uuid4())}, timeout=timeout)
    except Exception:
        return False
    return True


async def violation(nc: NatsClient, errors: list[str], what: str) -> bool:
    """Waits (bounded) for the server's asynchronous permissions violation about ``what``."""
    deadline = asyncio.get_running_loop().time() + 3
    while asyncio.get_running_loop().time() < deadline:
        if any("permissions violation" in e.lower() and what.lower() in e.lower() for e in errors):
            return True
        await nc.flush(timeout=1)
        await asyncio.sleep(0.05)
    return False


async def count(server: AuthServer, stream: str, subject: str) -> int:
    async with server.connect("admin") as (nc, _):
        info = await nc.jetstream().stream_info(stream, subjects_filter=subject)
        return sum((info.state.subjects or {}).values())


@pytest.mark.parametrize("service", SERVICES)
async def test_service_does_what_the_kit_does(server: AuthServer, service: str) -> None:
    from puskesos_shared.messaging.consumer import ConsumerPolicy
    from puskesos_shared.messaging.streams import ensure_streams

    async with server.connect(service) as (nc, errors):
        js = nc.jetstream()
        await ensure_streams(js, TOPOLOGY)  # every service provisions the streams at start-up
        assert await published(nc, TOPOLOGY.event_subject(service, "deploy_probe", 1)), errors
        assert await published(nc, TOPOLOGY.dead_letter_subject(service, "probe")), errors
        consumer = f"{service}_deploy_probe"
        config = ConsumerPolicy().consumer_config(consumer, [TOPOLOGY.events_of(service)])
        sub = await js.pull_subscribe(TOPOLOGY.events_of(service), durable=consumer, stream=EVENTS, config=config)
        (msg,) = await sub.fetch(1, timeout=5)  # the probe event published above
        await msg.ack_sync(timeout=3)  # the ack is a publish to $JS.ACK.<stream>.<consumer>...
        await sub.unsubscribe()
        assert [e for e in errors if "permissions violation" in e.lower()] == []


@pytest.mark.parametrize("service", SERVICES)
async def test_service_cannot_speak_for_another(streams: AuthServer, service: str) -> None:
    server = streams
    other = next(s for s in SERVICES if s != service and s != "audit")
    async with server.connect(service) as (nc, errors):
        forged = TOPOLOGY.event_subject(other, "forged", 1)
        before = await count(server, EVENTS, forged)
        assert not await published(nc, forged, DENIED_WAIT)
        assert await violation(nc, errors, forged)
        assert await count(server, EVENTS, forged) == before
        assert not await published(nc, TOPOLOGY.dead_letter_subject(other, "forged"), DENIED_WAIT)
        # nor read another service's commands, nor delete streams
        await nc.subscribe(TOPOLOGY.command_subject(other, "anything"))
        assert await violation(nc, errors, f"puskesos.commands.{other}")
        with pytest.raises(DENIED):
            await nc.jetstream(timeout=DENIED_WAIT).delete_stream(EVENTS)


async def distribution_work_queue(server: AuthServer) -> None:
    """The work stream and its consumers, as the distribution service creates them at start-up."""
    from puskesos_distribution.settings import DistributionSettings
    from puskesos_distribution.workqueue import ALLOCATE, DISBURSE, ensure_work_queue

    settings = DistributionSettings()
    policies = {ALLOCATE: settings.work_policy(1), DISBURSE: settings.work_policy(1)}
    async with server.connect("distribution") as (nc, _):
        await ensure_work_queue(nc.jetstream(), TOPOLOGY, policies)


async def test_distribution_work_queue(streams: AuthServer) -> None:
    server = streams
    await distribution_work_queue(server)
    async with server.connect("distribution") as (nc, errors):
        assert await published(nc, "puskesos.work.distribution.allocate.round1"), errors
    async with server.connect("intake") as (nc, _):
        assert not await published(nc, "puskesos.work.distribution.allocate.round1", DENIED_WAIT)


def production_subscribers() -> list[Subscriber]:
    return [s for s in SubscriberBook(NATS_DIR / "subscribers.json").load() if s.delivery is DeliveryKind.NATS]


@pytest.mark.parametrize("subscriber", production_subscribers(), ids=lambda s: s.name)
async def test_external_subscribers_read_only_their_feed(streams: AuthServer, subscriber: Subscriber) -> None:
    """Each subscriber of deploy/nats/subscribers.json reads its own feed (the full refusals, on a rendered
    book: test_subscriber_permissions.py), never the events stream, and publishes nothing."""
    server = streams
    name = subscriber.name
    event = TOPOLOGY.event_subject("intake", "seen_by_subscribers", 1)
    async with server.connect("notification") as (nc, errors):  # the relay, as the notification service does
        assert await published(nc, TOPOLOGY.feed_subject(name, event)), errors
    async with server.connect(name, inbox_prefix=subscriber.inbox_prefix) as (nc, errors):
        js = nc.jetstream()
        denied = nc.jetstream(timeout=DENIED_WAIT)
        with pytest.raises(DENIED):
            await denied.add_consumer(EVENTS, ConsumerConfig(name=name, durable_name=name,
                                                             filter_subject=TOPOLOGY.all_events,
                                                             ack_policy=AckPolicy.EXPLICIT))
        assert await violation(nc, errors, f"CONSUMER.CREATE.{EVENTS}.{name}")
        await js.add_consumer(FEEDS, ConsumerConfig(name=name, durable_name=name,
                                                    filter_subject=subscriber.feed_filter(TOPOLOGY),
                                                    ack_policy=AckPolicy.EXPLICIT))
        sub = await js.pull_subscribe_bind(name, stream=FEEDS)
        (msg,) = await sub.fetch(1, timeout=5)
        assert msg.subject == TOPOLOGY.feed_subject(name, event)
        await msg.ack_sync(timeout=3)
        assert not await published(nc, TOPOLOGY.event_subject("intake", "forged", 1), DENIED_WAIT)
        assert await violation(nc, errors, "puskesos.events.intake.forged")
        with pytest.raises(DENIED):
            await denied.get_msg(FEEDS, seq=1)
        assert await violation(nc, errors, f"STREAM.MSG.GET.{FEEDS}"), errors


async def test_a_webhook_subscriber_has_no_nats_user(server: AuthServer) -> None:
    webhooks = [s.name for s in SubscriberBook(NATS_DIR / "subscribers.json").load()
                if s.delivery is DeliveryKind.WEBHOOK]
    assert webhooks, "production declares a webhook subscriber (the Ministry)"
    for name in webhooks:
        with pytest.raises(Exception, match=r"(?i)authorization"):
            async with server.connect(name, "x" * 48):
                pass


async def test_operator_sends_commands_but_no_events(streams: AuthServer) -> None:
    server = streams
    async with server.connect("intake") as (svc, _):
        async def answer(msg: object) -> None:
            await msg.respond(b'{"ok": true}')  # type: ignore[attr-defined]

        await svc.subscribe(TOPOLOGY.command_subject("intake", "ping"), queue="intake-commands", cb=answer)
        await svc.flush()
        async with server.connect("operator") as (nc, errors):
            reply = await nc.request(TOPOLOGY.command_subject("intake", "ping"), b"{}", timeout=3)
            assert reply.data == b'{"ok": true}'
            assert not await published(nc, TOPOLOGY.event_subject("distribution", "aid_disbursed", 1), DENIED_WAIT)
            info = await nc.jetstream().stream_info(DLQ)  # reads state, for the runbook's checks
            assert info.config.name == DLQ
            assert await violation(nc, errors, "puskesos.events.distribution")


async def test_intake_asks_every_service_for_its_part_of_a_resident_export_and_nothing_more(
        server: AuthServer) -> None:
    """The resident data export (UU PDP): intake may send ``export_resident`` to each service; no other
    command of theirs, and no other service may send it."""
    async def answer(msg: object) -> None:
        await msg.respond(b'{"ok": true}')  # type: ignore[attr-defined]

    async with server.connect("referral") as (svc, _):
        export = TOPOLOGY.command_subject("referral", "export_resident")
        await svc.subscribe(export, queue="referral-commands", cb=answer)
        await svc.flush()
        async with server.connect("intake") as (nc, errors):
            reply = await nc.request(export, b"{}", timeout=3)
            assert reply.data == b'{"ok": true}'
            await nc.publish(TOPOLOGY.command_subject("referral", "assess_case"), b"{}")
            assert await violation(nc, errors, "puskesos.commands.referral.assess_case")
        async with server.connect("distribution") as (nc, errors):
            await nc.publish(export, b"{}")
            assert await violation(nc, errors, "puskesos.commands.referral.export_resident")


async def test_unknown_client_and_wrong_password_are_refused(server: AuthServer) -> None:
    for user, password in (("stranger", "x" * 48), ("intake", "wrong")):
        with pytest.raises(Exception, match=r"(?i)authorization"):
            async with server.connect(user, password):
                pass


async def test_keda_finds_the_consumers_it_scales_on(streams: AuthServer) -> None:
    """Asks /jsz exactly as KEDA's nats-jetstream scaler does, for each trigger of the ScaledObject."""
    from puskesos_distribution.projection import PROJECTED_EVENTS, PROJECTION_CONSUMER
    from puskesos_shared.contracts.registry import subjects_for
    from puskesos_shared.messaging.consumer import ConsumerPolicy

    server = streams
    (scaled,) = render_kustomization().of_kind("ScaledObject")
    await distribution_work_queue(server)
    async with server.connect("distribution") as (nc, _):  # the projection consumer, as the service makes it
        config = ConsumerPolicy().consumer_config(PROJECTION_CONSUMER, subjects_for(PROJECTED_EVENTS, TOPOLOGY))
        await nc.jetstream().add_consumer(EVENTS, config)
    for trigger in scaled["spec"]["triggers"]:
        meta = trigger["metadata"]
        url = f"{server.monitor_url}/jsz?acc={meta['account']}&consumers=true&config=true"
        async with httpx.AsyncClient(timeout=5) as client:
            body = (await client.get(url)).json()
        accounts = [a for a in body.get("account_details", []) if a["name"] == meta["account"]]
        assert accounts, f"the server reports no account {meta['account']!r}: KEDA would see no lag"
        reported = [s for s in accounts[0].get("stream_detail", []) if s["name"] == meta["stream"]]
        assert reported, f"no stream {meta['stream']} in account {meta['account']}"
        consumers = [c for c in reported[0].get("consumer_detail", []) if c["name"] == meta["consumer"]]
        assert consumers, f"no consumer {meta['consumer']} on {meta['stream']}"
        assert {"num_pending", "num_ack_pending"} <= consumers[0].keys()
