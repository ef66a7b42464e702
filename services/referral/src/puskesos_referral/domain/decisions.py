"""Decisions on a case: each takes the case, the command's facts, the clock reading and ids,
and returns the new case (version + 1) with the events to publish. Pure: no I/O, no clock."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from puskesos_shared.contracts.envelope import Actor, Event
from puskesos_shared.contracts.intake import ComplaintFiled
from puskesos_shared.contracts.primitives import Program
from puskesos_shared.contracts.referral import (
    CaseAssessed,
    CaseAssessedData,
    CaseClosed,
    CaseClosedData,
    CaseEscalated,
    CaseEscalatedData,
    CaseOpened,
    CaseOpenedData,
    CaseResolution,
    EscalationAcknowledged,
    EscalationAcknowledgedData,
    EscalationAction,
    EscalationLevel,
    EscalationResolved,
    EscalationResolvedData,
    ReferralIssued,
    ReferralIssuedData,
    ReferralOutcome,
    ReferralResolved,
    ReferralResolvedData,
    ReferralTarget,
    ReferralTargetKind,
)
from puskesos_shared.ids import derived_event_id, stable_id
from puskesos_shared.regions import district_of

from . import sla
from .assessment import AssessmentInputs, assess
from .case import (
    CASE_CLOSED_ACTION,
    ESCALATED_FURTHER_ACTION,
    AssessmentRecord,
    Case,
    CaseRuleError,
    CaseStatus,
    Closure,
    EscalationAcknowledgement,
    EscalationRecord,
    EscalationResolution,
    ReferralRecord,
    ReferralStatus,
    ResponseRecord,
    meta,
)
from .rules import RuleSet

SYSTEM = Actor.system("referral")
SLA_ACTOR = Actor.system("referral-sla")


@dataclass(frozen=True, slots=True)
class Decision:
    case: Case
    events: tuple[Event, ...]


def case_id_for(complaint_id: uuid.UUID) -> uuid.UUID:
    return stable_id("case", complaint_id)


def _next(case: Case, command_id: str | None = None, **changes: Any) -> Case:
    commands = (*case.commands, command_id) if command_id else case.commands
    return case.model_copy(update={**changes, "version": case.version + 1, "commands": commands})


def _open(case: Case) -> None:
    if case.status is CaseStatus.CLOSED:
        raise CaseRuleError("case_closed", "the case is closed")


# --- opening -------------------------------------------------------------------------------------
def open_case(complaint: ComplaintFiled, now: dt.datetime) -> Decision:
    data = complaint.data
    filed_on = sla.local_date(data.village_code, data.filed_at)
    days = sla.sla_working_days(data.category, data.urgency)
    due = sla.add_working_days(filed_on, days)
    case_id = case_id_for(data.complaint_id)
    event_id = derived_event_id(complaint.event_id, "case_opened")
    case = Case(
        case_id=case_id, complaint_id=data.complaint_id, case_number=data.case_number, category=data.category,
        urgency=data.urgency, village_code=data.village_code, kecamatan_code=district_of(data.village_code),
        subject_nik=data.complainant.nik, kk_number=data.complainant.kk_number, opened_at=now,
        opened_event_id=event_id, complaint_event_id=complaint.event_id, filed_on=filed_on,
        sla_working_days=days, sla_due_on=due, level_due_on=due,
    )
    event = CaseOpened(
        **meta(case, event_id=event_id, now=now, causation=str(complaint.event_id), actor=SYSTEM),
        data=CaseOpenedData(case_id=case_id, complaint_id=data.complaint_id, case_number=data.case_number,
                            category=data.category, urgency=data.urgency, village_code=data.village_code,
                            subject_nik=data.complainant.nik, kk_number=data.complainant.kk_number,
                            opened_at=now, sla_due_on=due, sla_working_days=days),
    )
    return Decision(case, (event,))


# --- assessment ----------------------------------------------------------------------------------
ASSESSABLE = frozenset({CaseStatus.OPEN, CaseStatus.ASSESSED, CaseStatus.NEEDS_REASSESSMENT})


def record_assessment(case: Case, *, command_id: str, actor: Actor, inputs: AssessmentInputs, rule_set: RuleSet,
                      kk_number: str | None, note: str, now: dt.datetime) -> Decision:
    _open(case)
    if case.status not in ASSESSABLE:
        raise CaseRuleError("invalid_state", f"a case in state {case.status.value} cannot be assessed "
                            "(a referral is pending or completed)")
    assessment_id = stable_id("assessment", case.case_id, command_id)
    event = CaseAssessed(
        **meta(case, event_id=derived_event_id(command_id, "case_assessed"), now=now, causation=command_id,
               actor=actor),
        data=CaseAssessedData(case_id=case.case_id, assessment_id=assessment_id, assessed_by=actor.id,
                              kk_number=kk_number, result=assess(inputs, rule_set), rule_set_version=rule_set.tag,
                              inputs=inputs.recorded(), inputs_digest=inputs.digest()),
    )
    record = AssessmentRecord(assessment_id=assessment_id, event=event, note=note)
    new = _next(case, command_id, status=CaseStatus.ASSESSED, kk_number=kk_number,
                assessments=(*case.assessments, record))
    return Decision(new, (event,))


# --- referrals -----------------------------------------------------------------------------------
_PROGRAM_OF_KIND = {ReferralTargetKind.HOSPITAL: Program.HOSPITAL_REFERRAL,
                    ReferralTargetKind.REHABILITATION: Program.REHABILITATION}


def referral_id_for(case_id: uuid.UUID, command_id: str) -> uuid.UUID:
    return stable_id("referral", case_id, command_id)


def check_referral(case: Case, target: ReferralTarget) -> None:
    """Raises unless ``case`` may be referred to ``target`` now (checked before a number is taken)."""
    _open(case)
    if case.status is not CaseStatus.ASSESSED:
        raise CaseRuleError("invalid_state", f"a case in state {case.status.value} cannot be referred "
                            "(it needs a current assessment and no pending referral)")
    latest = case.latest_assessment
    assert latest is not None  # ASSESSED implies an assessment
    program = target.program if target.kind is ReferralTargetKind.PROGRAM else _PROGRAM_OF_KIND.get(target.kind)
    if program is None:
        return  # the Dinas Sosial takes any case
    verdict = next((e for e in latest.event.data.result.eligibility if e.program is program), None)
    if verdict is None or not verdict.eligible:
        why = "; ".join(verdict.reasons) if verdict else f"{latest.event.data.rule_set_version} does not decide it"
        raise CaseRuleError("not_eligible", f"the latest assessment does not make the case eligible for "
                            f"{program.value}: {why}")


def issue_referral(case: Case, *, command_id: str, referral_number: str, target: ReferralTarget, actor: Actor,
                   due_on: dt.date, instructions: str, now: dt.datetime) -> Decision:
    check_referral(case, target)
    latest = case.latest_assessment
    referral_id = referral_id_for(case.case_id, command_id)
    event = ReferralIssued(
        **meta(case, event_id=derived_event_id(command_id, "referral_issued"), now=now, causation=command_id,
               actor=actor),
        data=ReferralIssuedData(referral_id=referral_id, referral_number=referral_number, case_id=case.case_id,
                                assessment_id=latest.assessment_id if latest else None, target=target,
                                issued_by=actor.id, due_on=due_on, instructions=instructions),
    )
    record = ReferralRecord(referral_id=referral_id, referral_number=referral_number, target=target,
                            assessment_id=event.data.assessment_id, issued_by=actor.id, issued_at=now,
                            due_on=due_on, instructions=instructions)
    return Decision(_next(case, command_id, status=CaseStatus.REFERRED, referrals=(*case.referrals, record)), (event,))


_AFTER = {  # (referral status, outcome) -> (new referral status, new case status)
    (ReferralStatus.ISSUED, ReferralOutcome.ACCEPTED): (ReferralStatus.ACCEPTED, CaseStatus.REFERRAL_ACCEPTED),
    (ReferralStatus.ISSUED, ReferralOutcome.COMPLETED): (ReferralStatus.COMPLETED, CaseStatus.REFERRAL_COMPLETED),
    (ReferralStatus.ACCEPTED, ReferralOutcome.COMPLETED): (ReferralStatus.COMPLETED, CaseStatus.REFERRAL_COMPLETED),
    (ReferralStatus.ISSUED, ReferralOutcome.REJECTED): (ReferralStatus.REJECTED, CaseStatus.NEEDS_REASSESSMENT),
    (ReferralStatus.ACCEPTED, ReferralOutcome.REJECTED): (ReferralStatus.REJECTED, CaseStatus.NEEDS_REASSESSMENT),
}


def already_answered(referral: ReferralRecord, outcome: ReferralOutcome) -> bool:
    """The same answer came before (a retried response): nothing to do."""
    return any(r.outcome is outcome for r in referral.responses)


def resolve_referral(case: Case, *, referral_id: uuid.UUID, outcome: ReferralOutcome, note: str, responded_by: str,
                     actor: Actor, causation: str, now: dt.datetime) -> Decision:
    referral = case.referral(referral_id)
    if referral is None:
        raise CaseRuleError("referral_not_found", "no such referral on this case", status=404)
    if already_answered(referral, outcome):
        return Decision(case, ())
    transition = _AFTER.get((referral.status, outcome))
    if transition is None:
        raise CaseRuleError("invalid_state", f"a referral in state {referral.status.value} cannot be "
                            f"answered {outcome.value}")
    _open(case)
    referral_status, case_status = transition
    event_id = stable_id("referral_resolved", referral_id, outcome.value)
    event = ReferralResolved(
        **meta(case, event_id=event_id, now=now, causation=causation, actor=actor),
        data=ReferralResolvedData(referral_id=referral_id, case_id=case.case_id, outcome=outcome, note=note,
                                  responded_by=responded_by, responded_at=now),
    )
    response = ResponseRecord(outcome=outcome, note=note, responded_by=responded_by, responded_at=now,
                              event_id=event_id)
    updated = referral.model_copy(update={"status": referral_status, "responses": (*referral.responses, response)})
    referrals = tuple(updated if r.referral_id == referral_id else r for r in case.referrals)
    rejections = case.rejections + (outcome is ReferralOutcome.REJECTED)
    new = _next(case, status=case_status, referrals=referrals, rejections=rejections)
    events: list[Event] = [event]
    if outcome is ReferralOutcome.REJECTED and rejections >= 2:
        escalation = escalate(new, now=now, reason=f"referral rejected {rejections} times",
                              causation=str(event_id), bump=False)
        if escalation is not None:
            new = escalation.case
            events.extend(escalation.events)
    return Decision(new, tuple(events))


# --- escalation ----------------------------------------------------------------------------------
def escalation_due(case: Case, now: dt.datetime) -> bool:
    """Whether the case is past its current level's deadline and can still go up."""
    if case.status is CaseStatus.CLOSED or sla.next_level(case.level) is None:
        return False
    return sla.local_date(case.village_code, now) > case.level_due_on


