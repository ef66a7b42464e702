"""An external subscriber's NATS user (``subscribers.subscriber_user``), on a real nats-server running an
accounts file rendered by deploy/nats/render_accounts.py from a SubscriberBook: it reads its own feed
through its one consumer and does nothing else; a referral target answers only as itself.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from types import ModuleType

import pytest
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig
from puskesos_shared.contracts.pseudonymous import PiiLevel
from puskesos_shared.subscribers import Subscriber, SubscriberBook, respond_subject
from puskesos_shared.topology import Topology

from tests.deploy.nats_auth import AuthServer, auth_server
from tests.deploy.support import NATS_DIR, gen_secrets
from tests.deploy.test_nats_permissions import DENIED, DENIED_WAIT, count, published, violation

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

TOPOLOGY = Topology(namespace="puskesos", replicas=1)
EVENTS, FEEDS = TOPOLOGY.events_stream, TOPOLOGY.feeds_stream
HOSPITAL = Subscriber(name="rsud-soebandi", events=("referral.>",), pii=PiiLevel.PSEUDONYMOUS,
                      referral_target="RSD-SOEBANDI")
BANK = Subscriber(name="bank", events=("distribution.>",), pii=PiiLevel.FULL)
MINISTRY = Subscriber(name="ministry", events=(">",), webhook_url="https://pelaporan.kemensos.example/events")
EVENT = TOPOLOGY.event_subject("referral", "referral_issued", 1)


def render_accounts() -> ModuleType:
    spec = importlib.util.spec_from_file_location("puskesos_deploy_render_accounts",
                                                  NATS_DIR / "render_accounts.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    workdir = tmp_path_factory.mktemp("nats-subscribers")
    book = SubscriberBook(workdir / "subscribers.json")
    book.save([HOSPITAL, BANK, MINISTRY])
    module = render_accounts()
    (workdir / "accounts.conf").write_text(module.render(book.path))
    passwords = gen_secrets().generate()
    passwords |= {module.password_variable(s.name): f"{s.name}-secret-0123456789" for s in (HOSPITAL, BANK)}
    with auth_server(workdir, passwords, workdir / "accounts.conf") as srv:
        yield srv


@pytest.fixture
async def feeds(server: AuthServer) -> AuthServer:
    """The streams, and a relayed copy in each feed (as the notification service writes them)."""
    from puskesos_shared.messaging.streams import ensure_streams

    async with server.connect("admin") as (nc, _):
        await ensure_streams(nc.jetstream(), TOPOLOGY)
    async with server.connect("notification") as (nc, errors):
        for subscriber in (HOSPITAL, BANK):
            assert await published(nc, TOPOLOGY.feed_subject(subscriber.name, EVENT)), errors
    return server


def consumer(name: str, filter_subject: str) -> ConsumerConfig:
    return ConsumerConfig(name=name, durable_name=name, filter_subject=filter_subject, ack_policy=AckPolicy.EXPLICIT)


async def test_the_rendered_book_has_one_user_per_feed_subscriber(server: AuthServer) -> None:
    accounts = (server.process.log_path.parent / "accounts.conf").read_text()
    assert "user: rsud-soebandi" in accounts and "user: bank" in accounts
    assert "user: ministry" not in accounts  # a webhook subscriber gets no NATS access
    with pytest.raises(Exception, match=r"(?i)authorization"):
        async with server.connect(MINISTRY.name, "x" * 48):
            pass


async def test_a_subscriber_reads_its_feed_through_its_consumer(feeds: AuthServer) -> None:
    async with feeds.connect(HOSPITAL.name, inbox_prefix=HOSPITAL.inbox_prefix) as (nc, errors):
        js = nc.jetstream()
        # a filter inside its feed (narrower than the whole feed) is accepted
        inside = f"{TOPOLOGY.feed_prefix(HOSPITAL.name)}.referral.>"
        await js.add_consumer(FEEDS, consumer(HOSPITAL.name, inside))
        info = await js.consumer_info(FEEDS, HOSPITAL.name)
        assert info.config.filter_subject == inside
        sub = await js.pull_subscribe_bind(HOSPITAL.name, stream=FEEDS)
        (msg,) = await sub.fetch(1, timeout=5)
        assert msg.subject == TOPOLOGY.feed_subject(HOSPITAL.name, EVENT)
        await msg.ack_sync(timeout=3)
        await sub.unsubscribe()
        assert await js.delete_consumer(FEEDS, HOSPITAL.name)
        assert [e for e in errors if "permissions violation" in e.lower()] == []


async def test_a_subscriber_is_refused_everything_else(feeds: AuthServer) -> None:
    server = feeds
    name = HOSPITAL.name
    async with server.connect(name, inbox_prefix=HOSPITAL.inbox_prefix) as (nc, errors):
        denied = nc.jetstream(timeout=DENIED_WAIT)
        refused = [
            # another subscriber's feed, under its own consumer name
            (consumer(name, BANK.feed_filter(TOPOLOGY)), FEEDS, f"CONSUMER.CREATE.{FEEDS}.{name}.puskesos.feed.bank"),
            # a consumer with another name, even on its own feed
            (consumer("audit", HOSPITAL.feed_filter(TOPOLOGY)), FEEDS, f"CONSUMER.CREATE.{FEEDS}.audit"),
            # the events stream itself
            (consumer(name, TOPOLOGY.events_of("referral")), EVENTS, f"CONSUMER.CREATE.{EVENTS}.{name}"),
        ]
        for config, stream, what in refused:
            with pytest.raises(DENIED):
                await denied.add_consumer(stream, config)
            assert await violation(nc, errors, what), what
        with pytest.raises(DENIED):
            await denied.stream_info(EVENTS)
        assert await violation(nc, errors, f"STREAM.INFO.{EVENTS}")
        for stream in (FEEDS, EVENTS):  # no message read by sequence, stored or direct
            with pytest.raises(DENIED):
                await denied.get_msg(stream, seq=1)
            assert await violation(nc, errors, f"STREAM.MSG.GET.{stream}")
            with pytest.raises(DENIED):
                await denied.get_msg(stream, seq=1, direct=True)
            assert await violation(nc, errors, f"DIRECT.GET.{stream}")

        # it publishes nothing: no event, no command, not even into its own feed
        own_feed = TOPOLOGY.feed_subject(name, TOPOLOGY.event_subject("referral", "forged", 1))
        before = await count(server, FEEDS, own_feed)
        for subject in (TOPOLOGY.event_subject("referral", "referral_resolved", 1),
                        TOPOLOGY.command_subject("referral", "assess_case"),
                        TOPOLOGY.command_subject("referral", "respond_referral"),  # the operators' subject
                        own_feed):
            assert not await published(nc, subject, DENIED_WAIT)
            assert await violation(nc, errors, subject), subject
        assert await count(server, FEEDS, own_feed) == before
        # nor read a subject directly (the feed live, or another client's inbox)
        for subject in (f"{TOPOLOGY.feed_prefix(name)}.>", "_INBOX.>"):
            await nc.subscribe(subject)
            assert await violation(nc, errors, subject), subject


async def test_a_referral_target_answers_as_itself_only(feeds: AuthServer) -> None:
    server = feeds

    async def answer(msg: Msg) -> None:  # the referral service's side: who is answering is the last token
        await msg.respond(json.dumps({"ok": True, "result": {"target": msg.subject.rsplit(".", 1)[-1]}}).encode())

    async with server.connect("referral") as (svc, _):
        await svc.subscribe(f"{TOPOLOGY.command_subject('referral', 'respond_referral')}.*", queue="referral-commands",
                            cb=answer)
        await svc.flush()
        async with server.connect(HOSPITAL.name, inbox_prefix=HOSPITAL.inbox_prefix) as (nc, errors):
            own = respond_subject(TOPOLOGY, "RSD-SOEBANDI")
            reply = await nc.request(own, b"{}", timeout=3)
            assert json.loads(reply.data) == {"ok": True, "result": {"target": "RSD-SOEBANDI"}}
            other = respond_subject(TOPOLOGY, "RSUD-SAIFUL-ANWAR")
            with pytest.raises(DENIED):
                await nc.request(other, b"{}", timeout=DENIED_WAIT)
            assert await violation(nc, errors, other)
        async with server.connect(BANK.name, inbox_prefix=BANK.inbox_prefix) as (nc, errors):
            with pytest.raises(DENIED):  # not a referral target: it answers nothing
                await nc.request(own, b"{}", timeout=DENIED_WAIT)
            assert await violation(nc, errors, own)
