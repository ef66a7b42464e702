"""Referral at the seeds' scale: 100,000 cases over Jember's 248 villages; case lists and the SLA sweep.

    uv run python bench/referral_scale.py [--cases 100000] [--lists 600] [--sweeps 200] [--rounds 3]

Starts nats-server and the default Mongo engine (``resolve_mongo`` with a ``--heap`` JVM heap; or
PUSKESOS_NATS_URL / PUSKESOS_MONGO_URL), loads the cases, then measures the real code paths.
Everything (engine, NATS, the service process, this script) shares the machine's 2 cores.

Loading. Each case lives a simulated year through the service's own pure decisions
(``domain.decisions``: ``open_case`` from a ComplaintFiled, ``record_assessment`` with the packaged
rule set, ``issue_referral``, ``resolve_referral``, ``close_case`` and the SLA sweep's
``escalate_overdue`` on the day after each missed deadline): filed on a working day of the last 250,
70% closed within their SLA, 25% late (escalated to the kecamatan on the way), 5% very late (up to
the Dinas Sosial), by one of three paths (withdrawn, resolved after assessment, referred and
completed; 8% of referrals rejected once and referred again). Steps after now are not taken, so
recent cases are open at every stage. Every escalation whose deadline is before the last working day
has been made (earlier sweeps); the deadlines of the last working day are not, so the sweep under
test finds one working day's late cases (the realistic share: the first sweep after a deadline day).
Documents are built by the store's own functions (``store.change_document`` with the events'
``outbox_entries``, ``case_document``, ``referral_number_document``), every change marked published,
and written with ``insert_many``: the same documents ``store.append``, ``sync_case`` and
``reserve_referral_number`` write one at a time, written in bulk so 100k cases load in minutes.
The change log holds every change of the open cases, none of the closed ones (``--history last``
adds each closed case's last change, ``all`` every change): the whole log of 100k cases is ~2.1 GB
of BSON, ~11.5 GB of heap in the in-memory engine (measured: 1.15 GB live after a GC for 10k cases;
with ``last``, 3.3 GB of old generation at 85k cases, and on this shared machine the engine then
stopped answering for over the driver's 20 s heartbeat timeout, most likely in full GCs), and the
measured paths never read a closed case's changes: the service reads the change log by ``_id`` only
(the version it claims, the next one), which the engine's ``_id`` index answers whatever its size.

1. Case lists per village: a ``python -m puskesos_referral`` process on the loaded database (its own
   escalation loop off) answers ``GET /cases`` (count + sort by SLA deadline + skip/limit 50) for a
   random village with a random filter (open, closed, all, open by SLA state), first page then a
   random later page; timed at the HTTP client, and the same listing through ``CaseQueries`` in
   this process. Floor: the page's documents fetched by ``_id`` list (plain PyMongo, same projection).
2. SLA sweep (``ReferralService.escalate_overdue``, the loop's body, publishing to JetStream like
   the service): the candidates query alone (batch 200) with the due cases present; ``--rounds``
   first sweeps of the day escalating every due case (the due cases restored between rounds), with
   the time per escalation (between consecutive publishes) and per sweep; then ``--sweeps`` sweeps
   with nothing due (every 60 s in production). Floors: the candidates fetched by ``_id`` list; per
   escalation the same six writes by ``_id`` and one JetStream publish in plain PyMongo and nats-py.
3. Which read paths an index serves: each query with the engine's plan rule (equality or ``$in``
   on a prefix of an index's keys, then one range on the next key) and its measured time beside a
   full scan of the same collection.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import os
import random
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TypeVar

import httpx
import nats
from nats.js import JetStreamContext
from puskesos_referral.catalog import packaged_rule_sets, targets
from puskesos_referral.domain import sla
from puskesos_referral.domain.assessment import Observations, build_inputs
from puskesos_referral.domain.case import Case, CaseRuleError, CaseStatus
from puskesos_referral.domain.decisions import (
    Decision,
    check_referral,
    close_case,
    escalate_overdue,
    issue_referral,
    open_case,
    record_assessment,
    referral_id_for,
    resolve_referral,
)
from puskesos_referral.queries import CaseQueries
from puskesos_referral.requests import ListCasesQuery
from puskesos_referral.service import ReferralService
from puskesos_referral.store import (
    LIST_PROJECTION,
    Entries,
    MongoCaseStore,
    case_document,
    change_document,
    change_id,
    open_statuses,
    referral_number_document,
)
from puskesos_shared.auth import Officer, issue_token
from puskesos_shared.contracts import Actor, ActorKind
from puskesos_shared.contracts.intake import (
    Complainant,
    ComplaintCategory,
    ComplaintChannel,
    ComplaintFiled,
    ComplaintFiledData,
    Urgency,
)
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.contracts.referral import CaseResolution, ReferralOutcome
from puskesos_shared.logging import configure_logging
from puskesos_shared.messaging import ensure_streams
from puskesos_shared.mongo import Document, Mongo, is_duplicate_key
from puskesos_shared.outbox import outbox_entries
from puskesos_shared.regions import district_of, villages_of
from puskesos_shared.testing.processes import ServiceProcess
from puskesos_shared.testing.servers import resolve_mongo, resolve_nats
from puskesos_shared.topology import Topology
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import AutoReconnect, BulkWriteError

SECRET = "bench-referral-secret-0123456789abcdef0123"
JEMBER = "35.09"
WIB = dt.timezone(dt.timedelta(hours=7))
YEAR_WORKING_DAYS = 250
BATCH = 200  # the service's default ESCALATION_BATCH
CATEGORY_WEIGHTS = {ComplaintCategory.AID_NOT_RECEIVED: 30, ComplaintCategory.HEALTH_REFERRAL: 20,
                    ComplaintCategory.DATA_CORRECTION: 15, ComplaintCategory.ELDERLY_ALONE: 8,
                    ComplaintCategory.DISABILITY: 6, ComplaintCategory.NEGLECTED_CHILD: 5,
                    ComplaintCategory.HOMELESS_OR_BEGGAR: 3, ComplaintCategory.DISASTER_VICTIM: 3,
                    ComplaintCategory.OTHER: 10}
URGENCY_WEIGHTS = {Urgency.EMERGENCY: 3, Urgency.HIGH: 17, Urgency.NORMAL: 60, Urgency.LOW: 20}
FRONT = Actor(kind=ActorKind.OFFICER, id="bench-fo", role=OfficerRole.FRONT_OFFICE)
ASSESSOR = Actor(kind=ActorKind.OFFICER, id="bench-assessor", role=OfficerRole.ASSESSOR)
T = TypeVar("T")


def percentiles(values: Sequence[float]) -> str:
    ordered = sorted(values)

    def at(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] * 1000

    return f"p50 {at(50):.1f} / p95 {at(95):.1f} / p99 {at(99):.1f} ms (n={len(ordered)})"


async def timed(work: Awaitable[T]) -> tuple[float, T]:
    """Seconds ``work`` (a coroutine not yet started) takes, and its result."""
    started = time.perf_counter()
    result = await work
    return time.perf_counter() - started, result


# --- the cases' simulated lives ------------------------------------------------------------------
def at_local(day: dt.date, hours: float) -> dt.datetime:
    return (dt.datetime.combine(day, dt.time(), WIB) + dt.timedelta(hours=hours)).astimezone(dt.UTC)


def previous_working_day(day: dt.date) -> dt.date:
    day -= dt.timedelta(days=1)
    while not sla.is_working_day(day):
        day -= dt.timedelta(days=1)
    return day


class Lives:
    """Builds each case's changes (state and events per version) through the service's decisions."""

    def __init__(self, now: dt.datetime, seed: int = 7) -> None:
        self.now, self.rng = now, random.Random(seed)
        self.today = sla.local_date(f"{JEMBER}.01.2001", now)
        self.last_working_day = previous_working_day(self.today)
        self.filing_days = [self.last_working_day]
        while len(self.filing_days) < YEAR_WORKING_DAYS:
            self.filing_days.append(previous_working_day(self.filing_days[-1]))
        self.rule_set = packaged_rule_sets()[-1]
        self.hospital, self.dinsos = targets()["RSD-SOEBANDI"].target(), targets()["DINSOS-JEMBER"].target()
        self.sequences: dict[tuple[str, int], int] = {}

    def complaint(self, n: int, village: str, filed_at: dt.datetime) -> ComplaintFiled:
        rng, kecamatan = self.rng, district_of(village).replace(".", "")
        nik = kk = None
        if rng.random() < 0.8:  # most complainants are registered residents
            nik = f"{kecamatan}{rng.randint(1, 28) + 40 * rng.randint(0, 1):02d}{rng.randint(1, 12):02d}" \
                  f"{rng.randint(40, 99):02d}{rng.randint(1, 9999):04d}"
            kk = f"{kecamatan}{rng.randint(1, 28):02d}{rng.randint(1, 12):02d}{rng.randint(10, 25):02d}" \
                 f"{rng.randint(1, 9999):04d}"
        cid = uuid.uuid4()
        category = rng.choices(list(CATEGORY_WEIGHTS), weights=list(CATEGORY_WEIGHTS.values()))[0]
        urgency = rng.choices(list(URGENCY_WEIGHTS), weights=list(URGENCY_WEIGHTS.values()))[0]
        return ComplaintFiled(
            event_id=uuid.uuid4(), occurred_at=filed_at, producer="intake", correlation_id=f"complaint:{cid}",
            actor=FRONT, village_code=village,
            data=ComplaintFiledData(
                complaint_id=cid, case_number=f"{village.replace('.', '')}/{filed_at.year}/{n + 1:06d}",
                category=category, channel=ComplaintChannel.WALK_IN, urgency=urgency,
                description="Keluhan warga (bench).", complainant=Complainant(nik=nik, kk_number=kk,
                                                                               contact_phone="+6281234567890"),
                village_code=village, filed_by=FRONT.id, filed_at=filed_at))

    def life(self, n: int, village: str) -> tuple[list[Decision], list[Document]]:
        """Every change of one case in order, and the referral numbers it reserved."""
        rng = self.rng
        filed_on = rng.choice(self.filing_days)
        filed_at = at_local(filed_on, 8 + rng.random() * 6)
        opened = open_case(self.complaint(n, village, filed_at), filed_at + dt.timedelta(seconds=2))
        case = opened.case
        late = rng.random()
        extra = 0 if late < 0.70 else rng.randint(1, 8) if late < 0.95 else rng.randint(9, 40)
        span = (rng.randint(0, case.sla_working_days) if extra == 0 else case.sla_working_days + extra)
        path = rng.choices(("withdrawn", "resolved", "referred"), weights=(10, 35, 55))[0]
        steps: list[tuple[float, str]] = [(1.0, "close")]
        if path == "resolved":
            steps.insert(0, (0.4, "assess"))
        elif path == "referred":
            answers = ["accepted", "completed"] if rng.random() < 0.5 else ["completed"]
            if rng.random() < 0.08:
                answers = ["rejected", "reassess", "refer", *answers]
            fracs = [0.2 + 0.7 * (k + 1) / (len(answers) + 2) for k in range(len(answers) + 1)]
            steps = [(0.2, "assess"), *zip(fracs, ["refer", *answers], strict=True), (1.0, "close")]
        changes, numbers = [opened], list[Document]()
        for k, (frac, step) in enumerate(steps):
            day = sla.add_working_days(filed_on, round(frac * span))
            when = max(at_local(day, 9 + 6 * frac), filed_at + dt.timedelta(minutes=k + 1))
            if when >= self.now:
                break
            case = self._escalations(case, changes, until=when)
            decision = self._step(case, step, path, when, numbers)
            changes.append(decision)
            case = decision.case
        self._escalations(case, changes, until=self.now)
        return changes, numbers

    def _escalations(self, case: Case, changes: list[Decision], *, until: dt.datetime) -> Case:
        """The sweeps between the last change and ``until`` (the last working day's deadlines stay due)."""
        while case.level_due_on < self.last_working_day:
            moment = at_local(case.level_due_on + dt.timedelta(days=1), 0.1)
            decision = escalate_overdue(case, moment) if moment < until else None
            if decision is None:
                break
            changes.append(decision)
            case = decision.case
        return case

    def _step(self, case: Case, step: str, path: str, now: dt.datetime, numbers: list[Document]) -> Decision:
        command = str(uuid.uuid4())
        if step in ("assess", "reassess"):
            observations = Observations(needs_hospital_care=case.category is ComplaintCategory.HEALTH_REFERRAL,
                                        chronic_illness=self.rng.random() < 0.3)
            inputs = build_inputs(assessed_on=sla.local_date(case.village_code, now), category=case.category,
                                  urgency=case.urgency, observations=observations, household=None)
            return record_assessment(case, command_id=command, actor=ASSESSOR, inputs=inputs, rule_set=self.rule_set,
                                     kk_number=case.kk_number, note="", now=now)
        if step == "refer":
            target = self.hospital
            try:
                check_referral(case, target)
            except CaseRuleError:
                target = self.dinsos
            year = sla.local_date(case.village_code, now).year
            seq = self.sequences[(case.village_code, year)] = self.sequences.get((case.village_code, year), 0) + 1
            referral_id = referral_id_for(case.case_id, command)
            number = referral_number_document(referral_id, case.case_id, case.village_code, year, seq)
            numbers.append(number)
            return issue_referral(case, command_id=command, referral_number=str(number["_id"]), target=target,
                                  actor=ASSESSOR, due_on=sla.add_working_days(now.date(), 5), instructions="",
                                  now=now)
        if step in ("accepted", "completed", "rejected"):
            referral = case.referrals[-1]
            outcome = ReferralOutcome(step)
            return resolve_referral(case, referral_id=referral.referral_id, outcome=outcome, note="",
                                    responded_by=referral.target.code,
                                    actor=Actor(kind=ActorKind.EXTERNAL, id=referral.target.code),
                                    causation=command, now=now)
        resolution = {"withdrawn": self.rng.choice((CaseResolution.WITHDRAWN, CaseResolution.REJECTED)),
                      "resolved": CaseResolution.RESOLVED, "referred": CaseResolution.REFERRED_AND_COMPLETED}[path]
        return close_case(case, command_id=command, resolution=resolution, reason="Selesai ditangani.",
                          actor=ASSESSOR, now=now)


async def insert_all(collection: AsyncCollection[Document], docs: list[Document]) -> None:
    """``insert_many``, retried when the connection drops (a long GC pause of the engine under load
    can fail the driver's heartbeat, which cancels operations in flight); what a failed attempt
    inserted comes back as duplicate keys, which are what the retry expects."""
    for attempt in range(1, 6):
        try:
            await collection.insert_many(docs, ordered=False)
            return
        except BulkWriteError as exc:
            if not is_duplicate_key(exc):
                raise
            return
        except AutoReconnect as exc:
            print(f"  insert into {collection.name} interrupted ({type(exc).__name__}); retry {attempt}", flush=True)
            await asyncio.sleep(attempt)
    raise SystemExit(f"could not insert into {collection.name}")


async def load(store: MongoCaseStore, lives: Lives, n: int, villages: Sequence[str], *,
               history: str) -> dict[str, int]:
    """Bulk-inserts ``n`` cases' documents (which changes of closed cases: ``history``); returns counts."""
    counts = {"changes": 0, "numbers": 0, "open": 0, "due": 0}
    started = time.perf_counter()
    pending: list[asyncio.Task[Any]] = []
    changes: list[Document] = []
    cases: list[Document] = []
    numbers: list[Document] = []
    for i in range(n):
        decisions, reserved = lives.life(i, villages[i % len(villages)])
        final = decisions[-1].case
        kept = decisions if history == "all" or final.status is not CaseStatus.CLOSED else (
            decisions[-1:] if history == "last" else [])
        for decision in kept:
            changes.append(change_document(decision.case, outbox_entries(decision.events, store.topology),
                                           published=True))
        cases.append(case_document(final))
        numbers.extend(reserved)
        counts["open"] += final.status is not CaseStatus.CLOSED
        counts["due"] += escalate_overdue(final, lives.now) is not None
        if len(cases) >= 1000 or i == n - 1:
            await asyncio.gather(*pending)  # one batch in flight while the next is built
            counts["changes"] += len(changes)
            counts["numbers"] += len(numbers)
            pending = [asyncio.create_task(insert_all(coll, docs))
                       for coll, docs in ((store.changes, changes), (store.cases, cases), (store.numbers, numbers))
                       if docs]
            changes, cases, numbers = [], [], []
            if (i + 1) % 10_000 == 0 or i == n - 1:
                print(f"  loaded {i + 1:,} cases ({counts['changes']:,} changes) in "
                      f"{time.perf_counter() - started:.0f} s", flush=True)
    await asyncio.gather(*pending)
    return counts


# --- which index serves a read path --------------------------------------------------------------
def _equality(value: Any) -> bool:
    return not isinstance(value, dict) or set(value) <= {"$in", "$eq"}


def engine_plan(query: Document, indexes: Mapping[str, Any]) -> str:
    """The index the local engine picks for ``query`` (its rule, in ``SecondaryIndex``), or ``scan``."""
    if set(query) == {"_id"} and _equality(query["_id"]):
        return "_id"
    best, best_score = "scan", 0
    for name, info in indexes.items():
        keys = [key for key, _ in info["key"]]
        if info.get("unique") or name == "_id_":
            if set(query) == set(keys) and all(_equality(query[k]) for k in keys):
                return f"{name} (unique)"
            continue
        used, ranged = 0, False
        for key in keys:
            if key in query and _equality(query[key]):
                used += 1
                continue
            ranged = key in query and isinstance(query[key], dict) and set(query[key]) <= {"$gt", "$gte", "$lt",
                                                                                          "$lte"}
            break
        score = 2 * used + ranged
        if used and score > best_score:
            best, best_score = f"{name} ({', '.join(keys[:used + ranged])})", score
    return best


async def index_report(store: MongoCaseStore, lives: Lives, villages: Sequence[str]) -> None:
    rng = random.Random(11)
    today, indexes = lives.today, await store.cases.index_information()
    at_risk = sla.add_working_days(today, sla.AT_RISK_WORKING_DAYS).isoformat()
    month = {"$gte": today.replace(day=1).isoformat(), "$lt": today.isoformat()}

    def village() -> str:
        return rng.choice(villages)

    paths: list[tuple[str, Callable[[], Document], bool]] = [
        ("list village, open", lambda: {"village_code": village(), "status": {"$in": open_statuses()}}, True),
        ("list village, closed", lambda: {"village_code": village(), "status": "closed"}, True),
        ("list village, all", lambda: {"village_code": village()}, True),
        ("list village, open + at_risk", lambda: {"village_code": village(), "status": {"$in": open_statuses()},
                                                  "sla_due_on": {"$gte": today.isoformat(), "$lte": at_risk}}, True),
        ("list kecamatan, open", lambda: {"kecamatan_code": district_of(village()),
                                          "status": {"$in": open_statuses()}}, True),
        ("SLA sweep candidates", lambda: {"status": {"$in": open_statuses()}, "level": {"$in": ["village",
                                          "kecamatan"]}, "level_due_on": {"$lt": today.isoformat()}}, False),
        ("monthly summary, village", lambda: {"village_code": village(), "$or": [
            {"status": {"$ne": "closed"}}, {"filed_on": month}, {"closure.closed_on": month}]}, False),
        ("case by id", lambda: {"_id": str(uuid.uuid4())}, False),
        ("resident export, by NIK", lambda: {"subject_nik": "3509010101900001"}, False),
        ("resident export, by KK", lambda: {"kk_number": {"$in": ["3509010101200001"]}}, False),
        ("before: export with $or", lambda: {"$or": [{"subject_nik": "3509010101900001"},
                                                     {"kk_number": {"$in": ["3509010101200001"]}}]}, False),
        ("before: open list with $ne", lambda: {"village_code": village(), "status": {"$ne": "closed"}}, True),
        ("before: sweep with $ne", lambda: {"status": {"$ne": "closed"}, "level": {"$ne": "dinas_sosial"},
                                           "level_due_on": {"$lt": today.isoformat()}}, False),
    ]
    scan = [(await timed(store.cases.find({"_bench_absent": 1}).to_list()))[0] for _ in range(5)]
    print(f"read paths on cases ({await store.cases.estimated_document_count():,} documents; a full scan: "
          f"{percentiles(scan)}):")
    for label, make, listing in paths:
        query = make()
        seconds = []
        for _ in range(20):
            query = make()
            cursor = store.cases.find(query, LIST_PROJECTION)
            if listing:
                cursor = cursor.sort([("sla_due_on", 1), ("_id", 1)]).limit(50)
            seconds.append((await timed(cursor.to_list()))[0])
        print(f"  {label:<31} {engine_plan(query, indexes):<55} {percentiles(seconds)}")


# --- 1. case lists per village -------------------------------------------------------------------
FILTERS = (("open", None), ("closed", None), ("all", None), ("open", "breached"), ("open", "at_risk"),
           ("open", "on_track"))


async def bench_lists(http: httpx.AsyncClient, store: MongoCaseStore, queries: CaseQueries,
                      villages: Sequence[str], samples: int, prefix: str = "village_code") -> None:
    """``samples`` listings (first page, then a random later page) over HTTP, in-process, and the floor."""
    rng = random.Random(3)
    over_http, in_process, floor, rows = [], [], [], 0
    warm = Officer(officer_id="bench-coordinator", role=OfficerRole.COORDINATOR, scope=(villages[0],))
    for _ in range(20):  # first requests of a fresh process (imports, connection pool) are not timed
        await http.get("/cases", params={"village_code": villages[0]},
                       headers={"Authorization": f"Bearer {issue_token(warm, SECRET)}"})
    for _ in range(samples // 2):
        scope = rng.choice(villages) if prefix == "village_code" else district_of(rng.choice(villages))
        status, sla_state = rng.choice(FILTERS)
        who = Officer(officer_id="bench-coordinator", role=OfficerRole.COORDINATOR, scope=(scope,))
        headers = {"Authorization": f"Bearer {issue_token(who, SECRET)}"}
        params: dict[str, Any] = {prefix: scope, "status": status, "limit": 50, "offset": 0}
        if sla_state:
            params["sla_state"] = sla_state
        for page in range(2):
            seconds, response = await timed(http.get("/cases", params=params, headers=headers))
            response.raise_for_status()
            body = response.json()
            over_http.append(seconds)
            query = ListCasesQuery.model_validate({k: v for k, v in params.items()})
            in_process.append((await timed(queries.list_cases(who, query)))[0])
            ids = [item["case_id"] for item in body["items"]]
            rows += len(ids)
            floor.append((await timed(store.cases.find({"_id": {"$in": ids}}, LIST_PROJECTION).to_list()))[0])
            pages = -(-body["total"] // 50)
            if page == 0 and pages < 2:
                break
            params["offset"] = 50 * rng.randrange(1, pages) if pages > 1 else 0
    what = "village" if prefix == "village_code" else "kecamatan"
    print(f"case list per {what} ({len(over_http)} requests, {rows / max(1, len(over_http)):.0f} rows each "
          "on average):")
    print(f"  GET /cases over HTTP          {percentiles(over_http)}")
    print(f"  CaseQueries.list_cases        {percentiles(in_process)}")
    print(f"  floor: page by _id list       {percentiles(floor)}")


# --- 2. the SLA sweep ----------------------------------------------------------------------------
class Publisher:
    """The service's flush (publish every entry to JetStream, Nats-Msg-Id = event id), timing each change."""

    def __init__(self, js: JetStreamContext, topology: Topology) -> None:
        self.js, self.topology = js, topology
        self.marks: list[float] = []

    async def flush(self, change: str, entries: Entries) -> bool:
        for entry in entries:
            await self.js.publish(entry["subject"], entry["body"].encode(), headers=entry["headers"],
                                  stream=self.topology.events_stream)
        self.marks.append(time.perf_counter())
        return True


async def bench_sweep(store: MongoCaseStore, js: JetStreamContext, lives: Lives, rounds: int, sweeps: int) -> None:
    publisher = Publisher(js, store.topology)
    service = ReferralService(store, publisher.flush, clock=lambda: lives.now)
    before = sla.latest_local_date(lives.now)
    due = await store.escalation_candidates(before, 1_000_000)
    snapshot = await store.cases.find({"_id": {"$in": [str(c.case_id) for c in due]}}).to_list()
    query, query_floor = [], []
    for _ in range(sweeps):
        seconds, found = await timed(store.escalation_candidates(before, BATCH))
        query.append(seconds)
        ids = [str(c.case_id) for c in found]
        query_floor.append((await timed(store.cases.find({"_id": {"$in": ids}}).to_list()))[0])
    print(f"SLA sweep: {len(due)} cases due of {await store.cases.estimated_document_count():,} "
          f"({100 * len(due) / max(1, await store.cases.estimated_document_count()):.2f}%: the last working day's "
          f"deadlines)")
    print(f"  candidates query (batch {BATCH})  {percentiles(query)}")
    print(f"  floor: candidates by _id list   {percentiles(query_floor)}")
    per_escalation, per_sweep = list[float](), list[float]()
    for round_ in range(rounds):
        publisher.marks.clear()
        started = time.perf_counter()
        won = await service.escalate_overdue(BATCH)
        per_sweep.append(time.perf_counter() - started)
        marks = [started, *publisher.marks]
        per_escalation.extend(b - a for a, b in itertools.pairwise(marks[1:]))  # the first includes the query
        if won != len(due):
            raise SystemExit(f"round {round_ + 1}: escalated {won}, expected {len(due)}")
        if round_ == 0:
            in_stream = (await js.stream_info(store.topology.events_stream)).state.messages
            print(f"  first sweep escalated {won}; CaseEscalated in stream {in_stream} (expected {len(due)})")
        if round_ < rounds - 1:
            await restore(store, snapshot)
    print(f"  first sweep of the day, {rounds} rounds: {percentiles(per_sweep)}; "
          f"{len(due) / (sum(per_sweep) / len(per_sweep)):,.0f} escalations/s")
    print(f"  per escalation (claim, read model, publish, marks)  {percentiles(per_escalation)}")
    print(f"  floor per escalation (same 5 writes by _id + publish)  {percentiles(await write_floor(store, js, due))}")
    idle, idle_floor = [], []
    for _ in range(sweeps):
        idle.append((await timed(service.escalate_overdue(BATCH)))[0])
        idle_floor.append((await timed(store.cases.find_one({"_id": "absent"})))[0])
    print(f"  sweep with nothing due (every 60 s)  {percentiles(idle)}")
    print(f"  floor: one find by _id          {percentiles(idle_floor)}")


async def restore(store: MongoCaseStore, snapshot: list[Document]) -> None:
    """Puts the due cases back as they were before the sweep (their escalation changes removed)."""
    claimed = [change_id(uuid.UUID(doc["_id"]), int(doc["version"]) + 1) for doc in snapshot]
    await store.changes.delete_many({"_id": {"$in": claimed}})
    for doc in snapshot:
        await store.cases.replace_one({"_id": doc["_id"]}, doc)
    if await store.markers.count_documents({}):
        raise SystemExit("pending markers left after a sweep")


async def write_floor(store: MongoCaseStore, js: JetStreamContext, due: Sequence[Case]) -> list[float]:
    """Per due case: insert a marker and a change, replace the case, publish, flag, delete the marker."""
    seconds = []
    subject = store.topology.event_subject("referral", "case_escalated", 1)
    current = await store.cases.find({"_id": {"$in": [str(case.case_id) for case in due]}}).to_list()
    for doc in current:  # each written back as it is: the floor changes nothing the service wrote
        marker, change = f"floor:{doc['_id']}", f"floor:{doc['_id']}:{doc['version']:06d}"
        started = time.perf_counter()
        await store.markers.insert_one({"_id": marker, "case_id": doc["_id"], "marked_at": time.time()})
        await store.changes.insert_one({"_id": change, "case_id": marker, "version": doc["version"], "state": doc})
        await store.cases.replace_one({"_id": doc["_id"]}, doc)
        await js.publish(subject, b"{}", headers={"Nats-Msg-Id": change}, stream=store.topology.events_stream)
        await store.changes.update_one({"_id": change}, {"$set": {"published": True}})
        await store.markers.delete_one({"_id": marker})
        seconds.append(time.perf_counter() - started)
    await store.changes.delete_many({"case_id": {"$in": [f"floor:{doc['_id']}" for doc in current]}})
    return seconds


# --- the run -------------------------------------------------------------------------------------
def load_average() -> str:
    return "load average " + " / ".join(f"{v:.2f}" for v in os.getloadavg()) + " (1/5/15 min, 2 cores)"


async def run(args: argparse.Namespace, workdir: Path, nats_url: str, mongo_url: str) -> None:
    namespace = f"bscale{uuid.uuid4().hex[:6]}"
    topology, database = Topology(namespace=namespace), f"{namespace}_referral"
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_streams(js, topology)
    mongo = Mongo(mongo_url, database)
    store = MongoCaseStore(mongo.db, topology)
    await store.create_indexes()
    villages = villages_of(JEMBER)
    lives = Lives(dt.datetime.now(dt.UTC))
    print(f"loading {args.cases:,} cases over {len(villages)} villages of Jember (today {lives.today}, "
          f"deadlines of {lives.last_working_day} due) ...", flush=True)
    started = time.perf_counter()
    counts = await load(store, lives, args.cases, villages, history=args.history)
    print(f"loaded in {time.perf_counter() - started:.0f} s: {args.cases:,} cases ({counts['open']:,} open, "
          f"{counts['due']:,} due), {counts['changes']:,} changes, {counts['numbers']:,} referral numbers; "
          f"{load_average()}", flush=True)
    process = ServiceProcess("puskesos_referral", log_path=workdir / "referral.log", env={
        "PUSKESOS_NATS_URL": nats_url, "PUSKESOS_MONGO_URL": mongo_url, "PUSKESOS_NAMESPACE": namespace,
        "PUSKESOS_MONGO_DB": database, "PUSKESOS_AUTH_SECRET": SECRET, "PUSKESOS_LOG_LEVEL": "warning",
        "PUSKESOS_ESCALATION_ENABLED": "false"}).start()
    try:
        await asyncio.to_thread(process.wait_ready, 120)
        queries = CaseQueries(store, clock=lambda: dt.datetime.now(dt.UTC))
        async with httpx.AsyncClient(base_url=process.base_url, timeout=30) as http:
            await bench_lists(http, store, queries, villages, args.lists)
            await bench_lists(http, store, queries, villages, args.lists // 4, prefix="kecamatan_code")
    finally:
        process.stop(30)
    print(load_average(), flush=True)
    await bench_sweep(store, js, lives, args.rounds, args.sweeps)
    await index_report(store, lives, villages)
    print(load_average(), flush=True)
    await mongo.client.drop_database(database)
    await mongo.close()
    await nc.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--lists", type=int, default=600, help="list requests per village (a quarter per kecamatan)")
    parser.add_argument("--sweeps", type=int, default=200, help="candidate queries and sweeps with nothing due")
    parser.add_argument("--rounds", type=int, default=3, help="first sweeps of the day (due cases restored between)")
    parser.add_argument("--heap", default="8g", help="JVM heap of the local Mongo engine")
    parser.add_argument("--workdir", help="keep the servers' and the service's logs here (default: a temporary "
                        "directory)")
    parser.add_argument("--history", choices=("open", "last", "all"), default="open",
                        help="changes loaded: of open cases only, plus each closed case's last one, or all "
                        "(100k cases: ~2.5, ~4.5 and ~12 GB of engine heap)")
    args = parser.parse_args()
    configure_logging("warning")  # the in-process sweep logs every escalation at info
    with ExitStack() as stack:
        workdir = Path(args.workdir or stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-referral-")))
        workdir.mkdir(parents=True, exist_ok=True)
        nats_handle = resolve_nats(workdir)
        stack.callback(nats_handle.close)
        mongo_handle = resolve_mongo(workdir, heap=args.heap)
        stack.callback(mongo_handle.close)
        print(f"engine: {mongo_handle.origin} {mongo_handle.url} (heap {mongo_handle.heap}); {load_average()}")
        asyncio.run(run(args, workdir, nats_handle.url, mongo_handle.url))


if __name__ == "__main__":
    main()
