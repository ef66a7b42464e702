"""The envelope every event carries, the base class of every event contract, and open enums.

Strict writers, tolerant readers. Building a contract model (a producer) rejects a field it
does not know and a value outside an enum. ``Contract.read`` (what ``decode_event`` uses for a
received message) ignores fields it does not know, at every depth, and keeps a value of an
``OpenEnum`` it does not know as an unknown member: a newer producer may add an optional field
or a value of an open enum without breaking a consumer still on an older release. A value a
closed enum (a plain ``StrEnum``) does not know fails the contract: such a change is a new
event version. See ``shared/schemas/README.md``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from contextvars import ContextVar
from enum import StrEnum
from typing import Any, ClassVar, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, GetJsonSchemaHandler, model_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from .primitives import OfficerRole, VillageCode

#: JSON Schema keyword marking an open enum in the published schemas.
OPEN_ENUM_KEYWORD = "x-open-enum"
_READING: ContextVar[bool] = ContextVar("puskesos_contract_reading", default=False)


class Contract(BaseModel):
    """Base of every contract model: immutable, no unknown fields when built (strict writers)."""

    model_config = ConfigDict(frozen=True, extra="forbid")  # inline so the mypy plugin sees it

    @classmethod
    def read(cls, raw: Any) -> Self:
        """Validates a received message as a tolerant reader.

        Fields this release does not know are ignored at every nesting level, and a value of an
        ``OpenEnum`` it does not know becomes an unknown member; everything else is as strict
        as building the model. Raises ``pydantic.ValidationError``.
        """
        token = _READING.set(True)
        try:
            return cls.model_validate(raw, extra="ignore")
        finally:
            _READING.reset(token)


class OpenEnum(StrEnum):
    """An enum a producer may extend within an event version (``x-open-enum`` in the schema).

    A reader (``Contract.read``) keeps a value it does not know as an unknown member: an
    instance of the enum whose ``known`` is false, which compares and serializes as the raw
    string and is not among the enum's members. A reader records, counts or shows such a value,
    and never takes a decision only a known value justifies. Building a model with an unknown
    value fails, as for any enum. Closed enums (plain ``StrEnum``) are the ones readers branch
    on; a new value of one needs a new event version.
    """

    @classmethod
    def _missing_(cls, value: object) -> Self | None:
        if not (_READING.get() and isinstance(value, str)):
            return None
        member = str.__new__(cls, value)
        member._name_ = "UNKNOWN"
        member._value_ = value
        return member

    @property
    def known(self) -> bool:
        """False for a value a newer producer added that this release does not know."""
        return self._value_ in type(self)._value2member_map_

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        json_schema = handler(schema)
        handler.resolve_ref_schema(json_schema)[OPEN_ENUM_KEYWORD] = True
        return json_schema


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
