"""Subjects and streams, in one place.

Naming rules (``ns`` is the namespace, ``puskesos`` in production; tests use a unique one each):

* events:    ``{ns}.events.{producer}.{event_name}.v{version}``, e.g.
  ``puskesos.events.intake.complaint_filed.v1``; all of them land in the ``{NS}_EVENTS`` stream.
* commands:  ``{ns}.commands.{service}.{command_name}.v{version}``, request-reply (core NATS);
  the service named in the subject is the only one that subscribes.
* dead letters: ``{ns}.dlq.{service}.{consumer}``, the ``{NS}_DLQ`` stream; the original
  subject and the reason travel in headers (see ``messaging.dead_letter``). The service token
  lets NATS permissions give each service its own dead-letter subjects.
* feeds:     ``{ns}.feed.{subscriber}.{producer}.{event_name}.v{version}``, the ``{NS}_FEEDS`` stream: the
  copies the notification service relays to an external subscriber, pseudonymised as its account says
  (see ``subscribers``). A subscriber reads only its own feed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

_TOKEN = re.compile(r"^[a-z][a-z0-9_]*$")
_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")  # consumer names may use hyphens

#: How long a subscriber's feed keeps relayed copies: a derived stream, rebuilt by a replay when needed.
FEED_MAX_AGE_SECONDS = 90 * 24 * 3600

#: How long the broker remembers a Nats-Msg-Id. Covers an outbox republish after a
#: crash and a restart later the same day; consumers are idempotent beyond it anyway.
DUPLICATE_WINDOW_SECONDS = 24 * 3600


def _token(value: str, what: str) -> str:
    if not _TOKEN.fullmatch(value):
        raise ValueError(f"{what} {value!r} must be lower_snake_case (letters, digits, underscore)")
    return value


@dataclass(frozen=True, slots=True)
class Topology:
    """Subject and stream names for one namespace."""

    namespace: str = "puskesos"
    replicas: int = 1

    def __post_init__(self) -> None:
        _token(self.namespace, "namespace")
        if self.replicas not in (1, 3, 5):
            raise ValueError("stream replicas must be 1, 3 or 5")

    # subjects -------------------------------------------------------------------------
    def event_subject(self, producer: str, event_name: str, version: int) -> str:
        return f"{self.namespace}.events.{_token(producer, 'producer')}.{_token(event_name, 'event name')}.v{version}"

    def events_of(self, producer: str) -> str:
        """Wildcard for every event of one producer (``puskesos.events.intake.>``)."""
        return f"{self.namespace}.events.{_token(producer, 'producer')}.>"

    @property
    def all_events(self) -> str:
        return f"{self.namespace}.events.>"

    def command_subject(self, service: str, command_name: str, version: int = 1) -> str:
        return f"{self.namespace}.commands.{_token(service, 'service')}.{_token(command_name, 'command')}.v{version}"

    def dead_letter_subject(self, service: str, consumer: str) -> str:
        if not _NAME.fullmatch(consumer):
            raise ValueError(f"consumer {consumer!r} must be lower-case letters, digits, '_' or '-'")
        return f"{self.namespace}.dlq.{_token(service, 'service')}.{consumer}"

    def feed_prefix(self, subscriber: str) -> str:
        """Every subject of one subscriber's feed is under this prefix (``puskesos.feed.rsud-soebandi``)."""
        if not _NAME.fullmatch(subscriber):
            raise ValueError(f"subscriber {subscriber!r} must be lower-case letters, digits, '_' or '-'")
        return f"{self.namespace}.feed.{subscriber}"

    def feed_subject(self, subscriber: str, event_subject: str) -> str:
        """The feed subject of a relayed copy of the event stored on ``event_subject``."""
        events = f"{self.namespace}.events."
        if not event_subject.startswith(events):
            raise ValueError(f"{event_subject!r} is not an event subject of namespace {self.namespace!r}")
        return f"{self.feed_prefix(subscriber)}.{event_subject[len(events):]}"

    # streams --------------------------------------------------------------------------
    @property
    def events_stream(self) -> str:
        return f"{self.namespace.upper()}_EVENTS"

    @property
    def dead_letter_stream(self) -> str:
        return f"{self.namespace.upper()}_DLQ"

    @property
    def feeds_stream(self) -> str:
        return f"{self.namespace.upper()}_FEEDS"

    def stream_configs(self) -> list[StreamConfig]:
        """The streams every environment needs; ``ensure_streams`` creates or updates them."""
        return [
            StreamConfig(
                name=self.events_stream,
                description="Puskesos domain events (all services); the audit log's source.",
                subjects=[self.all_events],
                retention=RetentionPolicy.LIMITS,
                storage=StorageType.FILE,
                num_replicas=self.replicas,
                duplicate_window=DUPLICATE_WINDOW_SECONDS,
                discard=DiscardPolicy.OLD,
                max_age=0,  # kept forever: the audit trail replays from here
                deny_delete=True,
                deny_purge=False,
            ),
            StreamConfig(
                name=self.dead_letter_stream,
                description="Messages a consumer could not process, with the reason in headers.",
                subjects=[f"{self.namespace}.dlq.>"],
                retention=RetentionPolicy.LIMITS,
                storage=StorageType.FILE,
                num_replicas=self.replicas,
                duplicate_window=DUPLICATE_WINDOW_SECONDS,
                discard=DiscardPolicy.OLD,
                max_age=0,
            ),
            StreamConfig(
                name=self.feeds_stream,
                description="Copies relayed to external subscribers, pseudonymised per subscriber (derived data).",
                subjects=[f"{self.namespace}.feed.>"],
                retention=RetentionPolicy.LIMITS,
                storage=StorageType.FILE,
                num_replicas=self.replicas,
                duplicate_window=DUPLICATE_WINDOW_SECONDS,
                discard=DiscardPolicy.OLD,
                max_age=FEED_MAX_AGE_SECONDS,
                deny_delete=True,
                deny_purge=False,  # a revoked subscriber's feed is purged
                allow_batched=True,  # the relay's fast ingest (nats-server 2.14+)
            ),
        ]
