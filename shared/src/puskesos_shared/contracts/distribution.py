"""Events of the distribution service: aid rounds, allocations, disbursements."""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum
from typing import ClassVar, Literal, Self

from pydantic import AwareDatetime, Field, model_validator

from .envelope import Contract, Event, OpenEnum
from .primitives import NIK, KKNumber, Program, Rupiah, ShortText, VillageCode, identifier, personal


class FundingSource(StrEnum):
    DBHCHT = "DBHCHT"  # Dana Bagi Hasil Cukai Hasil Tembakau (tobacco excise revenue share)
    DID = "DID"  # Dana Insentif Daerah (regional incentive fund)
    APBD = "APBD"  # regional budget
    APBN = "APBN"  # national budget
    DANA_DESA = "DANA_DESA"  # village fund


class VillageQuota(Contract):
    village_code: VillageCode
    max_families: int = Field(ge=0)


class VillagesWithoutQuota(StrEnum):
    """What a round with village quotas does with a family of a village that has none (the operator's choice)."""

    UNLIMITED = "unlimited"  # such villages share the budget without a cap of their own
    EXCLUDED = "excluded"  # such villages get no allocation (reason ``no_village_quota``)


class AidRoundOpenedData(Contract):
    round_id: uuid.UUID
    name: ShortText
    program: Program
    funding_source: FundingSource
    amount_per_family: Rupiah = Field(gt=0)
    budget_cap: Rupiah = Field(gt=0)
    village_quotas: tuple[VillageQuota, ...] = ()
    villages_without_quota: VillagesWithoutQuota | None = Field(
        default=None, description="With village quotas: whether the other villages are unlimited or excluded. "
        "Absent in rounds of rule version blt-eligibility@1, where they are excluded (reason not_eligible).")
    eligibility_rule_version: str = Field(pattern=r"^[a-z0-9_.-]+@[0-9]+$", examples=["blt-eligibility@2"])
    period_start: dt.date
    period_end: dt.date
    opened_by: str = Field(min_length=1, max_length=100)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.period_end < self.period_start:
            raise ValueError("period_end is before period_start")
        if self.budget_cap < self.amount_per_family:
            raise ValueError("budget_cap is smaller than one family's amount")
        codes = [q.village_code for q in self.village_quotas]
        if len(set(codes)) != len(codes):
            raise ValueError("a village has two quotas")
        if self.villages_without_quota is not None and not self.village_quotas:
            raise ValueError("villages_without_quota is set but no village has a quota")
        return self

    def without_quota(self) -> VillagesWithoutQuota:
        """What happens to villages without a quota (rounds before the explicit choice: excluded)."""
        if self.villages_without_quota is not None:
            return self.villages_without_quota
        return VillagesWithoutQuota.EXCLUDED if self.village_quotas else VillagesWithoutQuota.UNLIMITED


class CandidateSource(StrEnum):
    ASSESSMENT = "assessment"  # a CaseAssessed event found the family eligible
    IMPORT = "import"  # a row of a recipient list sent by the social office


class AllocationBasis(Contract):
    """What the allocation decision rests on, so that it can be re-derived."""

    source: CandidateSource
    assessment_event_id: uuid.UUID | None = None
    import_batch_id: uuid.UUID | None = None
    import_row: int | None = Field(default=None, ge=1)
    rule_set_version: str = Field(pattern=r"^[a-z0-9_.-]+@[0-9]+$")

    @model_validator(mode="after")
    def _source_reference(self) -> Self:
        if self.source is CandidateSource.ASSESSMENT and self.assessment_event_id is None:
            raise ValueError("an assessment-based allocation names its assessment event")
        if self.source is CandidateSource.IMPORT and (self.import_batch_id is None or self.import_row is None):
            raise ValueError("an import-based allocation names its batch and row")
        return self


class PayoutMethod(StrEnum):
    BANK_ACCOUNT = "bank_account"
    COLLECTION_POINT = "collection_point"  # e.g. the post office or the kelurahan hall


class PayoutTarget(Contract):
    method: PayoutMethod
    reference: str = Field(min_length=1, max_length=100, description="Account number or collection point code",
                           json_schema_extra=identifier("payout_reference"))  # a bank account identifies its holder


class AidAllocatedData(Contract):
    allocation_id: uuid.UUID = Field(description="uuid5 of (round, KK): one allocation per family per round")
    round_id: uuid.UUID
    kk_number: KKNumber
    head_nik: NIK
    recipient_name: ShortText = Field(json_schema_extra=personal())
    village_code: VillageCode
    amount: Rupiah = Field(gt=0)
    payout: PayoutTarget
    basis: AllocationBasis