def escalation_event_id(case: Case, to_level: EscalationLevel) -> uuid.UUID:
    """The id of the case's next escalation to ``to_level``: (case, level) for the first, and the
    ordinal from the second on (a case returned to the village may reach a level again)."""
    reached = sum(1 for e in case.escalations if e.to_level is to_level)
    if reached == 0:
        return stable_id("escalation", case.case_id, to_level.value)
    return stable_id("escalation", case.case_id, to_level.value, reached + 1)


def escalate(case: Case, *, now: dt.datetime, reason: str, causation: str | None = None,
             bump: bool = True) -> Decision | None:
    """Moves the case one level up (None at the top). The event id depends on (case, level, how many
    times the case reached that level) only."""
    to_level = sla.next_level(case.level)
    if to_level is None or case.status is CaseStatus.CLOSED:
        return None
    today = sla.local_date(case.village_code, now)
    event_id = escalation_event_id(case, to_level)
    event = CaseEscalated(
        **meta(case, event_id=event_id, now=now, causation=causation or str(case.opened_event_id),
               actor=SLA_ACTOR),
        data=CaseEscalatedData(case_id=case.case_id, from_level=case.level, to_level=to_level, reason=reason,
                               sla_due_on=case.level_due_on,
                               overdue_working_days=sla.overdue_working_days(case.level_due_on, today)),
    )
    record = EscalationRecord(from_level=case.level, to_level=to_level, reason=reason, escalated_at=now,
                              missed_due_on=case.level_due_on, event_id=event_id)
    due = sla.level_due_on(to_level, today, case.sla_due_on)
    earlier = case.escalations
    superseded = case.open_escalation
    if superseded is not None:  # the level did not resolve its escalation: it goes on to the next
        done = EscalationResolution(by=SLA_ACTOR.id, at=now, action=ESCALATED_FURTHER_ACTION, level_after=to_level,
                                    due_on=due, event_id=event_id)
        earlier = _replace_latest(case, superseded.model_copy(update={"resolution": done}))
    changes: dict[str, Any] = {"level": to_level, "level_due_on": due, "escalations": (*earlier, record)}
    new = _next(case, **changes) if bump else case.model_copy(update=changes)
    return Decision(new, (event,))


