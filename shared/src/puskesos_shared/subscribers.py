"""External subscribers: who may read which events, how, and with how much personal data.

A subscriber (a hospital, the Dinas Sosial's data system, a bank, the Ministry's reporting) is
declared once, in a ``SubscriberBook`` file. The local stack's ``subscribers.json`` (edited by
``puskesos subscribers add / revoke``) and production's ``deploy/nats/subscribers.json`` (checked
in and reviewed) have the same format, and the same code renders them: into NATS users
(``permissions.subscriber_user``) and into the notification service's feeds (``puskesos_notification.feeds``).

Two ways to receive events:

* **NATS**: the notification service relays each granted event into the subscriber's own feed,
  ``{ns}.feed.{name}.{producer}.{event}.v{n}`` in the ``{NS}_FEEDS`` stream, and the subscriber reads
  it through its one durable consumer (named as the subscriber). Its NATS user may create, read and
  delete only that consumer, with a filter inside its own feed, and publish nothing else; a referral
  target may in addition answer the referrals issued to it (``respond_subject``).
* **Webhook**: the notification service POSTs each granted event as a CloudEvents 1.0 JSON document
  to the subscriber's HTTPS URL, signed (``signature_header``), at least once and in order.

Personal data (UU No. 27/2022): ``pii`` is ``none`` (no identifier, no personal data),
``pseudonymous`` (a keyed pseudonym per subscriber in place of each NIK, KK and phone number;
names, addresses, birth dates and free text removed) or ``full`` (the stored event as it is). JetStream
delivers stored bytes as they are, which is why even a ``full`` subscriber reads a relayed copy: one
path for every subscriber, and the events stream itself is never exposed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import os
import re
from collections.abc import Iterable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .contracts.pseudonymous import PiiLevel
from .permissions import SERVICES, NatsUser
from .topology import Topology

NAME = re.compile(r"^[a-z][a-z0-9-]{1,39}$")
TARGET_CODE = re.compile(r"^[A-Za-z0-9_-]{1,50}$")
_TOKEN = re.compile(r"^[a-z][a-z0-9_]*$")
_VERSION = re.compile(r"^v[0-9]+$")

#: The webhook signature header: ``t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``.
SIGNATURE_HEADER = "Puskesos-Signature"
#: A receiver refuses a signature older (or newer) than this many seconds: a replayed request fails.
SIGNATURE_TOLERANCE_SECONDS = 300


class DeliveryKind(StrEnum):
    NATS = "nats"
    WEBHOOK = "webhook"


def check_event_pattern(pattern: str) -> str:
    """An event pattern relative to ``{ns}.events.``: ``>``, ``referral.>``, ``intake.complaint_filed.v1``,
    ``distribution.*.v1``; the producer is a service (or a wildcard)."""
    tokens = pattern.split(".")
    if not tokens or any(not t for t in tokens):
        raise ValueError(f"event pattern {pattern!r} has an empty token")
    for i, part in enumerate(tokens):
        if part == ">":
            if i != len(tokens) - 1:
                raise ValueError(f"event pattern {pattern!r}: '>' must be the last token")
        elif part == "*":
            continue
        elif i == 0 and part not in SERVICES:
            raise ValueError(f"event pattern {pattern!r}: {part!r} is not a service ({', '.join(SERVICES)})")
        elif i == 2 and not _VERSION.fullmatch(part):
            raise ValueError(f"event pattern {pattern!r}: the third token is a version such as v1")
        elif i == 1 and not _TOKEN.fullmatch(part):
            raise ValueError(f"event pattern {pattern!r}: {part!r} is not an event name (lower_snake_case)")
    if len(tokens) > 3 or (len(tokens) < 3 and tokens[-1] != ">"):
        raise ValueError(f"event pattern {pattern!r}: give producer.event.vN, producer.> or >")
    return pattern


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Subscriber(BaseModel):
    """One external subscriber, as declared."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="Lower-case letters, digits and '-'; the NATS user and consumer name")
    events: tuple[str, ...] = Field(min_length=1, description="Event patterns relative to {ns}.events.")
    pii: PiiLevel = Field(default=PiiLevel.NONE, description="Personal data it may receive")
    webhook_url: str | None = Field(default=None, description="HTTPS endpoint; none: it reads a NATS feed")
    referral_target: str | None = Field(default=None, description="Referral target code it answers for")
    description: str = Field(default="", max_length=200)
    added_at: dt.datetime | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.fullmatch(value):
            raise ValueError("2-40 characters: lower-case letters, digits and '-', starting with a letter")
        return value

    @field_validator("events")
    @classmethod
    def _events(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(check_event_pattern(p) for p in value))

    @field_validator("webhook_url")
    @classmethod
    def _webhook(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("give an https:// URL")
        if parts.scheme == "http" and not _loopback(parts.hostname):
            raise ValueError("plain http is allowed only to this machine (localhost); use https")
        if parts.username or parts.password:
            raise ValueError("no credentials in the URL: deliveries are signed instead")
        return value

    @field_validator("referral_target")
    @classmethod
    def _target(cls, value: str | None) -> str | None:
        if value is not None and not TARGET_CODE.fullmatch(value):
            raise ValueError("a referral target code: letters, digits, '-' or '_' (for example RSD-SOEBANDI)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.referral_target and self.webhook_url:
            raise ValueError("a referral target answers over NATS; give it no webhook")
        return self

    @property
    def delivery(self) -> DeliveryKind:
        return DeliveryKind.WEBHOOK if self.webhook_url else DeliveryKind.NATS

    @property
    def inbox_prefix(self) -> str:
        """Its private inbox prefix: replies (pull fetches, command answers) nobody else may read."""
        return f"_INBOX_{self.name}"

    @property
    def relay_consumer(self) -> str:
        """The notification service's durable consumer on the events stream for this subscriber."""
        return f"{self.delivery.value}-{self.name}"

    def event_filters(self, topology: Topology) -> list[str]:
        return [f"{topology.namespace}.events.{pattern}" for pattern in self.events]

    def feed_filter(self, topology: Topology) -> str:
        return f"{topology.feed_prefix(self.name)}.>"


def respond_subject(topology: Topology, target: str) -> str:
    """Where a referral target answers the referrals issued to it: the target code is the subject's
    last token, so NATS permissions, not the message, say who is answering."""
    if not TARGET_CODE.fullmatch(target):
        raise ValueError(f"referral target {target!r} cannot be a subject token")
    return f"{topology.command_subject('referral', 'respond_referral')}.{target}"


class SubscriberBook:
    """The declarations file: ``{"subscribers": [...]}``, sorted by name, written atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> list[Subscriber]:
        if not self.path.exists():
            return []
        data = json.loads(self.path.read_text())
        return [Subscriber.model_validate(item) for item in data.get("subscribers", [])]

    def get(self, name: str) -> Subscriber | None:
        return next((s for s in self.load() if s.name == name), None)

    def save(self, subscribers: Iterable[Subscriber]) -> None:
        items = sorted(subscribers, key=lambda s: s.name)
        body = {"subscribers": [s.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
                                | {"name": s.name, "events": list(s.events), "pii": s.pii.value} for s in items]}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n")
        os.replace(tmp, self.path)


class SubscriberSecrets:
    """Per subscriber: its NATS password and its webhook signing secret (a 0600 file; a Kubernetes Secret
    in production). Only the notification service reads the signing secrets."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, dict[str, str]]:
        if not self.path.exists():
            return {}
        data: dict[str, dict[str, str]] = json.loads(self.path.read_text())
        return data

    def save(self, secrets: Mapping[str, Mapping[str, str]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({k: dict(v) for k, v in sorted(secrets.items())}, out, indent=2)
        os.replace(tmp, self.path)

    def webhook_secret(self, name: str) -> bytes | None:
        secret = self.load().get(name, {}).get("webhook_secret")
        return secret.encode() if secret else None


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    """The ``Puskesos-Signature`` value of a webhook body sent at ``timestamp`` (unix seconds)."""
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: bytes, body: bytes, header: str, *, now: float,
           tolerance: int = SIGNATURE_TOLERANCE_SECONDS) -> bool:
    """What a receiver checks: the signature matches and is recent (so a captured request cannot be replayed)."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, body, timestamp), f"t={timestamp},v1={fields.get('v1', '')}")


def credentials(subscriber: Subscriber, topology: Topology, *, nats_url: str, password: str | None,
                webhook_secret: str | None) -> dict[str, Any]:
    """What a subscriber's operator receives (written 0600): how to connect, what it may read."""
    out: dict[str, Any] = {"subscriber": subscriber.name, "pii": subscriber.pii.value,
                           "events": list(subscriber.events), "delivery": subscriber.delivery.value}
    if subscriber.delivery is DeliveryKind.NATS:
        out |= {"nats_url": nats_url, "user": subscriber.name, "password": password,
                "inbox_prefix": subscriber.inbox_prefix, "stream": topology.feeds_stream,
                "consumer": subscriber.name, "filter_subject": subscriber.feed_filter(topology)}
        if subscriber.referral_target:
            out["respond_subject"] = respond_subject(topology, subscriber.referral_target)
    else:
        out |= {"webhook_url": subscriber.webhook_url, "signing_secret": webhook_secret,
                "signature_header": SIGNATURE_HEADER, "signature_tolerance_seconds": SIGNATURE_TOLERANCE_SECONDS}
    return out


def subscriber_user(subscriber: Subscriber, password: str, topology: Topology) -> NatsUser | None:
    """The NATS user of a feed subscriber (None for a webhook subscriber: it gets no NATS access).

    It may create, inspect, read and delete its one durable consumer on ``{NS}_FEEDS``, named as itself,
    with a filter inside its own feed (the filter is part of the API subject, so the server refuses any
    other), acknowledge what it read, and receive on its private inbox. It publishes nothing else: no
    event, no command, no direct message read; a referral target may also answer its own referrals.
    """
    if subscriber.delivery is not DeliveryKind.NATS:
        return None
    feeds, name = topology.feeds_stream, subscriber.name
    publish = [
        "$JS.API.INFO",
        f"$JS.API.STREAM.INFO.{feeds}",
        f"$JS.API.CONSUMER.CREATE.{feeds}.{name}.{subscriber.feed_filter(topology)}",
        f"$JS.API.CONSUMER.INFO.{feeds}.{name}",
        f"$JS.API.CONSUMER.DELETE.{feeds}.{name}",
        f"$JS.API.CONSUMER.MSG.NEXT.{feeds}.{name}",
        f"$JS.ACK.{feeds}.{name}.>",
    ]
    if subscriber.referral_target:
        publish.append(respond_subject(topology, subscriber.referral_target))
    return NatsUser(name, password, tuple(publish), (f"{subscriber.inbox_prefix}.>",), allow_responses=False)
