"""Renders deploy/nats/accounts.conf from the shared permissions table and the subscribers file.

    uv run python deploy/nats/render_accounts.py > deploy/nats/accounts.conf

The services' users come from ``puskesos_shared.permissions.service_user`` (the table the local
stack uses too, the notification service's feed relay included), so the cluster enforces exactly
what the tests run with. Production adds what a laptop does not need: a JetStream account, the
system account, passwords read from the environment (never written here), an operator user that
may send commands and read stream state but publish no event, a break-glass admin, and the external
subscribers declared in deploy/nats/subscribers.json (``puskesos_shared.subscribers.subscriber_user``):
each reads only its own feed in the feeds stream through one durable consumer named as itself, and
a referral target may answer its own referrals; a webhook subscriber gets no NATS user at all.
tests/deploy/test_nats_config.py fails when the committed file differs from this rendering.
"""

from __future__ import annotations

import sys
from pathlib import Path

from puskesos_shared.permissions import SERVICES, NatsUser, service_user
from puskesos_shared.subscribers import Subscriber, SubscriberBook, subscriber_user
from puskesos_shared.topology import Topology

TOPOLOGY = Topology(namespace="puskesos")
ACCOUNT = "PUSKESOS"
EVENTS = TOPOLOGY.events_stream
#: production's external subscribers, reviewed like code (the SubscriberBook format)
SUBSCRIBERS_FILE = Path(__file__).resolve().with_name("subscribers.json")


def password_variable(user: str) -> str:
    """``NATS_<USER>_PASSWORD``; a subscriber's '-' becomes '_' (``NATS_RSUD_SOEBANDI_PASSWORD``)."""
    return f"NATS_{user.upper().replace('-', '_')}_PASSWORD"


def subscribers(path: Path = SUBSCRIBERS_FILE) -> list[Subscriber]:
    return SubscriberBook(path).load()


def operator_user() -> NatsUser:
    ns = TOPOLOGY.namespace
    publish = (
        f"{ns}.commands.>",
        "$JS.API.INFO", "$JS.API.STREAM.NAMES", "$JS.API.STREAM.LIST", "$JS.API.STREAM.INFO.*",
        "$JS.API.CONSUMER.NAMES.*", "$JS.API.CONSUMER.LIST.*", "$JS.API.CONSUMER.INFO.*.*",
        f"$JS.API.STREAM.MSG.GET.{TOPOLOGY.dead_letter_stream}", f"$JS.API.STREAM.MSG.GET.{EVENTS}",
        # ``puskesos dlq``: list through a headers-only ephemeral consumer; a re-driven dead letter is removed
        f"$JS.API.CONSUMER.CREATE.{TOPOLOGY.dead_letter_stream}.>",
        f"$JS.API.CONSUMER.DELETE.{TOPOLOGY.dead_letter_stream}.*",
        f"$JS.API.CONSUMER.MSG.NEXT.{TOPOLOGY.dead_letter_stream}.*",
        f"$JS.API.STREAM.MSG.DELETE.{TOPOLOGY.dead_letter_stream}",
    )
    return NatsUser("operator", "", publish, ("_INBOX.>",), allow_responses=False)


def subscriber_comment(subscriber: Subscriber) -> str:
    events = ", ".join(subscriber.events)
    text = f"external subscriber {subscriber.name} (pii {subscriber.pii.value}): its feed of {events}"
    if subscriber.referral_target:
        text += f"; answers the referrals of {subscriber.referral_target}"
    return text


def _quoted(items: tuple[str, ...], indent: str) -> str:
    return "\n".join(f'{indent}"{item}",' for item in items)


def user_block(user: NatsUser, comment: str = "") -> str:
    lines = [f"      # {comment}"] if comment else []
    lines += [
        "      {",
        f"        user: {user.name}",
        f"        password: ${password_variable(user.name)}",
        "        permissions {",
        "          publish {",
        "            allow: [",
        _quoted(user.publish, "              "),
        "            ]",
        "          }",
        "          subscribe {",
        "            allow: [",
        _quoted(user.subscribe, "              "),
        "            ]",
        "          }",
    ]
    if user.allow_responses:
        lines.append("          allow_responses: true")
    lines += ["        }", "      }"]
    return "\n".join(lines)


def render(path: Path = SUBSCRIBERS_FILE) -> str:
    services = [service_user(name, "", TOPOLOGY) for name in SERVICES]
    blocks = [user_block(u, f"service {u.name}: its own events, dead letters, work items and commands")
              for u in services]
    blocks.append(user_block(operator_user(), "operators (runbook): commands and stream state; no event"))
    blocks.append("      # break-glass administration (stream repair, leader step-down); incidents only\n"
                  f"      {{ user: admin, password: ${password_variable('admin')} }}")
    webhooks: list[str] = []
    for subscriber in subscribers(path):
        user = subscriber_user(subscriber, "", TOPOLOGY)
        if user is None:
            webhooks.append(subscriber.name)
            continue
        blocks.append(user_block(user, subscriber_comment(subscriber)))
    if webhooks:
        blocks.append(f"      # webhook subscribers (no NATS user; the notification service posts to them): "
                      f"{', '.join(webhooks)}")
    return (
        "# GENERATED by deploy/nats/render_accounts.py from puskesos_shared.permissions and\n"
        "# deploy/nats/subscribers.json: do not edit.\n"
        "#   uv run python deploy/nats/render_accounts.py > deploy/nats/accounts.conf\n"
        "# Accounts, users and permissions of the Puskesos NATS cluster (included by nats.conf).\n"
        "# Passwords are read from the environment (NATS_<USER>_PASSWORD, generated by\n"
        "# deploy/gen_secrets.py); none is in this file.\n"
        "\n"
        "system_account: SYS\n"
        "\n"
        "accounts {\n"
        "  SYS {\n"
        f"    users: [ {{ user: sys, password: ${password_variable('sys')} }} ]\n"
        "  }\n"
        "\n"
        f"  {ACCOUNT} {{\n"
        "    jetstream: enabled\n"
        "    users: [\n"
        + "\n".join(blocks) + "\n"
        "    ]\n"
        "  }\n"
        "}\n"
    )


if __name__ == "__main__":
    sys.stdout.write(render())
