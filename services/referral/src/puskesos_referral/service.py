"""The service layer: each use case loads a case, calls a pure decision, and writes the result.

A write claims the next case version by inserting it with its events (``store.append``: one
document, as there are no multi-document transactions): a concurrent change makes the claim fail
with a duplicate key, and the use case re-reads and decides again. The events of a change are
stored with it (its outbox), the read model is rolled forward, then the events are published
(``flush``) and the change is flagged published. What a crash or a broker outage interrupts is
finished by the redelivery of the event that caused it, or, for commands and escalations, by
``finish_pending`` (at start-up and periodically).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from puskesos_shared.auth import Officer
from puskesos_shared.commands import CommandError
from puskesos_shared.contracts.envelope import Actor, ActorKind
from puskesos_shared.contracts.intake import ComplaintFiled, HouseholdRegistered, HouseholdUpdated
from puskesos_shared.ids import new_id, stable_id
from puskesos_shared.messaging import TransientError

from . import authz, catalog
from .domain import sla
from .domain.assessment import build_inputs, household_inputs
from .domain.case import Case, CaseRuleError
from .domain.decisions import (
    Decision,
    acknowledge_escalation,
    check_referral,
    close_case,
    escalate_overdue,
    issue_referral,
    open_case,
    record_assessment,
    referral_id_for,
    resolve_escalation,
    resolve_referral,
)
from .metrics import CLAIMS_LOST, ESCALATIONS
from .requests import (
    AcknowledgeEscalationRequest,
    AssessRequest,
    CloseRequest,
    ReferRequest,
    ResolveEscalationRequest,
    RespondRequest,
)
from .rulebook import RuleBook
from .store import CaseStore, Entries, change_id
from .views import case_detail, escalation_row

log = structlog.get_logger("puskesos.referral")
Clock = Callable[[], dt.datetime]
Flush = Callable[[str, Entries], Awaitable[bool]]  # (change id, outbox entries) -> all published
Decide = Callable[[Case], Awaitable[Decision]]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ReferralService:
    def __init__(self, store: CaseStore, flush: Flush, clock: Clock = utc_now, *, max_attempts: int = 20) -> None:
        self.store, self.flush, self.clock, self.max_attempts = store, flush, clock, max_attempts
        self._shuffle = random.Random().shuffle  # noqa: S311 - spreading work, not security
        self.rules = RuleBook(store, clock)

    # --- consumed events ------------------------------------------------------------------------
    async def on_complaint_filed(self, event: ComplaintFiled) -> bool:
        """Opens the case of a complaint; False when it was open already (a redelivery or a copy)."""
        decision = open_case(event, self.clock())
        case = decision.case
        entries = await self.store.append(case, decision.events)  # no marker: the event is redelivered
        if entries is None:
            pending = await self.store.unpublished(case.case_id, case.version)
            if pending:  # an earlier attempt opened the case but died or failed before publishing
                marker = await self.store.mark_pending(case)  # the sweep finishes it should this fail again
                await self.store.sync_case(await self.store.latest(case.case_id, at_least=1) or case)
                await self._publish_or_retry(case, pending)
                await self.store.clear_pending(marker)
            log.info("case_already_open", case_id=str(case.case_id))
            return False
        await self.store.sync_case(case)
        if not await self._publish(case.case_id, case.version, entries):
            await self.store.mark_pending(case)  # finished by the sweep even if the input is dead-lettered
            raise TransientError("the broker did not confirm the events; the input will be redelivered")
        log.info("case_opened", case_id=str(case.case_id), village_code=case.village_code,
                 sla_due_on=case.sla_due_on.isoformat())
        return True

    async def on_household(self, event: HouseholdRegistered | HouseholdUpdated) -> bool:
        """Stores the revision (the projection is the highest one); False for a revision seen before."""
        data = event.data
        applied = await self.store.add_household_revision(
            kk_number=data.household.kk_number, household_id=data.household_id, household=data.household,
            revision=data.revision, event_id=event.event_id)
        log.info("household_revision_stored" if applied else "household_revision_seen_before",
                 household_id=str(data.household_id), revision=data.revision)
        return applied

    # --- the write path -------------------------------------------------------------------------
    async def _mutate(self, case_id: uuid.UUID, command_id: str | None, decide: Decide,
                      check: Callable[[Case], None]) -> tuple[Case, bool]:
        """Applies ``decide`` to the current case; returns (case, duplicate)."""
        for attempt in range(1, self.max_attempts + 1):
            case = await (self.store.current(case_id) if attempt == 1 else self.store.latest(case_id))
            if case is None:
                raise CommandError("case_not_found", "no case has this id", status=404)
            check(case)
            if command_id is not None and case.applied(command_id):
                return case, True
            try:
                decision = await decide(case)
            except CaseRuleError as exc:
                raise CommandError(exc.code, exc.message, status=exc.status) from None
            if not decision.events:
                return case, True
            if await self._commit(decision) is None:  # changed meanwhile: decide again on the new version
                CLAIMS_LOST.inc()
                log.info("case_changed_concurrently", case_id=str(case_id), attempt=attempt)
                await asyncio.sleep(0.005 * attempt)  # spread contending writers out a little
                continue
            return decision.case, False
        raise CommandError("concurrent_update", "the case kept changing; retry with the same command_id", status=409)

    async def _publish(self, case_id: uuid.UUID, version: int, entries: Entries) -> bool:
        if not await self.flush(change_id(case_id, version), entries):
            return False
        await self.store.mark_published(case_id, version)
        return True

    async def _publish_or_retry(self, case: Case, entries: Entries) -> None:
        """Publishes; raises TransientError (the input is redelivered) if the broker did not confirm."""
        if not await self._publish(case.case_id, case.version, entries):
            raise TransientError("the broker did not confirm the events; the input will be redelivered")

    async def _commit(self, decision: Decision) -> Entries | None:
        """Claims the decision's version, rolls the read model forward and publishes; None if the claim failed.

        A pending marker is written first and removed once the events are out, so whatever a crash
        or a broker outage interrupts is found and finished by ``finish_pending``.
        """
        case = decision.case
        marker = await self.store.mark_pending(case)
        entries = await self.store.append(case, decision.events)
        if entries is None:
            await self.store.clear_pending(marker)
            return None
        await self.store.sync_case(case)
        if await self._publish(case.case_id, case.version, entries):
            await self.store.clear_pending(marker)
        return entries

    async def finish_pending(self, batch: int = 200) -> int:
        """Finishes changes a crash or a broker outage interrupted: read model, then events; returns how many."""
        done = 0
        for marker in await self.store.pending(batch):
            case_id, version = uuid.UUID(marker["case_id"]), int(marker["version"])
            found = await self.store.change(case_id, version)
            if found is None:  # not claimed (yet): the writer is still on it, or died before claiming
                if marker["abandoned"]:
                    await self.store.clear_pending(marker["_id"])
                continue
            case, _ = found
            await self.store.sync_case(await self.store.latest(case_id, at_least=version) or case)
            entries = await self.store.unpublished(case_id, version)
            if not entries or await self._publish(case_id, version, entries):
                await self.store.clear_pending(marker["_id"])
                done += 1
        return done

    @staticmethod
    def _in_scope(officer: Officer) -> Callable[[Case], None]:
        return lambda case: authz.require_scope(officer, case.village_code)

    # --- officer commands -----------------------------------------------------------------------
    async def assess(self, officer: Officer, case_id: uuid.UUID, req: AssessRequest) -> dict[str, Any]:
        authz.require_role(officer, authz.ASSESS)
        command_id = str(req.command_id or new_id())
        rule_set = await self.rules.active()

        async def decide(case: Case) -> Decision:
            now = self.clock()
            today = sla.local_date(case.village_code, now)
            kk = req.kk_number or case.kk_number
            if kk is None and case.subject_nik is not None:
                kk = await self.store.kk_of_member(case.subject_nik)
            household = None
            if kk is not None:
                found = await self.store.household(kk)
                if found is None:
                    raise CommandError("household_unknown", "the family card (KK) is not registered with the "
                                       "referral service yet: register the household at intake first",
                                       [{"loc": ["kk_number"], "msg": "unknown household",
                                         "type": "household_unknown"}],
                                       status=409)
                household = household_inputs(found[0], found[1], today)
            inputs = build_inputs(assessed_on=today, category=case.category, urgency=case.urgency,
                                  observations=req.observations, household=household)
            return record_assessment(case, command_id=command_id, actor=officer.actor(), inputs=inputs,
                                     rule_set=rule_set, kk_number=kk, note=req.note, now=now)

        case, duplicate = await self._mutate(case_id, command_id, decide, self._in_scope(officer))
        assessment_id = stable_id("assessment", case_id, command_id)
        record = next(a for a in case.assessments if a.assessment_id == assessment_id)
        return {"duplicate": duplicate, "assessment_id": str(assessment_id),
                "rule_set_version": record.event.data.rule_set_version,
                "result": record.event.data.result.model_dump(mode="json"), "case": case_detail(case, self.clock())}

    async def refer(self, officer: Officer, case_id: uuid.UUID, req: ReferRequest) -> dict[str, Any]:
        authz.require_role(officer, authz.REFER)
        command_id = str(req.command_id or new_id())
        referral_id = referral_id_for(case_id, command_id)

        async def decide(case: Case) -> Decision:
            try:
                entry = catalog.resolve_target(req.target_code, case.village_code)
            except catalog.UnknownTarget as exc:
                raise CommandError("unknown_target", str(exc), [{"loc": ["target_code"], "msg": str(exc),
                                                                 "type": "unknown_target"}], status=422) from None
            target = entry.target()
            check_referral(case, target)  # before a number is taken: a refused referral uses none
            now = self.clock()
            today = sla.local_date(case.village_code, now)
            number = await self.store.reserve_referral_number(referral_id, case.case_id, case.village_code, today.year)
            days = req.due_in_working_days or catalog.DEFAULT_DUE_WORKING_DAYS[target.kind]
            return issue_referral(case, command_id=command_id, referral_number=number, target=target,
                                  actor=officer.actor(), due_on=sla.add_working_days(today, days),
                                  instructions=req.instructions, now=now)

        case, duplicate = await self._mutate(case_id, command_id, decide, self._in_scope(officer))
        referral = case.referral(referral_id)
        assert referral is not None
        return {"duplicate": duplicate, "referral": referral.model_dump(mode="json"),
                "case": case_detail(case, self.clock())}

    async def respond(self, req: RespondRequest, *, officer: Officer | None = None,
                      target: str | None = None) -> dict[str, Any]:
        """A referral's answer: over HTTP an officer recording it; over NATS an operator (unscoped subject)
        or the target system itself (``target``: the code from its own subject). A target may answer only
        the referrals issued to it; any other is ``referral_not_found``, exactly as one that does not exist."""
        if officer is not None:
            authz.require_role(officer, authz.RECORD_RESPONSE)
        owner = await self.store.referral_owner(referral_id=req.referral_id, number=req.referral_number)
        if owner is None:
            raise CommandError("referral_not_found", "no such referral", status=404)
        referral_id, case_id = owner
        if officer is not None:
            actor = officer.actor()
        else:
            actor = Actor(kind=ActorKind.EXTERNAL, id=target or req.responded_by)
        causation = str(stable_id("referral_response", referral_id, req.outcome.value))

        async def decide(case: Case) -> Decision:
            return resolve_referral(case, referral_id=referral_id, outcome=req.outcome, note=req.note,
                                    responded_by=req.responded_by, actor=actor, causation=causation, now=self.clock())

        def check(case: Case) -> None:
            if officer is not None:
                self._in_scope(officer)(case)
            elif target is not None:  # the target's own subject: its referrals only, others are not found
                referral = case.referral(referral_id)
                if referral is None or referral.target.code != target:
                    raise CommandError("referral_not_found", "no such referral", status=404)

        case, duplicate = await self._mutate(case_id, None, decide, check)
        referral = case.referral(referral_id)
        if referral is None:  # reserved but never issued (a refused or abandoned command)
            raise CommandError("referral_not_found", "no such referral", status=404)
        return {"duplicate": duplicate, "referral_id": str(referral_id), "referral_number": referral.referral_number,
                "referral_status": referral.status.value, "case_id": str(case_id), "case_status": case.status.value,
                "case_level": case.level.value}

    async def close(self, officer: Officer, case_id: uuid.UUID, req: CloseRequest) -> dict[str, Any]:
        authz.require_role(officer, authz.CLOSE)
        command_id = str(req.command_id or new_id())

        async def decide(case: Case) -> Decision:
            return close_case(case, command_id=command_id, resolution=req.resolution, reason=req.reason,
                              actor=officer.actor(), now=self.clock())

        case, duplicate = await self._mutate(case_id, command_id, decide, self._in_scope(officer))
        return {"duplicate": duplicate, "case": case_detail(case, self.clock())}

    # --- acting on an escalation -----------------------------------------------------------------
    @staticmethod
    def _may_act_on_escalation(officer: Officer) -> Callable[[Case], None]:
        """Scope over the case's village, and the role of the level its latest escalation reached."""
        def check(case: Case) -> None:
            authz.require_scope(officer, case.village_code)
            latest = case.latest_escalation
            if latest is None:
                raise CommandError("no_open_escalation", "the case was never escalated", status=409)
            authz.require_escalation_role(officer, latest.to_level)
        return check

    def _escalation_result(self, case: Case, duplicate: bool) -> dict[str, Any]:
        latest = case.latest_escalation
        assert latest is not None  # checked before deciding
        now = self.clock()
        return {"duplicate": duplicate, "escalation": escalation_row(case, latest, now),
                "case": case_detail(case, now)}

    async def acknowledge_escalation(self, officer: Officer, case_id: uuid.UUID,
                                     req: AcknowledgeEscalationRequest) -> dict[str, Any]:
        """The level's officer takes the case's open escalation on (``EscalationAcknowledged``)."""
        authz.require_role(officer, authz.ESCALATION_ACTORS)
        command_id = str(req.command_id or new_id())

        async def decide(case: Case) -> Decision:
            return acknowledge_escalation(case, command_id=command_id, actor=officer.actor(), note=req.note,
                                          now=self.clock())

        case, duplicate = await self._mutate(case_id, command_id, decide, self._may_act_on_escalation(officer))
        return self._escalation_result(case, duplicate)

    async def resolve_escalation(self, officer: Officer, case_id: uuid.UUID,
                                 req: ResolveEscalationRequest) -> dict[str, Any]:
        """Resolves the case's escalation (``EscalationResolved``): back to the village, or handled at the level."""
        authz.require_role(officer, authz.ESCALATION_ACTORS)
        command_id = str(req.command_id or new_id())

        async def decide(case: Case) -> Decision:
            return resolve_escalation(case, command_id=command_id, actor=officer.actor(), action=req.action,
                                      note=req.note, due_in_working_days=req.due_in_working_days, now=self.clock())

        case, duplicate = await self._mutate(case_id, command_id, decide, self._may_act_on_escalation(officer))
        return self._escalation_result(case, duplicate)

    # --- SLA escalation -------------------------------------------------------------------------
    async def escalate_overdue(self, batch: int = 200) -> int:
        """Escalates every case past its level's deadline one level; returns how many this call escalated.

        Several replicas may run this at once: exactly one claims each case version, so each level
        is reached once, and the event id depends on (case, level) only.
        """
        won = 0
        while True:
            now = self.clock()
            candidates = await self.store.escalation_candidates(sla.latest_local_date(now), batch)
            self._shuffle(candidates)  # replicas then rarely contend for the same case
            escalated = 0
            for candidate in candidates:
                decision = escalate_overdue(candidate, now)
                if decision is None:
                    continue
                if await self._commit(decision) is None:  # another replica (or an officer) was first
                    newest = await self.store.latest(candidate.case_id)
                    if newest is not None and newest.version > candidate.version:
                        await self.store.sync_case(newest)  # repair a lagging read model
                    continue
                escalated += 1
                ESCALATIONS.inc()
                log.info("case_escalated", case_id=str(candidate.case_id), to_level=decision.case.level.value)
            won += escalated
            if len(candidates) < batch or escalated == 0:
                return won

    async def case_for(self, officer: Officer, case_id: uuid.UUID) -> Case:
        authz.require_role(officer, authz.READ)
        case = await self.store.latest(case_id)
        if case is None:
            raise CommandError("case_not_found", "no case has this id", status=404)
        authz.require_scope(officer, case.village_code)
        return case

    async def case_page(self, officer: Officer, case_id: uuid.UUID) -> dict[str, Any]:
        """One case in full with its timeline (every event of its change log, in order)."""
        case = await self.case_for(officer, case_id)
        events = await self.store.case_events(case_id, up_to=case.version)
        return case_detail(case, self.clock(), events)

    async def verify_assessments(self, officer: Officer, case_id: uuid.UUID) -> list[dict[str, Any]]:
        """Re-runs every recorded assessment of a case; each must give the recorded decision."""
        case = await self.case_for(officer, case_id)
        out = []
        for record in case.assessments:
            again = await self.rules.reassess_recorded(record.event)
            out.append({"assessment_id": str(record.assessment_id),
                        "rule_set_version": record.event.data.rule_set_version,
                        "matches": again == record.event.data.result})
        return out

