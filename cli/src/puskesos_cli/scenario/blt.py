"""The year-end BLT round: DBHCHT, Rp300.000 per family, a budget for fewer families than eligible.

The Dinas Sosial operator opens the round with a quota for every kelurahan (the distribution
service allocates only where a village has a quota) of which a few are tight, makes every
family whose latest assessment finds it eligible a candidate, imports the social office's
recipient list (a CSV of poor families written from the population, with a few broken rows the
import must report), watches allocation and disbursement through the simulated bank live, and
closes the round, which reconciles the service's records with the bank's ledger.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import hashlib
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

from lokal import format_rupiah
from puskesos_shared.ids import stable_id
from puskesos_shared.regions import village_digits
from rich.progress import Progress

from .context import AMOUNT_PER_FAMILY, Scenario
from .http import progress_bar, run_pool
from .population import Family

COLUMNS = ("kk_number", "head_nik", "head_name", "village_code", "account_number", "collection_point")
CHUNK = 500
DECLINED_SHARE = 0.02  # accounts the bank does not know (the simulator declines the 0000 prefix)
ROUND_TIMEOUT = 1800.0  # plus a fifth of a second per candidate (the full-scale round)
REGENCY_SLUG = {"35.73": "malang", "35.09": "jember"}


def write_recipient_csv(path: Path, families: list[Family], seed: int) -> tuple[int, int]:
    """The recipient list; returns (rows, rows that must be rejected at import)."""
    rng = random.Random(f"{seed}:recipients")  # noqa: S311 - synthetic scenario
    rows: list[dict[str, str]] = []
    for family in families:
        row = {"kk_number": family.kk_number, "head_nik": family.head.nik, "head_name": family.head.name,
               "village_code": family.village_code, "account_number": "", "collection_point": ""}
        if rng.random() < 0.7:
            prefix = "0000" if rng.random() < DECLINED_SHARE else str(rng.randint(1000, 9999))
            row["account_number"] = f"{prefix}{rng.randint(10**7, 10**9 - 1)}"
        else:
            row["collection_point"] = f"POS-{village_digits(family.village_code)[:6]}"
        rows.append(row)
    broken = 0
    if len(rows) >= 10:  # what real lists contain: a typo in a NIK, a missing payout, a family listed twice
        bad_nik = dict(rows[3], head_nik=rows[3]["head_nik"][:6] + "3213" + rows[3]["head_nik"][10:])
        no_payout = dict(rows[5], account_number="", collection_point="")
        rows[3], rows[5] = bad_nik, no_payout
        rows.insert(len(rows) // 2, dict(rows[7]))
        broken = 3
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    return len(rows), broken


def _assessed_blt(s: Scenario) -> dict[str, bool]:
    """KK -> what the family's latest assessment decided about BLT (families assessed in this run)."""
    out: dict[str, bool] = {}
    for work in s.complaints:
        result = work.assessment or {}
        verdict = [bool(e["eligible"]) for e in result.get("eligibility", ()) if e["program"] == "BLT"]
        if work.family and verdict:
            out[work.family.kk_number] = verdict[0]
    return out


