"""The year-end scenario from start to end, against running services (``ScenarioEnv``).

1. pendataan: households registered by each kelurahan's back office; the officers' directory;
2. keluhan: complaints filed by the front offices;
3. case work: cases opened by the referral service, assessed, referred, answered, closed;
4. a few working days later: the SLA loop escalates what is overdue;
5. the BLT round: open, candidates (assessed and imported), allocation and payouts, close;
6. waiting until notifications and the audit log have caught up;
7. the end state: checks, a summary per kecamatan and kelurahan, audit verify and a traced allocation.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from puskesos_shared.regions import villages_of
from rich.console import Console

from . import audit, blt, bus, casework, complaints, escalation, households, settle, summary
from .checks import Check, EndState, end_state_checks
from .context import Scenario, ScenarioOptions
from .env import ScenarioEnv
from .http import new_client, progress_bar
from .officers import Officers
from .population import Family, generate
from .report import VillageRow


@dataclass
class ScenarioResult:
    options: ScenarioOptions
    rows: list[VillageRow]
    checks: list[Check]
    facts: dict[str, Any]
    timings: dict[str, float]
    round_closed: dict[str, Any]
    sla: dict[str, int]
    verify: dict[str, Any]
    trace_subject: str = ""
    trace_tree: str = ""
    trace_mermaid: str = ""
    events: int = 0
    event_types: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def population(options: ScenarioOptions, console: Console | None = None) -> tuple[list[Family], list[Family]]:
    """(registered households, families on the recipient list); a long list is generated under a progress bar."""
    registered = list(generate(options.size, seed=options.seed, regency=options.regency))
    if options.recipients is None:
        return registered, [f for f in registered if f.poor]
    # the generator is prefix-stable: the registered households are the first ones of the longer run
    everyone = generate(10**9, seed=options.seed, regency=options.regency)
    poor = itertools.islice((f for f in everyone if f.poor), options.recipients)
    if console is None:
        return registered, list(poor)
    recipients: list[Family] = []
    with progress_bar(console) as progress:
        task = progress.add_task("recipient families generated", total=options.recipients)
        for family in poor:
            recipients.append(family)
            if len(recipients) % 1000 == 0:
                progress.update(task, completed=len(recipients))
        progress.update(task, completed=len(recipients))
    return registered, recipients


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash
        if isinstance(item, dict):
            out.append(item)
    return out


async def _no_trace() -> tuple[str, str]:
    return "", ""


def sample_allocation(events: list[dict[str, Any]], round_id: str) -> str | None:
    """The allocation with the richest lineage to show: from an assessment, paid, and the family told."""
    told = {str(e["data"]["source_event_id"]) for e in events if e.get("event_type") == "NotificationSent"}
    paid = {str(e["data"]["allocation_id"]): str(e["event_id"]) for e in events
            if e.get("event_type") == "AidDisbursed"}
    allocations = [e for e in events if e.get("event_type") == "AidAllocated" and e["data"]["round_id"] == round_id]

    def rank(e: dict[str, Any]) -> tuple[bool, bool, bool, int]:
        allocation = str(e["data"]["allocation_id"])
        return (e["data"]["basis"]["source"] != "assessment", allocation not in paid,
                paid.get(allocation) not in told, int(e["_seq"]))

    ranked = sorted(allocations, key=rank)
    return str(ranked[0]["data"]["allocation_id"]) if ranked else None


async def run_scenario(env: ScenarioEnv, options: ScenarioOptions, console: Console) -> ScenarioResult:
    started = time.monotonic()
    families, recipients = population(options, console)
    async with new_client(options.concurrency) as client, bus.connect(env) as b:
        s = Scenario(env=env, options=options, console=console, client=client, bus=b,
                     villages=villages_of(options.regency), families=families, recipients=recipients,
                     officers=Officers(env.auth_secret, options.regency))
        with s.phase("households", "1. Pendataan: households registered by the back offices"):
            await households.register_households(s)
            await households.publish_directory(s)
        with s.phase("complaints", "2. Keluhan: complaints filed by the front offices"):
            await complaints.file_complaints(s)
        with s.phase("casework", "3. Case work: assessment, referral, the targets' answers, closure"):
            await casework.work_cases(s)
        with s.phase("escalation", "4. A few working days later: SLA escalations"):
            await escalation.days_later(s)
        with s.phase("round", "5. BLT DBHCHT round: candidates, allocation, payouts, reconciliation"):
            await blt.run_round(s)
        with s.phase("settle", "6. Notifications and the audit log catch up"):
            caught_up = await settle.settle(s, timeout=settle.SETTLE_TIMEOUT + 0.05 * 4 * len(recipients))
            s.say(f"  every consumer drained and the audit log at the stream's head (seq "
                  f"{caught_up['stream_last_seq']:,}) after {caught_up['waited_seconds']} s")
        with s.phase("end_state", "7. End state: checks, audit verify, a traced allocation"):
            with progress_bar(console) as progress:
                reading = progress.add_task("events read for the checks", total=None)
                events = await b.events(progress=lambda read, total: progress.update(
                    reading, completed=read, total=max(read, total)))
            subject = sample_allocation(events, s.round_id) or ""
            verify_report, cases, (tree, diagram), dead_letters = await asyncio.gather(
                audit.verify(env), summary.case_rows(s),
                audit.trace(env, "allocation", subject) if subject else _no_trace(), b.dead_letters())
            state = EndState(
                events=events, complaint_ids={w.complaint_id for w in s.complaints},
                case_ids={w.case_id for w in s.complaints}, round_id=s.round_id,
                budget_cap=int(s.round_config["budget_cap"]), quotas=s.quotas,
                ledger=read_jsonl(env.gateway_ledger), channel_lines=read_jsonl(env.notifications_file),
                verify=verify_report, stream_last_seq=int(caught_up["stream_last_seq"]), dead_letters=dead_letters)
            checks = end_state_checks(state)
            s.facts["escalations_by_cause"] = dict(Counter(
                "SLA breached" if str(e["data"]["reason"]).startswith("SLA") else "referral rejected twice"
                for e in state.of_cases("CaseEscalated")))
    s.timings["total"] = round(time.monotonic() - started, 2)
    types: dict[str, int] = {}
    for e in events:
        types[str(e.get("event_type"))] = types.get(str(e.get("event_type")), 0) + 1
    return ScenarioResult(options=options, rows=summary.village_rows(s, cases, events), checks=checks,
                          facts=s.facts | {"import": s.import_summary, "round_key": s.round_key,
                                           "round_id": s.round_id, "budget_slots": s.budget_slots},
                          timings=s.timings, round_closed=s.round_closed, sla=summary.sla_counts(cases),
                          verify=verify_report, trace_subject=subject, trace_tree=tree, trace_mermaid=diagram,
                          events=len(events), event_types=dict(sorted(types.items())))
