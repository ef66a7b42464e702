"""Making a feed's events safe for its subscriber.

``FeedTransform`` is a subscriber's transform: its personal-data level and its own pseudonym key, and
nothing else, so it can be sent to the worker process (``copier``; a ``Pseudonymiser`` holds hash states
that cannot). Each process builds the ``Pseudonymiser`` of a transform once and keeps it.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from puskesos_shared.contracts.pseudonymous import PiiLevel, Pseudonymiser

_PSEUDONYMISERS: dict[tuple[bytes, PiiLevel], Pseudonymiser] = {}


@dataclass(frozen=True, slots=True)
class FeedTransform:
    """One subscriber's transform: ``transform(body)`` is the copy to relay, or ``None`` (dead-letter it)."""

    level: PiiLevel
    key: bytes = b""

    def __repr__(self) -> str:  # never the key
        return f"FeedTransform(level={self.level.value!r})"

    @classmethod
    def of(cls, subscriber_name: str, level: PiiLevel, hash_secret: bytes) -> FeedTransform:
        if level is PiiLevel.FULL:
            return cls(level)
        key = hmac.new(hash_secret, f"feed-pseudonym:{subscriber_name}".encode(), hashlib.sha256).digest()
        return cls(level, key)

    def _pseudonymiser(self) -> Pseudonymiser:
        found = _PSEUDONYMISERS.get((self.key, self.level))
        if found is None:
            found = _PSEUDONYMISERS[(self.key, self.level)] = Pseudonymiser(self.key, self.level)
        return found

    def __call__(self, body: bytes) -> bytes | None:
        if self.level is PiiLevel.FULL:
            return body
        return self._pseudonymiser().transform(body)

    def many(self, bodies: list[bytes]) -> list[bytes | None]:
        if self.level is PiiLevel.FULL:
            return list(bodies)
        transform = self._pseudonymiser().transform
        return [transform(body) for body in bodies]
