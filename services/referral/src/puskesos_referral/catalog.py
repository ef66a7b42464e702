"""Packaged data: the rule sets shipped with the service and the referral targets.

Rule sets live in ``data/rules/{name}@{version}.json`` (format in ``domain.rules``); they are
seeded into the rule-set collection at start-up, where the social office publishes newer
versions. Referral targets live in ``data/targets.json``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib.resources import files

from puskesos_shared.contracts.primitives import Program
from puskesos_shared.contracts.referral import ReferralTarget, ReferralTargetKind
from puskesos_shared.regions import regency_of
from pydantic import BaseModel, ConfigDict, Field

from .domain.rules import RuleSet

_DATA = files("puskesos_referral") / "data"

#: Working days a target has to answer a referral, unless the assessor sets another.
DEFAULT_DUE_WORKING_DAYS = {
    ReferralTargetKind.HOSPITAL: 1,
    ReferralTargetKind.REHABILITATION: 5,
    ReferralTargetKind.DINAS_SOSIAL: 5,
    ReferralTargetKind.PROGRAM: 10,
}


class TargetEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    code: str = Field(min_length=1, max_length=50)
    kind: ReferralTargetKind
    name: str = Field(min_length=1, max_length=200)
    program: Program | None = None
    regency: str | None = None

    def target(self) -> ReferralTarget:
        return ReferralTarget(kind=self.kind, code=self.code, name=self.name, program=self.program)

    def serves(self, village_code: str) -> bool:
        return self.regency is None or self.regency == regency_of(village_code)


class UnknownTarget(ValueError):
    pass


@lru_cache(maxsize=1)
def packaged_rule_sets() -> tuple[RuleSet, ...]:
    """Every rule set shipped in the package, oldest version first."""
    found = [RuleSet.model_validate(json.loads(entry.read_text(encoding="utf-8")))
             for entry in (_DATA / "rules").iterdir() if entry.name.endswith(".json")]
    return tuple(sorted(found, key=lambda r: (r.name, r.version)))


@lru_cache(maxsize=1)
def targets() -> dict[str, TargetEntry]:
    raw = json.loads((_DATA / "targets.json").read_text(encoding="utf-8"))
    entries = [TargetEntry.model_validate(t) for t in raw["targets"]]
    return {t.code: t for t in entries}


def resolve_target(code: str, village_code: str) -> TargetEntry:
    """The catalogue entry for ``code``, if it serves the village's regency."""
    entry = targets().get(code)
    if entry is None:
        # the code is not repeated: an error never echoes the input (it may be anything typed there)
        raise UnknownTarget(f"unknown referral target; known: {', '.join(sorted(targets()))}")
    if not entry.serves(village_code):
        raise UnknownTarget(f"referral target {code} serves regency {entry.regency}, not {regency_of(village_code)}")
    return entry
