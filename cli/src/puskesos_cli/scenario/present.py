"""Showing a scenario's outcome: the terminal summary and the written report (Markdown + SVG chart)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lokal import format_rupiah
from rich.console import Console
from rich.table import Table

from .audit import verify_summary
from .report import Report, bar_chart_svg, by_kecamatan, markdown
from .runner import ScenarioResult
from .summary import table

CHART_FILE = "blt-per-kecamatan.svg"
KELURAHAN_ROWS_ON_SCREEN = 60


def _rupiah(value: Any) -> str:
    return format_rupiah(int(value or 0))


def key_facts(result: ScenarioResult) -> list[tuple[str, str]]:
    f, o = result.facts, result.options
    totals = (result.round_closed or {}).get("totals", {})
    rec = (result.round_closed or {}).get("reconciliation", {})
    imported = f.get("import", {})
    return [
        ("population", f"{f.get('households', 0):,} households ({f.get('members', 0):,} people) in "
                       f"{len(result.rows)} kelurahan/desa of {o.regency}, seed {o.seed}"),
        ("complaints", f"{f.get('complaints', 0)} ({f.get('complaints_anonymous', 0)} anonymous); "
                       + ", ".join(f"{k} {n}" for k, n in (f.get("complaints_by_category") or {}).items())),
        ("cases by SLA state", ", ".join(f"{k} {n}" for k, n in result.sla.items())),
        ("referrals", f"{f.get('referrals', 0)}; case plans "
                      + ", ".join(f"{k} {n}" for k, n in (f.get("case_plans") or {}).items())),
        ("escalations", ", ".join(f"{k} {n}" for k, n in (f.get("escalations_by_cause") or {}).items()) or "none"),
        ("BLT round", f"{f.get('round_key')} (DBHCHT): Rp300.000 per family, budget for "
                      f"{f.get('budget_slots', 0):,} families, {_rupiah(totals.get('budget_cap'))}"),
        ("recipient list", f"{imported.get('rows', 0):,} rows, {imported.get('accepted', 0):,} accepted, "
                           f"{len(imported.get('rejected') or ())} rejected at import"),
        ("allocation", f"{totals.get('allocated_count', 0):,} allocated ({_rupiah(totals.get('allocated_amount'))}), "
                       f"{totals.get('rejected_count', 0):,} rejected "
                       + ", ".join(f"{k} {n}" for k, n in (totals.get("rejected_by_reason") or {}).items())),
        ("payouts", f"{totals.get('disbursed_count', 0):,} paid ({_rupiah(totals.get('disbursed_amount'))}), "
                    f"{totals.get('failed_count', 0)} failed; budget left {_rupiah(totals.get('budget_remaining'))}"),
        ("reconciliation with the bank", "matched exactly" if rec.get("matched") else
         f"{len(rec.get('mismatches') or ())} mismatches"),
        ("events on the stream", f"{result.events:,}: " + ", ".join(f"{k} {n:,}" for k, n in
                                                                      result.event_types.items())),
        ("run time", f"{result.timings.get('total', 0):,.0f} s for the scenario"),
    ]


def report_of(result: ScenarioResult) -> Report:
    return Report(
        title=f"Puskesos year-end scenario: {result.options.regency}, {result.facts.get('households', 0):,} households",
        villages=result.rows, facts=key_facts(result), trace_tree=result.trace_tree,
        lineage_mermaid=result.trace_mermaid, verify_summary=verify_summary(result.verify),
        trace_subject=result.trace_subject, checks=[(c.name, c.ok, c.detail) for c in result.checks],
        timings=list(result.timings.items()))


def write_report(result: ScenarioResult, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    report = report_of(result)
    (directory / CHART_FILE).write_text(bar_chart_svg(by_kecamatan(report.villages)), encoding="utf-8")
    path = directory / "report.md"
    path.write_text(markdown(report, CHART_FILE), encoding="utf-8")
    return path


def print_summary(result: ScenarioResult, console: Console) -> None:
    console.rule("[bold]Summary")
    facts = Table(show_header=False, box=None)
    facts.add_column(style="bold")
    facts.add_column()
    for key, value in key_facts(result):
        facts.add_row(key, value)
    console.print(facts)
    console.print(table(by_kecamatan(result.rows), "kecamatan", "Per kecamatan"))
    if len(result.rows) <= KELURAHAN_ROWS_ON_SCREEN:
        console.print(table(result.rows, "kelurahan", "Per kelurahan"))
    else:
        console.print(f"(per kelurahan/desa: {len(result.rows)} rows, in the report)")
    console.print("[bold]audit verify[/bold]")
    console.print(verify_summary(result.verify))
    if result.trace_tree:
        console.print(f"[bold]audit trace allocation {result.trace_subject}[/bold] (first lines; the whole tree and "
                      "its Mermaid lineage diagram are in the report)")
        for line in result.trace_tree.splitlines()[:24]:
            console.print(line, markup=False, highlight=False)
    console.print("[bold]end-state checks[/bold]")
    for check in result.checks:
        mark = "[green]PASS[/green]" if check.ok else "[red]FAIL[/red]"
        console.print(f"  {mark} {check.name}: {check.detail}", highlight=False)
