"""The bulk registry import: a batch of CSV rows (``domain.registry_rows``) registered at once.

Same rules and events as ``POST /households`` (``registry``): the contract validates NIKs and KKs
with lokal-id, the village must exist and be in the caller's scope, a NIK belongs to one
household, a KK already registered with the same data is unchanged (so importing a file again
registers nothing twice) and one registered with other data is updated. Each new household gets
revision 1 with HouseholdRegistered in its outbox, the event id derived from (household, 1) as a
registration does, so the events are the same whichever door a household came in by.

The speed comes from batching the common case, a KK and NIKs never seen before:

1. the current revisions of the batch's KKs are read in one query;
2. the new households' NIKs are claimed in one unordered insert of the first version of each
   NIK's ownership record (``niks.claim_new``), which can only succeed where no household ever
   held the NIK;
3. their revisions are written in one unordered insert (``_id`` ``<household>#1``, the same
   compare-and-set as ``versioned.append``);
4. the events are published with async JetStream publishes (``OutboxRelay.flush_many``).

Anything else (a refused claim, a revision someone else wrote first, a changed household) goes
one by one through ``HouseholdRegistry.register``, which decides it exactly as a registration
would: a claim this batch made for the household counts as its own, a NIK of another household
is rejected. A batch cut short by a crash is finished the same way when the file is imported
again.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from puskesos_shared.commands import CommandError
from puskesos_shared.contracts.intake import DataWarning, Household
from puskesos_shared.regions import village_exists
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .context import Caller, Context, log
from .domain.households import household_id, nik_warnings, registered_event
from .domain.registry_rows import COLUMNS, Group, Rejection, Row, group_rows, header_problems, parse_household
from .registry import MAX_MONTHLY_INCOME, HouseholdRegistry, Outcome, revision_data
from .versioned import version_id

MAX_ROWS = 5000
MAX_VALUE_CHARS = 500


class ImportRow(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    row: int = Field(ge=2, description="The line in the file (the header is line 1)")
    values: list[str] = Field(max_length=len(COLUMNS))


class ImportBatch(BaseModel):
    """Rows of the registry CSV, whole KKs only (a KK's rows are never split between batches)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    columns: list[str] = Field(min_length=1, max_length=len(COLUMNS))
    rows: list[ImportRow] = Field(min_length=1, max_length=MAX_ROWS)

    @model_validator(mode="after")
    def _rectangular(self) -> ImportBatch:
        for row in self.rows:
            if len(row.values) != len(self.columns):
                raise ValueError(f"row {row.row} has {len(row.values)} values for {len(self.columns)} columns")
            if any(len(v) > MAX_VALUE_CHARS for v in row.values):
                raise ValueError(f"row {row.row} has a value longer than {MAX_VALUE_CHARS} characters")
        return self


class RejectedRow(BaseModel):
    row: int
    column: str
    code: str
    reason: str


class ImportResult(BaseModel):
    households: int = Field(description="Households (KKs) in the batch")
    registered: int
    updated: int
    unchanged: int
    rejected_households: int
    rejected: list[RejectedRow] = Field(description="Why each rejected household was refused: row, column, rule "
                                                    "(never the value)")


@dataclass
class Candidate:
    group: Group
    household: Household
    hid: str
    warnings: tuple[DataWarning, ...]


def _rejected(rejections: Sequence[Rejection]) -> list[RejectedRow]:
    return [RejectedRow(row=r.row, column=r.column, code=r.code, reason=r.reason) for r in rejections]


def _from_error(group: Group, exc: CommandError) -> list[RejectedRow]:
    """A registration's refusal, pointed at the row and column its field names (never the value)."""
    out: list[RejectedRow] = []
    for field in exc.fields or [{"loc": [], "msg": exc.message, "type": exc.code}]:
        loc = field["loc"]
        row, column = group.first_row, loc[-1] if loc and loc[-1] in COLUMNS else ""
        if len(loc) >= 3 and loc[1] == "members" and isinstance(loc[2], int) and 0 <= loc[2] < len(group.rows):
            row = group.rows[loc[2]].number
        reason = str(field.get("msg", exc.code)) if exc.fields else exc.code.replace("_", " ")
        out.append(RejectedRow(row=row, column=column, code=exc.code, reason=reason[:300]))
    return out


class RegistryImport:
    def __init__(self, ctx: Context, registry: HouseholdRegistry) -> None:
        self.ctx, self.registry = ctx, registry
        self.versions = ctx.store.households

    async def import_batch(self, batch: ImportBatch, caller: Caller) -> ImportResult:
        columns = [c.strip().lower() for c in batch.columns]
        if problems := header_problems(columns):
            raise CommandError("invalid_header", "; ".join(problems),
                               [{"loc": ["body", "columns"], "msg": p, "type": "invalid_header"} for p in problems],
                               status=422)
        rows = [Row(r.row, dict(zip(columns, r.values, strict=True))) for r in batch.rows]
        counts = {o: 0 for o in Outcome}
        rejected: list[RejectedRow] = []
        candidates: list[Candidate] = []
        seen: dict[str, int] = {}
        groups = list(group_rows(rows))
        for group in groups:
            problem = self._check(group, seen, caller)
            if isinstance(problem, list):
                rejected.extend(problem)
            else:
                candidates.append(problem)
        slow: list[Candidate] = []
        fresh = await self._new_ones(candidates, counts, slow)
        await self._register_new(fresh, caller, counts, slow)
        for candidate in slow:
            try:
                result = await self.registry.register(candidate.household, caller)
            except CommandError as exc:
                rejected.extend(_from_error(candidate.group, exc))
                continue
            counts[result.outcome] += 1
        rejected_households = len(groups) - sum(counts.values())
        log.info("registry_import_batch", households=len(groups), registered=counts[Outcome.REGISTERED],
                 updated=counts[Outcome.UPDATED], unchanged=counts[Outcome.UNCHANGED],
                 rejected=rejected_households, one_by_one=len(slow))
        return ImportResult(households=len(groups), registered=counts[Outcome.REGISTERED],
                            updated=counts[Outcome.UPDATED], unchanged=counts[Outcome.UNCHANGED],
                            rejected_households=rejected_households, rejected=rejected)

    def _check(self, group: Group, seen: dict[str, int], caller: Caller) -> Candidate | list[RejectedRow]:
        def refuse(column: str, code: str, reason: str) -> list[RejectedRow]:
            return [RejectedRow(row=group.first_row, column=column, code=code, reason=reason)]

        if group.kk_number in seen:
            return refuse("kk_number", "kk_repeated", f"this KK's rows must be consecutive; it appeared before at "
                                                      f"row {seen[group.kk_number]}")
        seen[group.kk_number] = group.first_row
        parsed = parse_household(group)
        if isinstance(parsed, list):
            return _rejected(parsed)
        village = parsed.address.village_code
        if not village_exists(village):
            return refuse("village_code", "unknown_village", "the village code does not exist in the Kemendagri data")
        if parsed.socio_economic.monthly_income > MAX_MONTHLY_INCOME:
            return refuse("monthly_income", "less_than_equal", f"must be at most {MAX_MONTHLY_INCOME}")
        if not caller.covers(village):
            return refuse("village_code", "outside_scope", "the village is outside this officer's scope")
        return Candidate(group, parsed, str(household_id(parsed.kk_number)), nik_warnings(parsed))

    async def _new_ones(self, candidates: list[Candidate], counts: dict[Outcome, int],
                        slow: list[Candidate]) -> list[Candidate]:
        """The candidates whose KK has no revision yet; the others are unchanged or go one by one."""
        latest: dict[str, dict[str, Any]] = {}
        cursor = self.versions.collection.find({"key": {"$in": [c.hid for c in candidates]}},
                                               {"key": 1, "n": 1, "data.household": 1})
        async for doc in cursor:
            if doc["key"] not in latest or doc["n"] > latest[doc["key"]]["n"]:
                latest[doc["key"]] = doc
        fresh: list[Candidate] = []
        for candidate in candidates:
            current = latest.get(candidate.hid)
            if current is None:
                fresh.append(candidate)
            elif Household.model_validate(current["data"]["household"]) == candidate.household:
                counts[Outcome.UNCHANGED] += 1
            else:
                slow.append(candidate)
        return fresh

    async def _register_new(self, fresh: list[Candidate], caller: Caller, counts: dict[Outcome, int],
                            slow: list[Candidate]) -> None:
        niks: set[str] = set()
        first_holders: list[Candidate] = []
        for c in fresh:  # a NIK twice in the batch: the first household in the file claims it in bulk
            mine = {m.nik for m in c.household.members}
            (slow if mine & niks else first_holders).append(c)
            niks |= mine
        fresh = first_holders
        started = time.monotonic()
        claims = [(m.nik, c.hid) for c in fresh for m in c.household.members]
        owner_of = [i for i, c in enumerate(fresh) for _ in c.household.members]
        refused = {owner_of[p] for p in await self.ctx.niks.claim_new(claims)}
        if time.monotonic() - started > self.ctx.grace.total_seconds() / 2:
            slow.extend(fresh)  # too slow: the claims may count as abandoned; decide each again
            return
        claimed = [c for i, c in enumerate(fresh) if i not in refused]
        slow.extend(c for i, c in enumerate(fresh) if i in refused)
        at = self.ctx.clock()
        items: list[tuple[str, dict[str, Any], list[dict[str, Any]]]] = []
        for c in claimed:
            event = registered_event(hid=uuid.UUID(c.hid), household=c.household, warnings=c.warnings,
                                     actor=caller.actor, at=at, causation_id=None)
            data = revision_data(c.household, c.warnings, change="registered", fields=(), transfers=[],
                                 actor=caller.actor, at=at)
            items.append((c.hid, data, self.ctx.entries([event])))
        lost = await self.versions.append_first_many(items, at=at)
        slow.extend(c for i, c in enumerate(claimed) if i in lost)
        written = [(version_id(key, 1), entries) for i, (key, _, entries) in enumerate(items) if i not in lost]
        counts[Outcome.REGISTERED] += len(written)
        await self.ctx.relay().flush_many(self.ctx.jetstream(), self.ctx.topology.events_stream,
                                          self.versions.collection, written)
