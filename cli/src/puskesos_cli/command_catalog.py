"""Every request-reply command the services serve, for the contract registry (``puskesos contracts``).

The CLI is the composition root: it may import the services' request models, shared may not. Each
entry names the subject's service and command, the request model ``subscribe_command`` validates
with. ``cli/tests/test_command_catalog.py`` checks
this list against what the services' ``register_commands`` (and ``serve_export``) subscribe; ``redrive``
is served for every service by the shared runtime (``create_service_app``).
"""

from __future__ import annotations

from puskesos_audit.commands import ReplayCommand
from puskesos_distribution.requests import CloseRound, FinishImport, ImportChunk, OpenRound, RoundRef, RoundStatusQuery
from puskesos_intake.commands import ComplaintStatusQuery, FileComplaint, RegisterHousehold
from puskesos_notification.directory import OfficerRemove, OfficerUpsert, OptOut
from puskesos_notification.feeds.commands import FeedReplayRequest, FeedStatusRequest, SubscribersChanged
from puskesos_referral.requests import (
    AcknowledgeEscalationCommand,
    AssessCommand,
    CloseCommand,
    GetCaseCommand,
    GetRuleSetCommand,
    ListCasesCommand,
    ListEscalationsCommand,
    PublishRuleSetCommand,
    ReferCommand,
    ResolveEscalationCommand,
    RespondRequest,
    SummaryCommand,
    TargetRespondRequest,
)
from puskesos_shared.contracts.schema_registry import CommandSpec
from puskesos_shared.messaging.redrive_service import REDRIVE_COMMAND, RedriveRequest
from puskesos_shared.resident_export import EXPORT_COMMAND, ExportResident

SERVICES = ("intake", "referral", "distribution", "notification", "audit")

_EXPORTS = tuple(
    CommandSpec(service, EXPORT_COMMAND, ExportResident,
                f"The {service} service's part of a resident's data export (what it holds about a NIK); asked "
                "by intake, which assembles the whole export (POST /residents/export) after its role and scope "
                "checks. The result is an ExportSection.")
    for service in SERVICES
)

_REDRIVES = tuple(
    CommandSpec(service, REDRIVE_COMMAND, RedriveRequest,
                f"Re-drive a dead letter of one of the {service} service's consumers to that consumer only (served "
                "by every service through its runtime): by dead_letter_sequence, or an events-stream message by "
                "consumer and sequence. Nothing is published again; the event keeps its event id. The result is a "
                "RedriveResult; the caller (puskesos dlq redrive, as admin) then deletes the dead letter. A handler "
                "that fails again answers redrive_failed and the dead letter stays.")
    for service in SERVICES
)

