"""NATS request-reply commands of the referral service (``{ns}.commands.referral.{name}.v1``).

Officer commands carry the officer's token in ``token``. A referral target (a hospital, a program
desk, the Dinas Sosial) answers the referrals issued to it on its own subject,
``{ns}.commands.referral.respond_referral.v1.{CODE}`` (``puskesos_shared.subscribers.respond_subject``): the
NATS permissions let its user publish only its own code's subject, the service answers only referrals whose
target is that code (any other is ``referral_not_found``) and records the answer as the target's (actor
``external``, id the code). The unscoped ``respond_referral.v1`` is for operators (the admin and operator
users), who record an answer given another way; it trusts ``responded_by``, so no target is given it.
"""

from __future__ import annotations

from typing import Any

from puskesos_shared.commands import subscribe_command, subscribe_scoped_command
from puskesos_shared.service import ServiceRuntime
from pydantic import SecretStr

from .authz import officer_from_token
from .queries import CaseQueries
from .requests import (
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
from .service import ReferralService


def register_commands(runtime: ServiceRuntime, service: ReferralService, queries: CaseQueries,
                      secret: SecretStr | None) -> list[str]:
    async def assess_case(req: AssessCommand) -> dict[str, Any]:
        return await service.assess(officer_from_token(req.token, secret), req.case_id, req)

    async def issue_referral(req: ReferCommand) -> dict[str, Any]:
        return await service.refer(officer_from_token(req.token, secret), req.case_id, req)

    async def respond_referral(req: RespondRequest) -> dict[str, Any]:
        return await service.respond(req)

    async def respond_as_target(req: TargetRespondRequest, target: str) -> dict[str, Any]:
        return await service.respond(req.as_response(target), target=target)

    async def close_case(req: CloseCommand) -> dict[str, Any]:
        return await service.close(officer_from_token(req.token, secret), req.case_id, req)

    async def get_case(req: GetCaseCommand) -> dict[str, Any]:
        return await service.case_page(officer_from_token(req.token, secret), req.case_id)

    async def list_cases(req: ListCasesCommand) -> dict[str, Any]:
        return await queries.list_cases(officer_from_token(req.token, secret), req)

    async def list_escalations(req: ListEscalationsCommand) -> dict[str, Any]:
        return await queries.list_escalations(officer_from_token(req.token, secret), req)

    async def acknowledge_escalation(req: AcknowledgeEscalationCommand) -> dict[str, Any]:
        return await service.acknowledge_escalation(officer_from_token(req.token, secret), req.case_id, req)

    async def resolve_escalation(req: ResolveEscalationCommand) -> dict[str, Any]:
        return await service.resolve_escalation(officer_from_token(req.token, secret), req.case_id, req)

    async def case_summary(req: SummaryCommand) -> dict[str, Any]:
        return await queries.summary(officer_from_token(req.token, secret), req)

    async def publish_rule_set(req: PublishRuleSetCommand) -> dict[str, Any]:
        return await service.rules.publish(officer_from_token(req.token, secret), req.rule_set)

    async def get_rule_set(req: GetRuleSetCommand) -> dict[str, Any]:
        return await queries.rule_set(req.tag)

    handlers: list[tuple[str, Any, Any]] = [
        ("assess_case", AssessCommand, assess_case), ("issue_referral", ReferCommand, issue_referral),
        ("respond_referral", RespondRequest, respond_referral), ("close_case", CloseCommand, close_case),
        ("get_case", GetCaseCommand, get_case), ("list_cases", ListCasesCommand, list_cases),
        ("case_summary", SummaryCommand, case_summary), ("publish_rule_set", PublishRuleSetCommand, publish_rule_set),
        ("get_rule_set", GetRuleSetCommand, get_rule_set),
        ("list_escalations", ListEscalationsCommand, list_escalations),
        ("acknowledge_escalation", AcknowledgeEscalationCommand, acknowledge_escalation),
        ("resolve_escalation", ResolveEscalationCommand, resolve_escalation),
    ]
    subjects = [subscribe_command(runtime.broker, runtime.topology, service="referral", name=name, request=model,
                                  handler=handler) for name, model, handler in handlers]
    subjects.append(subscribe_scoped_command(runtime.broker, runtime.topology, service="referral",
                                             name="respond_referral", request=TargetRespondRequest,
                                             handler=respond_as_target, parameter="target"))
    return subjects
