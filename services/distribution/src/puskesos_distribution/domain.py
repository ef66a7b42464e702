"""Pure rules of aid distribution: rounds, eligibility re-check, the events a decision produces.

No I/O here: the clock is a parameter and every id is derived from stable keys, so handling the
same work item twice builds the same documents and the same events.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from enum import StrEnum

from puskesos_shared.contracts.distribution import (
    AidAllocated,
    AidAllocatedData,
    AidAllocationRejected,
    AidAllocationRejectedData,
    AidDisbursed,
    AidDisbursedData,
    AidRoundOpenedData,
    CandidateSource,
    DisbursementFailed,
    DisbursementFailedData,
    RejectionReason,
    VillagesWithoutQuota,
)
from puskesos_shared.contracts.envelope import Actor
from puskesos_shared.ids import derived_event_id, stable_id

from .workitems import AllocateCandidate, DisburseAllocation

PRODUCER = "distribution"
SYSTEM = Actor.system("distribution")

#: Versions of the allocation rule a round may name. @1: with village quotas, a family of a village without
#: one is rejected as ``not_eligible``. @2 (current): the operator chooses whether such villages are unlimited
#: or excluded, and an excluded family's reason is ``no_village_quota``. Earlier rounds keep their version,
#: so that their replays still match.
RULE_V1 = "blt-eligibility@1"
CURRENT_RULE = "blt-eligibility@2"
ALLOCATION_RULES = (RULE_V1, CURRENT_RULE)


def stored_time(value: dt.datetime) -> dt.datetime:
    """A time as MongoDB keeps it (UTC-aware, whole milliseconds): events rebuilt from a record
    read back later are byte-identical to the ones first published."""
    value = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


class RoundStatus(StrEnum):
    OPEN = "open"
    CLOSING = "closing"  # no new allocations; waiting for the work to drain
    CLOSED = "closed"


def round_id_for(key: str) -> uuid.UUID:
    """A round's id from the operator's key (``jember-dbhcht-2022-11``): opening twice is one round."""
    return stable_id("aid-round", key)


def allocation_id_for(round_id: uuid.UUID, kk_number: str) -> uuid.UUID:
    """One allocation per family (KK) per round."""
    return stable_id("allocation", round_id, kk_number)


@dataclass(frozen=True, slots=True)
class RoundView:
    """What allocation needs to know about a round."""

    round_id: uuid.UUID
    status: RoundStatus
    amount_per_family: int
    budget_slots: int
    quotas: dict[str, int]
    rule_version: str
    program: str
    #: What the round does with a village that has no quota (``AidRoundOpenedData.without_quota``).
    without_quota: VillagesWithoutQuota

    @classmethod
    def of(cls, config: AidRoundOpenedData, status: RoundStatus) -> RoundView:
        return cls(
            round_id=config.round_id, status=status, amount_per_family=config.amount_per_family,
            budget_slots=config.budget_cap // config.amount_per_family,
            quotas={q.village_code: q.max_families for q in config.village_quotas},
            rule_version=config.eligibility_rule_version, program=config.program.value,
            without_quota=config.without_quota(),
        )

    def quota_of(self, village: str) -> int | None:
        """The village's own quota (None: it has none)."""
        return self.quotas.get(village)

    def excludes(self, village: str) -> bool:
        """Whether the round rejects the village's families for want of a quota."""
        return village not in self.quotas and self.without_quota is VillagesWithoutQuota.EXCLUDED


@dataclass(frozen=True, slots=True)
class HouseholdView:
    """The latest revision of a household in this service's projection."""

    kk_number: str
    revision: int
    village_code: str
    head_nik: str
    head_name: str


@dataclass(frozen=True, slots=True)
class AssessmentView:
    """The latest assessment of a family: eligibility by program (a program it is silent on is absent)."""

    event_id: uuid.UUID
    kk_number: str
    eligibility: dict[str, bool]
    rule_set_version: str
    occurred_at: dt.datetime

    def eligible_for(self, program: str) -> bool | None:
        return self.eligibility.get(program)


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: RejectionReason
    detail: str


