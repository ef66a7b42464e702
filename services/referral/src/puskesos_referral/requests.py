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
from puskesos_shared.contracts.referral import CaseResolution, EscalationAction, EscalationLevel, ReferralOutcome
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .domain.assessment import Observations
from .domain.case import EscalationStatus
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


class AcknowledgeEscalationRequest(BaseModel):
    """The level's officer takes the case's open escalation on."""

    model_config = _STRICT
    command_id: uuid.UUID | None = None
    note: str = Field(default="", max_length=2000, description="For the officers (personal data: not in feeds)")


class ResolveEscalationRequest(BaseModel):
    """Resolves the case's escalation: back to the village with instructions (``note``) and a new deadline,
    or handled at the level (a new deadline there when ``due_in_working_days`` is given)."""

    model_config = _STRICT
    command_id: uuid.UUID | None = None
    action: EscalationAction
    note: str = Field(min_length=1, max_length=2000,
                      description="Instructions to the village, or what the level does (personal data: not in feeds)")
    due_in_working_days: int | None = Field(
        default=None, ge=1, le=30, description="The new deadline in working days (lokal-id holidays) from today: "
                                               "required for returned_to_village")

    @model_validator(mode="after")
    def _deadline(self) -> Self:
        if self.action is EscalationAction.RETURNED_TO_VILLAGE and self.due_in_working_days is None:
            raise ValueError("returned_to_village needs due_in_working_days")
        return self


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


class ListEscalationsQuery(BaseModel):
    """Escalated cases in the officer's scope; ``level`` defaults to the officer's own (a coordinator's:
    kecamatan, an operator's: dinas_sosial, anyone else's: both)."""

    model_config = _STRICT
    status: EscalationStatus = EscalationStatus.OPEN
    level: EscalationLevel | None = None
    village_code: VillageCode | None = None
    kecamatan_code: DistrictCode | None = None
    page: int = Field(default=1, ge=1, le=10_000)
    page_size: int = Field(default=50, ge=1, le=200)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.level is EscalationLevel.VILLAGE:
            raise ValueError("level is kecamatan or dinas_sosial (no escalation reaches the village)")
        if self.village_code is not None and self.kecamatan_code is not None:
            raise ValueError("give at most one of village_code and kecamatan_code")
        return self


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


class AcknowledgeEscalationCommand(AcknowledgeEscalationRequest, _Authenticated):
    case_id: uuid.UUID


class ResolveEscalationCommand(ResolveEscalationRequest, _Authenticated):
    case_id: uuid.UUID


class ListEscalationsCommand(ListEscalationsQuery, _Authenticated):
    pass


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
