"""The service's own projection of registered and assessed households (insert-only).

Each ``HouseholdRegistered``/``HouseholdUpdated`` becomes a revision document ``{KK}:{revision}``
and each ``CaseAssessed`` naming a KK an assessment document keyed by its event id. "Latest" is
decided when reading (highest revision; newest assessment), so events may arrive in any order,
twice, or from several replicas at once without a lost or stale update.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Iterable

from puskesos_shared.contracts import CaseAssessed, Event, HouseholdRegistered, HouseholdUpdated
from puskesos_shared.contracts.intake import Household
from puskesos_shared.messaging.consumer import Delivery
from puskesos_shared.mongo import Document

from .domain import AssessmentView, HouseholdView
from .store import ASSESSMENTS, HOUSEHOLDS, MongoStore

PROJECTION_CONSUMER = "distribution_projection"
PROJECTED_EVENTS: tuple[type[Event], ...] = (HouseholdRegistered, HouseholdUpdated, CaseAssessed)


def household_doc(event: HouseholdRegistered | HouseholdUpdated) -> Document:
    household: Household = event.data.household
    head = household.head
    return {
        "_id": f"{household.kk_number}:{event.data.revision:06d}", "kk": household.kk_number,
        "revision": event.data.revision, "village_code": household.address.village_code,
        "head_nik": head.nik, "head_name": head.name, "event_id": str(event.event_id),
        "occurred_at": event.occurred_at,
    }


def assessment_doc(event: CaseAssessed) -> Document | None:
    kk = event.data.kk_number
    if kk is None:  # a person without a family card: nothing to allocate to
        return None
    return {
        "_id": str(event.event_id), "kk": kk, "case_id": str(event.data.case_id),
        "assessment_id": str(event.data.assessment_id),
        "eligibility": {e.program.value: e.eligible for e in event.data.result.eligibility},
        "rule_set_version": event.data.rule_set_version, "occurred_at": event.occurred_at,
    }


class Projection:
    def __init__(self, store: MongoStore) -> None:
        self._store = store

    async def handle(self, event: Event, delivery: Delivery) -> None:
        if isinstance(event, (HouseholdRegistered, HouseholdUpdated)):
            await self._store.insert(HOUSEHOLDS, household_doc(event))
        elif isinstance(event, CaseAssessed):
            doc = assessment_doc(event)
            if doc is not None:
                await self._store.insert(ASSESSMENTS, doc)

    async def latest(self, kk: str) -> tuple[HouseholdView | None, AssessmentView | None]:
        households, assessments = await asyncio.gather(self._store.by_field(HOUSEHOLDS, "kk", kk),
                                                       self._store.by_field(ASSESSMENTS, "kk", kk))
        return latest_household(households), latest_assessment(assessments)


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def latest_household(docs: Iterable[Document]) -> HouseholdView | None:
    doc = max(docs, key=lambda d: int(d["revision"]), default=None)
    if doc is None:
        return None
    return HouseholdView(kk_number=doc["kk"], revision=int(doc["revision"]), village_code=doc["village_code"],
                         head_nik=doc["head_nik"], head_name=doc["head_name"])


def latest_assessment(docs: Iterable[Document]) -> AssessmentView | None:
    doc = max(docs, key=lambda d: (_aware(d["occurred_at"]), d["_id"]), default=None)
    if doc is None:
        return None
    return AssessmentView(event_id=uuid.UUID(doc["_id"]), kk_number=doc["kk"],
                          eligibility=dict(doc.get("eligibility") or {}),
                          rule_set_version=doc["rule_set_version"], occurred_at=_aware(doc["occurred_at"]))
