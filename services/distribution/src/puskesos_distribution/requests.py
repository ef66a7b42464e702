"""Operator requests (NATS commands and HTTP bodies): validated before anything runs."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from puskesos_shared.contracts.distribution import FundingSource, VillageQuota, VillagesWithoutQuota
from puskesos_shared.contracts.primitives import Program, ShortText
from puskesos_shared.regions import village_exists
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from .domain import ALLOCATION_RULES, CURRENT_RULE, RULE_V1, round_id_for

RULE_VERSION = r"^[a-z0-9_.-]+@[0-9]+$"
ROUND_KEY = r"^[a-z0-9][a-z0-9_.-]{2,79}$"
#: A round's key or id as a reference: no control characters (a key with 0x1f cannot become an id).
ROUND_REF = r"^[^\x00-\x1f\x7f]+$"
MAX_IMPORT_ROWS = 1000
#: Upper bounds of the numbers stored: far above any real value, far inside MongoDB's 64-bit integers
#: (a larger number made the write fail: a 500).
MAX_RUPIAH = 10**15
MAX_COUNT = 10**9


class Request(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    token: str | None = Field(default=None, max_length=4096, description="Officer token (NATS commands only)")


class RoundRef(Request):
    round: str = Field(min_length=3, max_length=80, pattern=ROUND_REF, description="The round's id or its key")

    @property
    def round_id(self) -> uuid.UUID:
        try:
            return uuid.UUID(self.round)
        except ValueError:
            return round_id_for(self.round)


def _existing_village(quota: VillageQuota) -> VillageQuota:
    if not village_exists(quota.village_code):
        raise ValueError("not a known village code (Kemendagri)")
    if quota.max_families > MAX_COUNT:
        raise ValueError(f"max_families must be at most {MAX_COUNT}")
    return quota


class OpenRound(Request):
    """A round's settings and every rule about them, checked field by field (so that an error names the field,
    and the CLI its option): the same model serves the NATS command and ``puskesos round open``."""

    key: str = Field(pattern=ROUND_KEY, description="Operator's name for the round; opening it again is a no-op")
    name: ShortText
    program: Program = Program.BLT
    funding_source: FundingSource
    amount_per_family: int = Field(gt=0, le=MAX_RUPIAH)
    budget_cap: int = Field(gt=0, le=MAX_RUPIAH)
    period_start: dt.date
    period_end: dt.date
    eligibility_rule_version: str = Field(default=CURRENT_RULE, pattern=RULE_VERSION)
    village_quotas: tuple[Annotated[VillageQuota, AfterValidator(_existing_village)], ...] = Field(
        default=(), max_length=5000)
    villages_without_quota: VillagesWithoutQuota | None = Field(
        default=None, validate_default=True,
        description="Required with village quotas (rule @2): the other villages are unlimited (they share the "
        "budget) or excluded (rejected as no_village_quota)")

    @field_validator("budget_cap")
    @classmethod
    def _one_family_at_least(cls, budget: int, info: ValidationInfo) -> int:
        if budget < info.data.get("amount_per_family", 0):
            raise ValueError("the budget is smaller than one family's amount")
        return budget

    @field_validator("period_end")
    @classmethod
    def _after_the_start(cls, end: dt.date, info: ValidationInfo) -> dt.date:
        start = info.data.get("period_start")
        if start is not None and end < start:
            raise ValueError("the last day is before the first day")
        return end

    @field_validator("eligibility_rule_version")
    @classmethod
    def _known_rule(cls, version: str) -> str:
        if version not in ALLOCATION_RULES:
            raise ValueError(f"unknown allocation rule; this release knows {', '.join(ALLOCATION_RULES)}")
        return version

    @field_validator("village_quotas")
    @classmethod
    def _one_quota_a_village(cls, quotas: tuple[VillageQuota, ...]) -> tuple[VillageQuota, ...]:
        codes = [q.village_code for q in quotas]
        if twice := sorted({c for c in codes if codes.count(c) > 1}):
            raise ValueError(f"village {', '.join(twice)} has two quotas")
        return quotas

    @field_validator("villages_without_quota")
    @classmethod
    def _quota_choice(cls, choice: VillagesWithoutQuota | None, info: ValidationInfo) -> VillagesWithoutQuota | None:
        rule, quotas = info.data.get("eligibility_rule_version"), info.data.get("village_quotas")
        if rule == RULE_V1 and choice is not None:
            raise ValueError(f"rule {RULE_V1} always excludes villages without a quota (as not_eligible); "
                             f"choose with {CURRENT_RULE}")
        if choice is not None and not quotas:
            raise ValueError("needs at least one village quota")
        if rule not in (None, RULE_V1) and quotas and choice is None:
            raise ValueError("with village quotas, say what happens to every other village: unlimited (they share "
                             "the budget) or excluded (they get no allocation)")
        return choice


class ImportRow(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    row: int = Field(ge=1, le=MAX_COUNT, description="Line number in the file (the header is line 1)")
    fields: dict[Annotated[str, Field(max_length=50)], Annotated[str, Field(max_length=300)] | None] = Field(
        max_length=20)


class ImportChunk(RoundRef):
    batch_id: uuid.UUID = Field(description="One recipient list; resending a chunk of it is harmless")
    rows: tuple[ImportRow, ...] = Field(min_length=1, max_length=MAX_IMPORT_ROWS)


class FinishImport(RoundRef):
    batch_id: uuid.UUID
    file_name: str = Field(default="", max_length=200)
    total_rows: int = Field(ge=0, le=MAX_COUNT)
    rejected_rows: int = Field(ge=0, le=MAX_COUNT)


class CloseRound(RoundRef):
    force: bool = Field(default=False, description="Reject candidates still queued (reason round_closed)")


class RoundStatusQuery(RoundRef):
    exact: bool = Field(default=False, description="Count the records (slow on big rounds) instead of live counters")
