"""The envelope every event carries, and the base class of every event contract."""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum
from typing import ClassVar, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from .primitives import OfficerRole, VillageCode

FROZEN = ConfigDict(frozen=True, extra="forbid")


class Contract(BaseModel):
    """Base of every contract model: immutable, no unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")  # inline so the mypy plugin sees it


class ActorKind(StrEnum):
    OFFICER = "officer"
    SYSTEM = "system"
    EXTERNAL = "external"  # a hospital, a bank, the national registry


class Actor(Contract):
    """Who caused the event: an officer (with role) or a system."""

    kind: ActorKind
    id: str = Field(min_length=1, max_length=100)
    role: OfficerRole | None = None

    @model_validator(mode="after")
    def _officers_have_roles(self) -> Self:
        if self.kind is ActorKind.OFFICER and self.role is None:
            raise ValueError("an officer actor needs a role")
        return self

    @classmethod
    def system(cls, name: str) -> Actor:
        return cls(kind=ActorKind.SYSTEM, id=name)


class Event(Contract):
    """Envelope fields; each event subclass narrows ``event_type`` and ``schema_version`` and adds ``data``.

    ``correlation_id`` groups everything about one case or one aid round; ``causation_id``
    is the id of the event or command that caused this one, so the audit service can walk
    a decision back to its roots.
    """

    #: The producing service and the event's subject token, set by each subclass.
    PRODUCER: ClassVar[str]
    SUBJECT_NAME: ClassVar[str]

    event_id: uuid.UUID
    event_type: str
    schema_version: int
    occurred_at: AwareDatetime
    producer: str = Field(min_length=1, max_length=50)
    correlation_id: str = Field(min_length=1, max_length=200)
    causation_id: str | None = Field(default=None, max_length=200)
    actor: Actor
    village_code: VillageCode | None = None

    @model_validator(mode="after")
    def _producer_matches(self) -> Self:
        expected = getattr(type(self), "PRODUCER", None)
        if expected is not None and self.producer != expected:
            raise ValueError(f"{self.event_type} is produced by {expected!r}, not {self.producer!r}")
        return self

    def subject_parts(self) -> tuple[str, str, int]:
        return type(self).PRODUCER, type(self).SUBJECT_NAME, self.schema_version


class EventMeta(Contract):
    """The envelope fields a producer supplies; ``build_event`` combines them with data."""

    event_id: uuid.UUID
    occurred_at: AwareDatetime
    correlation_id: str
    causation_id: str | None = None
    actor: Actor
    village_code: VillageCode | None = None


def utc_now() -> dt.datetime:
    """The default clock. Domain code receives a clock instead of calling this."""
    return dt.datetime.now(dt.UTC)