COMMANDS: tuple[CommandSpec, ...] = (
    *_EXPORTS,
    *_REDRIVES,
    # intake: external systems (the WhatsApp bot, the national registry sync) name their actor
    CommandSpec("intake", "register_household", RegisterHousehold,
                "Register or update a household (the national registry sync). The result is a RegistrationResult."),
    CommandSpec("intake", "file_complaint", FileComplaint,
                "File a complaint (the WhatsApp bot); idempotency_key makes a retry harmless. The result is a "
                "FilingResult with the case number."),
    CommandSpec("intake", "complaint_status", ComplaintStatusQuery,
                "The public status of a complaint by case number (no personal data)."),
    # referral
    CommandSpec("referral", "assess_case", AssessCommand,
                "Record an officer's assessment of a case; the rules decide eligibility. command_id is the "
                "idempotency key."),
    CommandSpec("referral", "issue_referral", ReferCommand,
                "Refer an assessed case to a target (hospital, program desk, Dinas Sosial)."),
    CommandSpec("referral", "respond_referral", RespondRequest,
                "An operator records a target's answer to a referral, by referral_id or referral_number: outcome "
                "accepted, rejected or completed; responded_by names who answered. Operators only (the admin and "
                "operator NATS users): a referral target answers on its own subject (respond_referral by target)."),
    CommandSpec("referral", "respond_referral", TargetRespondRequest,
                "A referral target's answer to a referral issued to it, by referral_id or referral_number: outcome "
                "accepted, rejected or completed. The target code is the subject's last token, which the NATS "
                "permissions let only that target's user publish; a referral issued to another target is "
                "referral_not_found, as one that does not exist; the answer is recorded as the target's (actor "
                "external, id the code).",
                parameter="target",
                parameter_description="The referral target's code (letters, digits, '-' or '_'), for example "
                                      "RSD-SOEBANDI; a subscriber's referral_target"),
    CommandSpec("referral", "close_case", CloseCommand, "Close a case with a resolution and a reason."),
    CommandSpec("referral", "get_case", GetCaseCommand, "One case, as the officer may see it."),
    CommandSpec("referral", "list_cases", ListCasesCommand,
                "Cases of a village or kecamatan in the officer's scope, filtered and paged."),
    CommandSpec("referral", "case_summary", SummaryCommand,
                "Monthly counts of a village or kecamatan in the officer's scope."),
    CommandSpec("referral", "publish_rule_set", PublishRuleSetCommand,
                "Publish a new assessment rule set (tagged name@version)."),
    CommandSpec("referral", "get_rule_set", GetRuleSetCommand,
                "A published rule set by tag (the audit replay asks for the rules a decision used)."),
    CommandSpec("referral", "list_escalations", ListEscalationsCommand,
                "Escalated cases in the officer's scope at a level (default: the officer's own; a coordinator's "
                "is kecamatan, an operator's dinas_sosial) with an escalation status (open, acknowledged, "
                "resolved), longest escalated first, paged."),
    CommandSpec("referral", "acknowledge_escalation", AcknowledgeEscalationCommand,
                "The officer of the level a case was escalated to (coordinator: kecamatan, operator: dinas_sosial) "
                "takes the escalation on; publishes EscalationAcknowledged. command_id makes a retry harmless."),
    CommandSpec("referral", "resolve_escalation", ResolveEscalationCommand,
                "Resolve a case's escalation: returned_to_village (instructions in note, a new deadline in "
                "due_in_working_days) or handled_at_level; publishes EscalationResolved. command_id makes a retry "
                "harmless."),
    # distribution: operators (the puskesos round CLI)
    CommandSpec("distribution", "open_round", OpenRound,
                "Open an aid round (operator); opening the same key again is a no-op."),
    CommandSpec("distribution", "import_rows", ImportChunk,
                "Import one chunk of a round's recipient list (operator); resending a chunk is harmless."),
    CommandSpec("distribution", "finish_import", FinishImport,
                "Finish a recipient-list import and record its totals (operator)."),
    CommandSpec("distribution", "enqueue_assessed", RoundRef,
                "Queue the families assessed eligible by referral as candidates of the round (operator)."),
    CommandSpec("distribution", "close_round", CloseRound,
                "Close a round (operator); force rejects candidates still queued."),
    CommandSpec("distribution", "round_status", RoundStatusQuery,
                "A round's status and counts (operator, coordinator or auditor)."),
    # notification: the officer directory and opt-outs (NATS permissions decide who may send them)
    CommandSpec("notification", "officer_upsert", OfficerUpsert,
                "Add or change an officer's directory entry (mobile, role, scope)."),
    CommandSpec("notification", "officer_remove", OfficerRemove, "Remove an officer's directory entry."),
    CommandSpec("notification", "opt_out", OptOut,
                "Record that a phone number does (or no longer does) want messages."),
    # notification: the external subscribers' feeds (the puskesos subscribers CLI; operators)
    CommandSpec("notification", "subscribers_changed", SubscribersChanged,
                "Every replica reads the subscribers file again now (no queue group: the first answer is enough)."),
    CommandSpec("notification", "feed_replay", FeedReplayRequest,
                "Replay a subscriber's feed from a stream sequence or a time, as a new generation (same event ids)."),
    CommandSpec("notification", "feed_status", FeedStatusRequest,
                "Each declared subscriber's feed: where it started, relayed, pending, dead letters, deliveries."),
    # audit
    CommandSpec("audit", "replay", ReplayCommand,
                "Replay the audit log (auditor): the reply names the subject the events follow on "
                "({ns}.replay.{request_id}.>, ending with ..._end)."),
)
