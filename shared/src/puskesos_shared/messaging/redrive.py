"""Which consumers of this process a dead letter can be re-driven to, and how.

A re-drive runs one dead letter through the consumer that gave up on it, and only that consumer:
nothing is published again on the events stream (that would store the event twice in the audit log
and hand it to every other consumer). ``subscribe_events`` registers each consumer it wires here
with the same decode + handler path as a live delivery; a service whose consumer is not an event
subscription (the notification service's ``webhook-<subscriber>`` deliveries) registers a handler of
its own by consumer name::

    runtime.redrive.register("webhook-dinsos", deliver_again)   # async def deliver_again(body, headers)

A handler gets the body byte for byte and the dead letter's headers: the original message's headers
(``Nats-Msg-Id`` set back to the original's, i.e. the event id), plus ``Puskesos-Dlq-*`` (reason,
original subject, stream and sequence, consumer, deliveries, failed at) and ``Puskesos-Redrive``
(what is re-driven: ``dlq:<sequence>`` or ``<stream>:<sequence>``). It returns once the effect is
done (handlers are idempotent by event id, so a second re-drive changes nothing) and raises when it
is not (``InvalidMessage`` when it never can be); the dead letter then stays where it is. The
``redrive`` command (``redrive_service``) serves this registry.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

import structlog

from . import headers as h

log = structlog.get_logger("puskesos.redrive")

#: ``handler(body, headers)``: runs a dead letter's body once more; raises when it fails.
RedriveHandler = Callable[[bytes, Mapping[str, str]], Awaitable[None]]

#: Header telling a handler (and its logs) that this run is a re-drive, and of what.
REDRIVE_HEADER = "Puskesos-Redrive"
#: The original message's ``Nats-Msg-Id`` as a dead letter keeps it (``dead_letter.dead_letter_headers``).
DLQ_ORIGINAL_MSG_ID = "Puskesos-Dlq-Original-Msg-Id"

_CONSUMER = re.compile(r"^[a-z][a-z0-9_-]*$")


def subject_matches(subject: str, pattern: str) -> bool:
    """NATS subject matching: ``*`` is one token, a final ``>`` one or more."""
    parts, wanted = subject.split("."), pattern.split(".")
    for i, part in enumerate(wanted):
        if part == ">":
            return len(parts) > i
        if i >= len(parts) or part not in ("*", parts[i]):
            return False
    return len(parts) == len(wanted)


@dataclass(frozen=True, slots=True)
class RedriveTarget:
    """A consumer a dead letter can be re-driven to: its handler and, for event consumers, the subjects it reads."""

    consumer: str
    handler: RedriveHandler
    subjects: tuple[str, ...] = ()

    def reads(self, subject: str) -> bool:
        """Whether the consumer would have received a message on ``subject`` (any subject when none are known)."""
        return not self.subjects or any(subject_matches(subject, p) for p in self.subjects)


class RedriveRegistry:
    """The consumers of one service process that dead letters can be re-driven to (``runtime.redrive``)."""

    def __init__(self) -> None:
        self._targets: dict[str, RedriveTarget] = {}

    def register(self, consumer: str, handler: RedriveHandler, *, subjects: Sequence[str] = ()) -> None:
        """Re-drives of ``consumer``'s dead letters run ``handler(body, headers)``; ``subjects`` (optional) are
        the subjects the consumer reads, and a re-drive of an original message on another subject is refused.
        Registering a consumer again replaces its handler."""
        if not _CONSUMER.fullmatch(consumer):
            raise ValueError(f"consumer {consumer!r} must be lower-case letters, digits, '_' or '-'")
        if consumer in self._targets:
            log.warning("redrive_handler_replaced", consumer=consumer)
        self._targets[consumer] = RedriveTarget(consumer, handler, tuple(subjects))

    def unregister(self, consumer: str) -> None:
        """Re-drives of ``consumer``'s dead letters are refused from now on (a consumer that stopped)."""
        self._targets.pop(consumer, None)

    def get(self, consumer: str) -> RedriveTarget | None:
        return self._targets.get(consumer)

    def consumers(self) -> list[str]:
        return sorted(self._targets)

    def __contains__(self, consumer: object) -> bool:
        return consumer in self._targets


def original_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The original message's headers from a re-drive's: without ``Puskesos-Dlq-*``, ``Nats-Msg-Id`` restored."""
    out = {k: v for k, v in headers.items()
           if not k.startswith("Puskesos-Dlq-") and not k.startswith("Nats-") and k != REDRIVE_HEADER}
    if msg_id := headers.get(DLQ_ORIGINAL_MSG_ID) or headers.get(h.MSG_ID):
        out[h.MSG_ID] = msg_id
    return out