def check_candidate(
    item: AllocateCandidate, round_: RoundView, household: HouseholdView | None, assessment: AssessmentView | None
) -> Rejection | None:
    """The eligibility re-check at allocation time (budget and quota come after, in the store)."""
    c = item.data
    if round_.status is not RoundStatus.OPEN:
        return Rejection(RejectionReason.ROUND_CLOSED, f"round is {round_.status.value}")
    verdict = assessment.eligible_for(round_.program) if assessment is not None else None
    if c.basis.source is CandidateSource.ASSESSMENT:
        if verdict is not True:
            return Rejection(RejectionReason.NOT_ELIGIBLE, "the latest assessment does not find the family "
                             f"eligible for {round_.program}")
        if household is None:
            return Rejection(RejectionReason.NOT_ELIGIBLE, "the household is not in the registry projection")
    elif verdict is False and assessment is not None:
        return Rejection(RejectionReason.NOT_ELIGIBLE, f"assessment {assessment.event_id} "
                         f"({assessment.rule_set_version}) found the family not eligible for {round_.program}")
    village = village_of(item, household)
    if round_.excludes(village):
        if round_.rule_version == RULE_V1:  # its rounds said "not eligible"; replays of them expect it
            return Rejection(RejectionReason.NOT_ELIGIBLE, f"village {village} has no quota in this round")
        return Rejection(RejectionReason.NO_VILLAGE_QUOTA, f"village {village} has no quota in this round, and "
                         "villages without one are excluded")
    return None


def village_of(item: AllocateCandidate, household: HouseholdView | None) -> str:
    """Where the family lives now: the registry's latest revision wins over the candidate's snapshot."""
    if item.data.basis.source is CandidateSource.ASSESSMENT and household is not None:
        return household.village_code
    return item.data.village_code


def allocated_event(item: AllocateCandidate, village: str, amount: int, now: dt.datetime) -> AidAllocated:
    c = item.data
    return AidAllocated(
        event_id=derived_event_id(item.event_id, "allocated"), occurred_at=now, producer=PRODUCER,
        correlation_id=str(c.round_id), causation_id=str(item.event_id), actor=item.actor, village_code=village,
        data=AidAllocatedData(
            allocation_id=allocation_id_for(c.round_id, c.kk_number), round_id=c.round_id,
            kk_number=c.kk_number, head_nik=c.head_nik, recipient_name=c.recipient_name, village_code=village,
            amount=amount, payout=c.payout, basis=c.basis,
        ),
    )


def rejected_event(item: AllocateCandidate, village: str, rejection: Rejection, now: dt.datetime
                   ) -> AidAllocationRejected:
    c = item.data
    return AidAllocationRejected(
        event_id=derived_event_id(item.event_id, "rejected"), occurred_at=now, producer=PRODUCER,
        correlation_id=str(c.round_id), causation_id=str(item.event_id), actor=item.actor, village_code=village,
        data=AidAllocationRejectedData(
            round_id=c.round_id, kk_number=c.kk_number, village_code=village, reason=rejection.reason,
            detail=rejection.detail[:500], basis=c.basis,
        ),
    )


def disbursed_event(item: DisburseAllocation, *, gateway: str, reference: str, attempts: int,
                    executed_at: dt.datetime) -> AidDisbursed:
    d = item.data
    return AidDisbursed(
        event_id=derived_event_id(item.event_id, "disbursed"), occurred_at=executed_at, producer=PRODUCER,
        correlation_id=str(d.round_id), causation_id=str(item.event_id), actor=SYSTEM,
        village_code=item.village_code,
        data=AidDisbursedData(
            disbursement_id=stable_id("disbursement", d.allocation_id), allocation_id=d.allocation_id,
            round_id=d.round_id, kk_number=d.kk_number, amount=d.amount, gateway=gateway,
            gateway_reference=reference, attempts=attempts, disbursed_at=executed_at,
        ),
    )


def failed_event(item: DisburseAllocation, *, gateway: str, reason: str, attempts: int, final: bool,
                 now: dt.datetime) -> DisbursementFailed:
    d = item.data
    return DisbursementFailed(
        event_id=derived_event_id(item.event_id, f"failed:{attempts}"), occurred_at=now, producer=PRODUCER,
        correlation_id=str(d.round_id), causation_id=str(item.event_id), actor=SYSTEM,
        village_code=item.village_code,
        data=DisbursementFailedData(
            allocation_id=d.allocation_id, round_id=d.round_id, kk_number=d.kk_number, amount=d.amount,
            gateway=gateway, reason=reason[:500] or "unknown", attempts=attempts, final=final,
        ),
    )
