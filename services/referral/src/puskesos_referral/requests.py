"""Request models of the service's commands, shared by the HTTP API and the NATS commands.

NATS commands carry the officer's token (``token``) and the case they act on (``case_id``) in
the body; over HTTP the token is the ``Authorization: Bearer`` header and the case is in the path.
``command_id`` is the idempotency key: a command retried with the same id is applied once and
answered with the case as it is. Without one, every request is a new command.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from enum import StrEnum
from typing import Self

from puskesos_shared.contracts.primitives import DistrictCode, KKNumber, LongText, VillageCode
from puskesos_shared.contracts.referral import CaseResolution, ReferralOutcome
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .domain.assessment import Observations
from .domain.rules import RuleSet
from .domain.sla import SlaState

_STRICT = ConfigDict(frozen=True, extra="forbid")
_MONTH = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")


class AssessRequest(BaseModel):
    model_config = _STRICT
    command_id: uuid.UUID | None = None
    observations: Observations
    kk_number: KKNumber | None = Field(default=None, description="The family card the assessment is about, "
                                       "when the complaint did not name it or named the wrong one")
    note: str = Field(default="", max_length=2000, description="For officers; not read by the rules")


class ReferRequest(BaseModel):
    model_config = _STRICT
    command_id: uuid.UUID | None = None
    target_code: str = Field(min_length=1, max_length=50, examples=["RSD-SOEBANDI"])
    instructions: str = Field(default="", max_length=2000)
    due_in_working_days: int | None = Field(default=None, ge=1, le=30)


class RespondRequest(BaseModel):
    """An answer to a referral (``respond_referral``), by referral id or number, recorded by an operator
    (or an officer over HTTP). A target system answers on its own subject instead (``TargetRespondRequest``)."""

    model_config = _STRICT
    referral_id: uuid.UUID | None = None
    referral_number: str | None = Field(default=None, min_length=1, max_length=50)
    outcome: ReferralOutcome
    note: str = Field(default="", max_length=2000)
    responded_by: str = Field(min_length=1, max_length=100, description="The target system or its officer")

    @model_validator(mode="after")
    def _one_reference(self) -> Self:
        if (self.referral_id is None) == (self.referral_number is None):
            raise ValueError("give exactly one of referral_id and referral_number")
        return self


class TargetRespondRequest(BaseModel):
    """A referral target's own answer (``respond_referral.v1.{target}``): the subject's last token is the
    target code, which the NATS permissions tie to the target's user; only a referral issued to that
    target can be answered, and the answer is recorded as the target's (actor ``external``, id the code)."""

    model_config = _STRICT
    referral_id: uuid.UUID | None = None
    referral_number: str | None = Field(default=None, min_length=1, max_length=50)
    outcome: ReferralOutcome
    note: str = Field(default="", max_length=2000)
    responded_by: str | None = Field(default=None, min_length=1, max_length=100,
                                     description="Who at the target answered (for people); the target code "
                                                 "when omitted")

    @model_validator(mode="after")
    def _one_reference(self) -> Self:
        if (self.referral_id is None) == (self.referral_number is None):
            raise ValueError("give exactly one of referral_id and referral_number")
        return self

    def as_response(self, target: str) -> RespondRequest:
        return RespondRequest(referral_id=self.referral_id, referral_number=self.referral_number,
                              outcome=self.outcome, note=self.note, responded_by=self.responded_by or target)


class CloseRequest(BaseModel):
    model_config = _STRICT
    command_id: uuid.UUID | None = None
    resolution: CaseResolution
    reason: LongText


class CaseScope(BaseModel):
    model_config = _STRICT
    village_code: VillageCode | None = None
    kecamatan_code: DistrictCode | None = None

    @model_validator(mode="after")
    def _one_scope(self) -> Self:
        if (self.village_code is None) == (self.kecamatan_code is None):
            raise ValueError("give exactly one of village_code and kecamatan_code")
        return self

    @property
    def code(self) -> str:
        return self.village_code or self.kecamatan_code or ""


class StatusFilter(StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    ALL = "all"


class ListCasesQuery(CaseScope):
    status: StatusFilter = StatusFilter.OPEN
    sla_state: SlaState | None = None
    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=100_000)


class SummaryQuery(CaseScope):
    month: str = Field(description="YYYY-MM: cases filed or closed in this month, and every open case")

    @field_validator("month")
    @classmethod
    def _month(cls, value: str) -> str:
        if not _MONTH.fullmatch(value):
            raise ValueError("month must be YYYY-MM")
        return value

    def bounds(self) -> tuple[dt.date, dt.date]:
        year, month = (int(p) for p in self.month.split("-"))
        start = dt.date(year, month, 1)
        end = dt.date(year + (month == 12), month % 12 + 1, 1)
        return start, end


class PublishRuleSetRequest(BaseModel):
    model_config = _STRICT
    rule_set: RuleSet


# --- NATS forms: the same plus the token and the case --------------------------------------------
class _Authenticated(BaseModel):
    model_config = _STRICT
    token: str = Field(min_length=1, max_length=4096, repr=False)


class AssessCommand(AssessRequest, _Authenticated):
    case_id: uuid.UUID


class ReferCommand(ReferRequest, _Authenticated):
    case_id: uuid.UUID


class CloseCommand(CloseRequest, _Authenticated):
    case_id: uuid.UUID


class GetCaseCommand(_Authenticated):
    model_config = _STRICT
    case_id: uuid.UUID


class ListCasesCommand(ListCasesQuery, _Authenticated):
    pass


class SummaryCommand(SummaryQuery, _Authenticated):
    pass


class PublishRuleSetCommand(PublishRuleSetRequest, _Authenticated):
    pass


class GetRuleSetCommand(BaseModel):
    model_config = _STRICT
    tag: str = Field(min_length=3, max_length=60, pattern=r"^[a-z0-9_.-]+@[0-9]+$")
