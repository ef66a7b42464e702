"""Work items of the distribution work queue: allocate one candidate, disburse one allocation.

They reuse the event envelope (id, correlation = the round, causation, actor) so that the kit's
``process_delivery`` can run them and bind their ids to every log line, but they are commands
to this service, not domain events: they travel only on the service's own work-queue stream
and are not part of the published contracts.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any, ClassVar, Literal

from puskesos_shared.contracts.distribution import AllocationBasis, PayoutTarget
from puskesos_shared.contracts.envelope import Actor, Contract, Event
from puskesos_shared.contracts.primitives import NIK, KKNumber, Rupiah, ShortText, VillageCode
from puskesos_shared.contracts.registry import InvalidMessage, describe_validation_error
from puskesos_shared.ids import stable_id
from pydantic import Field, ValidationError


class Candidate(Contract):
    """A family proposed for a round: from an import row or from an eligible assessment."""

    candidate_id: str = Field(min_length=1, max_length=120, description="import:{batch}:{row} or assess:{event}")
    round_id: uuid.UUID
    kk_number: KKNumber
    head_nik: NIK
    recipient_name: ShortText
    village_code: VillageCode
    payout: PayoutTarget
    basis: AllocationBasis


class WorkItem(Event):
    PRODUCER: ClassVar[str] = "distribution"
    SUBJECT_NAME: ClassVar[str] = "work"
    KIND: ClassVar[str]


class AllocateCandidate(WorkItem):
    KIND: ClassVar[str] = "allocate"
    event_type: Literal["AllocateCandidate"] = "AllocateCandidate"
    schema_version: Literal[1] = 1
    data: Candidate


class Disbursement(Contract):
    allocation_id: uuid.UUID
    round_id: uuid.UUID
    kk_number: KKNumber
    amount: Rupiah = Field(gt=0)
    payout: PayoutTarget
    allocated_event_id: uuid.UUID


class DisburseAllocation(WorkItem):
    KIND: ClassVar[str] = "disburse"
    event_type: Literal["DisburseAllocation"] = "DisburseAllocation"
    schema_version: Literal[1] = 1
    data: Disbursement


WORK_TYPES: dict[str, type[WorkItem]] = {"AllocateCandidate": AllocateCandidate,
                                         "DisburseAllocation": DisburseAllocation}


def allocate_item(candidate: Candidate, *, actor: Actor, causation_id: str | None,
                  now: dt.datetime) -> AllocateCandidate:
    return AllocateCandidate(
        event_id=stable_id("work", "allocate", candidate.round_id, candidate.candidate_id),
        occurred_at=now, producer="distribution", correlation_id=str(candidate.round_id),
        causation_id=causation_id, actor=actor, village_code=candidate.village_code, data=candidate,
    )


def disburse_item(data: Disbursement, *, actor: Actor, village_code: str, now: dt.datetime) -> DisburseAllocation:
    return DisburseAllocation(
        event_id=stable_id("work", "disburse", data.allocation_id), occurred_at=now, producer="distribution",
        correlation_id=str(data.round_id), causation_id=str(data.allocated_event_id), actor=actor,
        village_code=village_code, data=data,
    )


def decode_work_item(body: bytes) -> WorkItem:
    """Parses a work item or raises ``InvalidMessage`` (dead-lettered with the reason)."""
    try:
        raw: Any = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidMessage(f"malformed JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise InvalidMessage(f"a work item is a JSON object, got {type(raw).__name__}")
    kind, version = raw.get("event_type"), raw.get("schema_version")
    model = WORK_TYPES.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise InvalidMessage(f"unknown work item type {kind!r}")
    if version != 1:
        raise InvalidMessage(f"unknown schema_version {version!r} of {kind}; this release reads [1]")
    try:
        return model.read(raw)
    except ValidationError as exc:
        raise InvalidMessage(f"{kind} v1 does not match its schema: {describe_validation_error(exc)}") from None