class RejectionReason(OpenEnum):
    """Why a family got no allocation. Open: a release may add a reason (readers count unknown ones)."""

    DUPLICATE_KK = "duplicate_kk"
    BUDGET_EXHAUSTED = "budget_exhausted"
    QUOTA_EXHAUSTED = "quota_exhausted"
    NOT_ELIGIBLE = "not_eligible"
    ROUND_CLOSED = "round_closed"
    #: The family's village has no quota in a round that excludes such villages (rule blt-eligibility@2).
    NO_VILLAGE_QUOTA = "no_village_quota"


class AidAllocationRejectedData(Contract):
    round_id: uuid.UUID
    kk_number: KKNumber
    village_code: VillageCode
    reason: RejectionReason
    detail: str = Field(default="", max_length=500, json_schema_extra=personal())  # free text
    basis: AllocationBasis


class AidDisbursedData(Contract):
    disbursement_id: uuid.UUID
    allocation_id: uuid.UUID
    round_id: uuid.UUID
    kk_number: KKNumber
    amount: Rupiah = Field(gt=0)
    gateway: str = Field(min_length=1, max_length=50)
    gateway_reference: str = Field(min_length=1, max_length=100)
    attempts: int = Field(ge=1)
    disbursed_at: AwareDatetime


class DisbursementFailedData(Contract):
    allocation_id: uuid.UUID
    round_id: uuid.UUID
    kk_number: KKNumber
    amount: Rupiah = Field(gt=0)
    gateway: str = Field(min_length=1, max_length=50)
    reason: str = Field(min_length=1, max_length=500, json_schema_extra=personal())  # the gateway's text
    attempts: int = Field(ge=1)
    final: bool = Field(description="False while retries remain")


class RoundTotals(Contract):
    allocated_count: int = Field(ge=0)
    allocated_amount: Rupiah
    rejected_count: int = Field(ge=0)
    rejected_by_reason: dict[RejectionReason, int] = Field(default_factory=dict)
    disbursed_count: int = Field(ge=0)
    disbursed_amount: Rupiah
    failed_count: int = Field(ge=0)
    budget_cap: Rupiah
    budget_remaining: Rupiah


class Reconciliation(Contract):
    gateway_executed_count: int = Field(ge=0)
    gateway_executed_amount: Rupiah
    matched: bool
    mismatches: tuple[str, ...] = Field(default=(), description="Allocation ids that disagree, with why")


class AidRoundClosedData(Contract):
    round_id: uuid.UUID
    closed_by: str = Field(min_length=1, max_length=100)
    totals: RoundTotals
    reconciliation: Reconciliation


class AidRoundOpened(Event):
    PRODUCER: ClassVar[str] = "distribution"
    SUBJECT_NAME: ClassVar[str] = "aid_round_opened"
    event_type: Literal["AidRoundOpened"] = "AidRoundOpened"
    schema_version: Literal[1] = 1
    data: AidRoundOpenedData


class AidAllocated(Event):
    PRODUCER: ClassVar[str] = "distribution"
    SUBJECT_NAME: ClassVar[str] = "aid_allocated"
    event_type: Literal["AidAllocated"] = "AidAllocated"
    schema_version: Literal[1] = 1
    data: AidAllocatedData


class AidAllocationRejected(Event):
    PRODUCER: ClassVar[str] = "distribution"
    SUBJECT_NAME: ClassVar[str] = "aid_allocation_rejected"
    event_type: Literal["AidAllocationRejected"] = "AidAllocationRejected"
    schema_version: Literal[1] = 1
    data: AidAllocationRejectedData


class AidDisbursed(Event):
    PRODUCER: ClassVar[str] = "distribution"
    SUBJECT_NAME: ClassVar[str] = "aid_disbursed"
    event_type: Literal["AidDisbursed"] = "AidDisbursed"
    schema_version: Literal[1] = 1
    data: AidDisbursedData


class DisbursementFailed(Event):
    PRODUCER: ClassVar[str] = "distribution"
    SUBJECT_NAME: ClassVar[str] = "disbursement_failed"
    event_type: Literal["DisbursementFailed"] = "DisbursementFailed"
    schema_version: Literal[1] = 1
    data: DisbursementFailedData


class AidRoundClosed(Event):
    PRODUCER: ClassVar[str] = "distribution"
    SUBJECT_NAME: ClassVar[str] = "aid_round_closed"
    event_type: Literal["AidRoundClosed"] = "AidRoundClosed"
    schema_version: Literal[1] = 1
    data: AidRoundClosedData
