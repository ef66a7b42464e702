"""Assessment rule sets as a use case: seeding the packaged versions, publishing newer ones, re-deriving.

The active rule set is the highest published version of ``RULES_NAME``; published versions never
change (their id is the version tag and the stored document is compared by digest).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import structlog
from puskesos_shared.auth import Officer
from puskesos_shared.commands import CommandError
from puskesos_shared.contracts.referral import AssessmentResult, CaseAssessed

from . import authz, catalog
from .domain.assessment import reassess
from .domain.rules import RuleSet
from .store import CaseStore

log = structlog.get_logger("puskesos.referral.rules")
RULES_NAME = "assessment"


class RuleBook:
    def __init__(self, store: CaseStore, clock: Callable[[], dt.datetime]) -> None:
        self.store, self.clock = store, clock

    async def seed(self) -> None:
        """Stores the packaged rule sets not stored yet (start-up; every replica may do it at once)."""
        for rule_set in catalog.packaged_rule_sets():
            if not await self.store.add_rule_set(rule_set, published_by="package", now=self.clock()):
                stored = await self.store.rule_set(rule_set.tag)
                if stored is not None and stored.digest() != rule_set.digest():
                    log.error("packaged_rule_set_differs", tag=rule_set.tag,
                              detail="the stored version stays authoritative; publish a new version instead")

    async def active(self) -> RuleSet:
        latest = await self.store.latest_rule_set(RULES_NAME)
        if latest is None:
            raise CommandError("no_rule_set", "no assessment rule set is published", status=503)
        return latest

    async def publish(self, officer: Officer, rule_set: RuleSet) -> dict[str, Any]:
        authz.require_role(officer, authz.PUBLISH_RULES)
        if rule_set.name != RULES_NAME:
            raise CommandError("unknown_rule_set", f"this service evaluates rule set {RULES_NAME!r}",
                               [{"loc": ["rule_set", "name"], "msg": f"must be {RULES_NAME}", "type": "value_error"}],
                               status=422)
        stored = await self.store.rule_set(rule_set.tag)
        if stored is not None:
            if stored.digest() == rule_set.digest():
                return {"duplicate": True, "tag": rule_set.tag, "digest": stored.digest()}
            raise CommandError("rule_set_exists", "this version is published with other content; "
                               "published versions never change: publish a higher version", status=409)
        latest = await self.store.latest_rule_set(RULES_NAME)
        if latest is not None and rule_set.version <= latest.version:
            raise CommandError("version_not_newer", f"the latest published version is {latest.tag}",
                               [{"loc": ["rule_set", "version"], "msg": f"must be above {latest.version}",
                                 "type": "value_error"}], status=409)
        if not await self.store.add_rule_set(rule_set, published_by=officer.officer_id, now=self.clock()):
            return await self.publish(officer, rule_set)  # a concurrent publish of the same tag
        log.info("rule_set_published", tag=rule_set.tag, digest=rule_set.digest())
        return {"duplicate": False, "tag": rule_set.tag, "digest": rule_set.digest()}

    async def reassess_recorded(self, recorded: CaseAssessed) -> AssessmentResult:
        """Re-derives a recorded decision with the rule set version it names (from the store)."""
        rule_set = await self.store.rule_set(recorded.data.rule_set_version)
        if rule_set is None:
            raise CommandError("rule_set_not_found", f"{recorded.data.rule_set_version} is not stored", status=404)
        return reassess(recorded, rule_set)
