"""Read side for coordinators and the social office: case lists with SLA state, monthly counts, rule sets."""

from __future__ import annotations

import datetime as dt
from typing import Any

from puskesos_shared.auth import Officer
from puskesos_shared.commands import CommandError
from puskesos_shared.mongo import Document

from . import authz
from .domain import sla
from .domain.case import CaseStatus
from .domain.sla import SlaState
from .requests import CaseScope, ListCasesQuery, StatusFilter, SummaryQuery
from .rulebook import RULES_NAME
from .service import Clock
from .store import CaseStore, open_statuses
from .views import case_row, summary


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

    async def summary(self, officer: Officer, query: SummaryQuery) -> dict[str, Any]:
        authz.require_role(officer, authz.READ)
        authz.require_scope(officer, query.code)
        start, end = query.bounds()
        window = {"$gte": start.isoformat(), "$lt": end.isoformat()}
        filters = {**_scope_filter(query), "$or": [{"status": {"$ne": CaseStatus.CLOSED.value}},
                                                   {"filed_on": window}, {"closure.closed_on": window}]}
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