def escalate_overdue(case: Case, now: dt.datetime) -> Decision | None:
    if not escalation_due(case, now):
        return None
    what = "not resolved" if case.level.value == "village" else "not resolved after escalation"
    return escalate(case, now=now, reason=f"SLA breached: {what} by {case.level_due_on.isoformat()}")


# --- acting on an escalation --------------------------------------------------------------------
def _awaiting(case: Case) -> EscalationRecord:
    _open(case)
    record = case.open_escalation
    if record is None:
        raise CaseRuleError("no_open_escalation", "the case has no escalation awaiting action at its level "
                            "(never escalated, or resolved already)")
    return record


def _replace_latest(case: Case, record: EscalationRecord) -> tuple[EscalationRecord, ...]:
    return (*case.escalations[:-1], record)


def acknowledge_escalation(case: Case, *, command_id: str, actor: Actor, note: str, now: dt.datetime) -> Decision:
    """The level's officer takes the escalation on. Acknowledged already by the same officer: nothing to
    do; by another: refused (``already_acknowledged``)."""
    record = _awaiting(case)
    if record.acknowledgement is not None:
        if record.acknowledgement.by == actor.id:
            return Decision(case, ())
        raise CaseRuleError("already_acknowledged", f"the escalation was acknowledged by officer "
                            f"{record.acknowledgement.by} already")
    event_id = derived_event_id(command_id, "escalation_acknowledged")
    event = EscalationAcknowledged(
        **meta(case, event_id=event_id, now=now, causation=command_id, actor=actor),
        data=EscalationAcknowledgedData(case_id=case.case_id, level=record.to_level,
                                        escalation_event_id=record.event_id, acknowledged_by=actor.id,
                                        acknowledged_at=now, note=note),
    )
    ack = EscalationAcknowledgement(by=actor.id, role=actor.role.value if actor.role else None, at=now, note=note,
                                    event_id=event_id)
    updated = record.model_copy(update={"acknowledgement": ack})
    return Decision(_next(case, command_id, escalations=_replace_latest(case, updated)), (event,))


