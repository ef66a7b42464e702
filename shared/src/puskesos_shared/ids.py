"""Deterministic identifiers.

At-least-once delivery means every handler may run twice. Ids derived from stable keys
(uuid5) make the second run produce the same documents and the same events, so unique
indexes and the broker's duplicate window turn the repeat into a no-op.
"""

from __future__ import annotations

import uuid

#: Namespace of every Puskesos uuid5. Never change it: ids derived from it are stored.
PUSKESOS_NAMESPACE = uuid.UUID("6f1f6a52-3c1e-5b8e-9f4d-2a7c0e9b1d35")


def stable_id(kind: str, *keys: object) -> uuid.UUID:
    """A uuid5 from a kind and stable keys: ``stable_id("allocation", round_id, kk)``.

    Keys are joined with a separator that cannot occur in their text form, so
    ``("a|b", "c")`` and ``("a", "b|c")`` give different ids.
    """
    if not kind:
        raise ValueError("kind must not be empty")
    parts = [kind, *(str(k) for k in keys)]
    for part in parts:
        if "\x1f" in part:
            raise ValueError("id keys must not contain the unit separator (0x1f)")
    return uuid.uuid5(PUSKESOS_NAMESPACE, "\x1f".join(parts))


def derived_event_id(cause_event_id: uuid.UUID | str, purpose: str) -> uuid.UUID:
    """The id of the event that handling ``cause_event_id`` produces for ``purpose``.

    Handling the same input twice yields the same output event id, which the broker
    de-duplicates through ``Nats-Msg-Id``.
    """
    return stable_id("derived-event", cause_event_id, purpose)


def new_id() -> uuid.UUID:
    """A random id, for things with no natural key (a fresh command from a person)."""
    return uuid.uuid4()
