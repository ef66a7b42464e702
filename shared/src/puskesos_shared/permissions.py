"""NATS users and permissions: each service may publish only its own subjects.

The same table feeds the local stack's generated ``nats-server`` configuration and the
production configuration in ``deploy/``. Passwords are generated at provisioning time and
never stored in the repository.

A service may publish its own events (``{ns}.events.{service}.>``), its own dead letters
(``{ns}.dlq.{service}.>``) and work items (``{ns}.work.{service}.>``), acknowledge JetStream
messages, use the JetStream API it needs (no stream deletion or purge), and answer the
requests it receives (``allow_responses``). It may subscribe to its own commands and to its
inboxes (pull consumers receive through inboxes). Reading other services' events happens
through JetStream consumers, which the permissions allow; publishing them does not. The few
commands a service sends to another are listed one by one (``_EXTRA_PUBLISH``): audit asks
referral for rule sets; intake asks every service for its part of a resident's data export.
External subscribers' users are ``subscribers.subscriber_user``: each reads only its own feed.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from .topology import Topology

SERVICES = ("intake", "referral", "distribution", "notification", "audit")

#: JetStream API calls a service makes (stream/consumer info and create, fetch, get).
_JS_API_SERVICE = [
    "$JS.API.INFO",
    "$JS.API.STREAM.NAMES",
    "$JS.API.STREAM.LIST",
    "$JS.API.STREAM.INFO.*",
    "$JS.API.STREAM.CREATE.*",
    "$JS.API.STREAM.UPDATE.*",
    "$JS.API.STREAM.MSG.GET.*",
    "$JS.API.DIRECT.GET.>",
    "$JS.API.CONSUMER.>",
]
#: Extra subjects per service beyond the common ones.
_EXTRA_PUBLISH: dict[str, list[str]] = {
    # history replay for late subscribers; rule sets for decision replay are asked of referral
    "audit": ["{ns}.replay.>", "{ns}.commands.referral.get_rule_set.v1"],
    # the resident data export (UU PDP): intake's edge gathers every service's part (``resident_export``)
    "intake": [f"{{ns}}.commands.{service}.export_resident.v1"
               for service in ("referral", "distribution", "notification", "audit")],
    # round status counts the running replicas: a presence request every replica answers
    "distribution": ["{ns}.commands.distribution.presence.v1"],
    # external subscribers' feeds (``subscribers``): relayed copies, and a revoked subscriber's feed purged
    "notification": ["{ns}.feed.>", "$JS.API.STREAM.PURGE.{feeds}"],
}


@dataclass(frozen=True)
class NatsUser:
    name: str
    password: str
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    allow_responses: bool = True

    def config(self) -> dict[str, Any]:
        perms: dict[str, Any] = {
            "publish": {"allow": list(self.publish)},
            "subscribe": {"allow": list(self.subscribe)},
        }
        if self.allow_responses:
            perms["allow_responses"] = True
        return {"user": self.name, "password": self.password, "permissions": perms}


def service_user(service: str, password: str, topology: Topology) -> NatsUser:
    ns = topology.namespace
    publish = [
        f"{ns}.events.{service}.>",
        f"{ns}.dlq.{service}.>",
        f"{ns}.work.{service}.>",
        "$JS.ACK.>",
        *_JS_API_SERVICE,
        *(s.format(ns=ns, feeds=topology.feeds_stream) for s in _EXTRA_PUBLISH.get(service, [])),
    ]
    subscribe = ["_INBOX.>", f"{ns}.commands.{service}.>"]
    return NatsUser(service, password, tuple(publish), tuple(subscribe))


def admin_user(password: str) -> NatsUser:
    """Provisioning and operator tools (stream creation, the CLI, commands to any service)."""
    return NatsUser("admin", password, (">",), (">",))


def generate_passwords(names: list[str]) -> dict[str, str]:
    return {name: secrets.token_urlsafe(24) for name in names}


def nats_authorization(users: list[NatsUser]) -> dict[str, Any]:
    """The ``authorization`` block of a nats-server configuration with these users."""
    return {"users": [u.config() for u in users]}


def nats_config(users: list[NatsUser], *, store_dir: str, sync_always: bool = False) -> str:
    """A nats-server configuration (JSON is valid NATS config syntax) with JetStream and these users
    (a local cluster's nodes get ``nats_authorization`` instead: see ``localstack.start_nats_cluster``)."""
    jetstream: dict[str, Any] = {"store_dir": store_dir}
    if sync_always:
        jetstream["sync_interval"] = "always"
    return json.dumps({"jetstream": jetstream, "authorization": nats_authorization(users)}, indent=2)
