"""Read side for coordinators and the social office: case lists with SLA state, escalations to act on,
monthly counts, rule sets."""

from __future__ import annotations

import datetime as dt
from typing import Any

from puskesos_shared.auth import Officer
from puskesos_shared.commands import CommandError
from puskesos_shared.contracts.referral import EscalationLevel
from puskesos_shared.mongo import Document
from puskesos_shared.regions import district_of, villages_of

from . import authz
from .domain import sla
from .domain.case import CaseStatus
from .domain.sla import SlaState
from .requests import CaseScope, ListCasesQuery, ListEscalationsQuery, StatusFilter, SummaryQuery
from .rulebook import RULES_NAME
from .service import Clock
from .store import CaseStore, open_statuses
from .views import case_row, escalation_row, summary

#: Levels an escalation can reach (the list's default for officers who do not act on one level).
ESCALATED_LEVELS = tuple(level for level in EscalationLevel if level is not EscalationLevel.VILLAGE)


def _scope_filter(scope: CaseScope) -> Document:
    return {"village_code": scope.village_code} if scope.village_code else {"kecamatan_code": scope.kecamatan_code}


def _sla_filter(state: SlaState, today: dt.date) -> Document:
    """The SLA state of open cases as a range of deadlines (one time zone per kecamatan)."""
    at_risk_until = sla.add_working_days(today, sla.AT_RISK_WORKING_DAYS).isoformat()
    if state is SlaState.BREACHED:
        return {"sla_due_on": {"$lt": today.isoformat()}}
    if state is SlaState.AT_RISK:
        return {"sla_due_on": {"$gte": today.isoformat(), "$lte": at_risk_until}}
    return {"sla_due_on": {"$gt": at_risk_until}}


def _officer_scope_filter(scope: tuple[str, ...]) -> Document:
    """Cases anywhere in an officer's scope (villages, kecamatan or regencies), as kecamatan and village codes."""
    kecamatans: set[str] = set()
    villages: list[str] = []
    for code in scope:
        depth = code.count(".")
        if depth == 3:
            villages.append(code)
        elif depth == 2:
            kecamatans.add(code)
        elif depth == 1:
            kecamatans.update(district_of(v) for v in villages_of(code))
    parts: list[Document] = []
    if kecamatans:
        parts.append({"kecamatan_code": {"$in": sorted(kecamatans)}})
    if villages:
        parts.append({"village_code": {"$in": villages}})
    if not parts:
        return {"_id": {"$in": []}}  # a scope naming no region (cannot be issued): nothing
    return parts[0] if len(parts) == 1 else {"$or": parts}


class CaseQueries:
    def __init__(self, store: CaseStore, clock: Clock) -> None:
        self.store, self.clock = store, clock

    async def list_cases(self, officer: Officer, query: ListCasesQuery) -> dict[str, Any]:
        authz.require_role(officer, authz.READ)
        authz.require_scope(officer, query.code)
        now = self.clock()
        today = sla.local_date(query.code, now)  # the time zone follows the province digits
        filters: Document = _scope_filter(query)
        if query.status is StatusFilter.OPEN:
            filters["status"] = {"$in": open_statuses()}  # $in (not $ne): the index serves it
        elif query.status is StatusFilter.CLOSED:
            filters["status"] = CaseStatus.CLOSED.value
        if query.sla_state is not None:
            if query.status is not StatusFilter.OPEN:
                field = {"loc": ["sla_state"], "msg": "needs status=open", "type": "value_error"}
                raise CommandError("invalid_request", "sla_state filters open cases only", [field], status=422)
            filters.update(_sla_filter(query.sla_state, today))
        cases, total = await self.store.find_cases(filters, skip=query.offset, limit=query.limit)
        return {"total": total, "offset": query.offset, "limit": query.limit, "as_of": today.isoformat(),
                "items": [case_row(c, now) for c in cases]}

    async def list_escalations(self, officer: Officer, query: ListEscalationsQuery) -> dict[str, Any]:
        """Escalated cases in the officer's scope whose latest escalation reached ``query.level`` (default:
        the officer's own level) and has ``query.status``, longest escalated first."""
        authz.require_role(officer, authz.READ)
        narrowed = query.village_code or query.kecamatan_code
        if narrowed:
            authz.require_scope(officer, narrowed)
            scope: Document = ({"village_code": query.village_code} if query.village_code
                               else {"kecamatan_code": query.kecamatan_code})
        else:
            scope = _officer_scope_filter(officer.scope)
        own = authz.ESCALATION_LEVEL_OF.get(officer.role)
        levels = [query.level] if query.level else [own] if own else list(ESCALATED_LEVELS)
        filters: Document = {"escalation_level": {"$in": [level.value for level in levels]},
                             "escalation_status": query.status.value, **scope}
        skip = (query.page - 1) * query.page_size
        cases, total = await self.store.find_escalated(filters, skip=skip, limit=query.page_size)
        now = self.clock()
        rows = [escalation_row(case, case.latest_escalation, now) for case in cases
                if case.latest_escalation is not None]
        return {"total": total, "page": query.page, "page_size": query.page_size, "status": query.status.value,
                "levels": [level.value for level in levels], "as_of": now.isoformat(), "items": rows}

    async def summary(self, officer: Officer, query: SummaryQuery) -> dict[str, Any]:
        authz.require_role(officer, authz.READ)
        authz.require_scope(officer, query.code)
        start, end = query.bounds()  # closed since the month began: its referrals may fall in the month
        window = {"$gte": start.isoformat(), "$lt": end.isoformat()}
        filters = {**_scope_filter(query), "$or": [{"status": {"$ne": CaseStatus.CLOSED.value}},
                                                   {"filed_on": window},
                                                   {"closure.closed_on": {"$gte": start.isoformat()}}]}
        cases = await self.store.all_cases(filters)
        return {"scope": query.code, "month": query.month, **summary(cases, start, end, self.clock())}

    async def rule_sets(self) -> list[dict[str, Any]]:
        rows = await self.store.rule_set_index(RULES_NAME)
        return [{**row, "published_at": row["published_at"].isoformat()} for row in rows]

    async def rule_set(self, tag: str) -> dict[str, Any]:
        found = await self.store.rule_set(tag)
        if found is None:
            raise CommandError("rule_set_not_found", "no rule set has this tag", status=404)
        return {"tag": found.tag, "digest": found.digest(), "document": found.document()}