def resolve_escalation(case: Case, *, command_id: str, actor: Actor, action: EscalationAction, note: str,
                       due_in_working_days: int | None, now: dt.datetime) -> Decision:
    """Resolves the case's open escalation. ``returned_to_village``: the case goes back to the village
    with a new deadline ``due_in_working_days`` working days from today; ``handled_at_level``: the case
    stays at the level, with a new deadline there when ``due_in_working_days`` is given."""
    record = _awaiting(case)
    today = sla.local_date(case.village_code, now)
    due_on = sla.add_working_days(today, due_in_working_days) if due_in_working_days else None
    if action is EscalationAction.RETURNED_TO_VILLAGE:
        if due_on is None:
            raise CaseRuleError("invalid_request", "returned_to_village needs due_in_working_days", status=422)
        level_after = EscalationLevel.VILLAGE
    elif action is EscalationAction.HANDLED_AT_LEVEL:
        level_after = case.level
        due_on = due_on or case.level_due_on
    else:  # pragma: no cover - the request model accepts known actions only
        raise CaseRuleError("invalid_request", "unknown escalation action", status=422)
    event_id = derived_event_id(command_id, "escalation_resolved")
    event = EscalationResolved(
        **meta(case, event_id=event_id, now=now, causation=command_id, actor=actor),
        data=EscalationResolvedData(case_id=case.case_id, level=record.to_level, escalation_event_id=record.event_id,
                                    action=action, resolved_by=actor.id, resolved_at=now, note=note,
                                    level_after=level_after, due_on=due_on),
    )
    resolution = EscalationResolution(by=actor.id, role=actor.role.value if actor.role else None, at=now,
                                      action=action.value, note=note, level_after=level_after, due_on=due_on,
                                      event_id=event_id)
    updated = record.model_copy(update={"resolution": resolution})
    new = _next(case, command_id, level=level_after, level_due_on=due_on,
                escalations=_replace_latest(case, updated))
    return Decision(new, (event,))