def plan_round(s: Scenario) -> dict[str, Any]:
    """A quota per village (three of them tight) and a budget for ~85% of the families that the
    quotas leave: the operator knows the list is longer than the money."""
    assessed = _assessed_blt(s)
    by_kk = {f.kk_number: f.village_code for f in s.families}
    expected = {f.kk_number: f.village_code for f in s.recipients if assessed.get(f.kk_number) is not False}
    expected.update({kk: by_kk[kk] for kk, eligible in assessed.items() if eligible})
    per_village = Counter(expected.values())
    tight = [v for v, _ in per_village.most_common(3)]
    s.quotas = {v: (max(1, per_village[v] * 6 // 10) if v in tight else per_village[v] + 5) for v in s.villages}
    s.facts["tight_quotas"] = {v: s.quotas[v] for v in tight}
    within_quotas = sum(min(n, s.quotas[v]) for v, n in per_village.items())
    slots = max(1, int(within_quotas * 0.85))
    s.budget_slots = slots
    year = dt.date.today().year
    s.round_key = f"{REGENCY_SLUG.get(s.options.regency, 'regency')}-dbhcht-{year}-{s.options.run_id}"
    return {"key": s.round_key, "name": f"BLT DBHCHT {year} ({s.options.regency})", "program": "BLT",
            "funding_source": "DBHCHT", "amount_per_family": AMOUNT_PER_FAMILY,
            "budget_cap": slots * AMOUNT_PER_FAMILY, "eligibility_rule_version": "blt-eligibility@2",
            "period_start": f"{year}-11-01", "period_end": f"{year}-12-31",
            "village_quotas": [{"village_code": v, "max_families": q} for v, q in sorted(s.quotas.items())],
            "villages_without_quota": "excluded"}


def read_chunks(path: Path) -> tuple[str, list[list[dict[str, Any]]]]:
    """The file's SHA-256 (the batch id derives from it: importing the same file again is the same
    batch) and its rows in chunks, each with its line number as the service reports it."""
    chunks: list[list[dict[str, Any]]] = [[]]
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        for fields in reader:
            if len(chunks[-1]) == CHUNK:
                chunks.append([])
            chunks[-1].append({"row": reader.line_num, "fields": fields})
    return hashlib.sha256(path.read_bytes()).hexdigest(), chunks


async def import_csv(s: Scenario, path: Path) -> dict[str, Any]:
    headers = s.officers.operator()
    sha, chunks = await asyncio.to_thread(read_chunks, path)
    batch_id = str(stable_id("import-batch", s.round_id, sha))

    async def send(rows: list[dict[str, Any]]) -> dict[str, Any]:
        return dict(await s.distribution.post(f"/rounds/{s.round_key}/candidates",
                                              {"batch_id": batch_id, "rows": rows}, headers=headers))

    results, _ = await run_pool(chunks, send, concurrency=4, console=s.console, label="recipient rows imported",
                                size=len)
    rejected = [r for result in results for r in result["rejected"]]
    total = sum(len(c) for c in chunks)
    await s.distribution.post(f"/rounds/{s.round_key}/imports/{batch_id}/finish",
                              {"total_rows": total, "rejected_rows": len(rejected), "file_name": path.name},
                              headers=headers)
    return {"rows": total, "accepted": sum(int(r["accepted"]) for r in results), "rejected": rejected}


def _decided(live: dict[str, Any]) -> tuple[int, int]:
    rejected = sum(int(v) for k, v in live.items() if k.startswith("rejected_"))
    return int(live.get("allocated", 0)) + rejected, int(live.get("disbursed", 0)) + int(live.get("failed", 0))


async def watch_round(s: Scenario) -> dict[str, Any]:
    """Live progress of allocation and disbursement until no work is left."""
    headers = s.officers.operator()
    started, settled = time.monotonic(), 0
    timeout = ROUND_TIMEOUT + 0.2 * len(s.recipients)
    with progress_bar(s.console) as progress:
        decide = progress.add_task("allocation decisions", total=None)
        pay = progress.add_task("payouts (bank)", total=None)
        while True:
            status = await s.distribution.get(f"/rounds/{s.round_key}", headers=headers)
            _show(progress, decide, pay, status)
            pending = status["pending"]
            decided, paid = _decided(status["live"])
            done = decided >= int(status["candidates"]) and paid >= int(status["live"].get("allocated", 0))
            settled = settled + 1 if not any(pending.values()) else 0
            if settled >= 2 and (done or settled >= 10):
                return dict(status)
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"round {s.round_key} still has work after {timeout:.0f}s: {pending}")
            await asyncio.sleep(0.5)  # a refresh period; the loop ends on the state above


def _show(progress: Progress, decide: Any, pay: Any, status: dict[str, Any]) -> None:
    live = status["live"]
    decided, paid = _decided(live)
    rejected = {k.removeprefix("rejected_"): int(v) for k, v in live.items() if k.startswith("rejected_")}
    progress.update(decide, total=max(int(status["candidates"]), decided), completed=decided,
                    description=f"decisions: {int(live.get('allocated', 0)):,} allocated, "
                                f"{sum(rejected.values()):,} rejected")
    progress.update(pay, total=max(int(live.get("allocated", 0)), paid), completed=paid,
                    description=f"payouts: {format_rupiah(int(live.get('disbursed_amount', 0)))}, "
                                f"{int(live.get('failed', 0))} failed")


async def run_round(s: Scenario) -> None:
    headers = s.officers.operator()
    config = plan_round(s)
    opened = await s.distribution.post("/rounds", config, headers=headers)
    s.round_id, s.round_config = str(opened["round_id"]), config
    s.say(f"  round {s.round_key} opened: {format_rupiah(config['budget_cap'])} for {s.budget_slots:,} families "
          f"at {format_rupiah(AMOUNT_PER_FAMILY)}; quotas for {len(s.quotas)} villages "
          f"({len(s.facts['tight_quotas'])} tight)")
    assessed = await s.distribution.post(f"/rounds/{s.round_key}/assessed-candidates", {}, headers=headers)
    s.say(f"  {assessed['enqueued']} assessed families eligible for BLT enqueued "
          f"({assessed['not_eligible']} assessed not eligible)")
    path = s.env.work_dir / f"recipients-{s.round_key}.csv"
    rows, broken = await asyncio.to_thread(write_recipient_csv, path, s.recipients, s.options.seed)
    s.import_summary = await import_csv(s, path)
    s.import_summary["assessed"] = assessed
    reasons = Counter(f"{r['column']}: {r['reason']}" for r in s.import_summary["rejected"])
    s.say(f"  recipient list {path.name}: {rows:,} rows, {s.import_summary['accepted']:,} accepted, "
          f"{len(s.import_summary['rejected'])} rejected (" + "; ".join(f"{k} x{n}" for k, n in reasons.items())
          + f"); {broken} broken on purpose")
    began = time.monotonic()
    await watch_round(s)
    s.timings["round_work"] = round(time.monotonic() - began, 2)
    s.round_closed = dict(await s.distribution.post(f"/rounds/{s.round_key}/close", {}, headers=headers))
    totals, rec = s.round_closed["totals"], s.round_closed["reconciliation"]
    s.say(f"  closed: {totals['allocated_count']:,} allocated, {totals['disbursed_count']:,} paid "
          f"({format_rupiah(totals['disbursed_amount'])}), {totals['failed_count']} failed, "
          f"{totals['rejected_count']:,} rejected {dict(totals['rejected_by_reason'])}; budget left "
          f"{format_rupiah(totals['budget_remaining'])}; reconciliation with the bank: "
          + ("[green]matched exactly[/green]" if rec["matched"] else f"[red]{len(rec['mismatches'])} mismatches[/red]"))