# --- closure -------------------------------------------------------------------------------------
def close_case(case: Case, *, command_id: str, resolution: CaseResolution, reason: str, actor: Actor,
               now: dt.datetime) -> Decision:
    _open(case)
    pending = case.pending_referral
    if resolution is CaseResolution.REFERRED_AND_COMPLETED:
        if not any(r.status is ReferralStatus.COMPLETED for r in case.referrals):
            raise CaseRuleError("invalid_state", "referred_and_completed needs a referral answered completed")
    elif pending is not None and resolution is not CaseResolution.WITHDRAWN:
        raise CaseRuleError("referral_pending", f"referral {pending.referral_number} is still pending: wait for "
                            "its answer, or close the case as withdrawn")
    closed_on = sla.local_date(case.village_code, now)
    closure = Closure(resolution=resolution, reason=reason, closed_by=actor.id, closed_at=now, closed_on=closed_on,
                      within_sla=closed_on <= case.sla_due_on)
    referrals = tuple(r.model_copy(update={"status": ReferralStatus.WITHDRAWN}) if r.status in
                      (ReferralStatus.ISSUED, ReferralStatus.ACCEPTED) else r for r in case.referrals)
    event_id = stable_id("case_closed", case.case_id)
    event = CaseClosed(
        **meta(case, event_id=event_id, now=now, causation=command_id, actor=actor),
        data=CaseClosedData(case_id=case.case_id, resolution=resolution, reason=reason, closed_by=actor.id,
                            closed_at=now),
    )
    escalations = case.escalations
    awaiting = case.open_escalation
    if awaiting is not None:  # closing the case resolves the escalation left open
        done = EscalationResolution(by=actor.id, role=actor.role.value if actor.role else None, at=now,
                                    action=CASE_CLOSED_ACTION, level_after=case.level, event_id=event_id)
        escalations = _replace_latest(case, awaiting.model_copy(update={"resolution": done}))
    new = _next(case, command_id, status=CaseStatus.CLOSED, closure=closure, referrals=referrals,
                escalations=escalations)
    return Decision(new, (event,))
