"""The demo's end-of-year report: a summary per kecamatan and kelurahan, with a bar chart.

Pure rendering: the data comes in as rows, the output is Markdown (with the lineage diagram
of a sample trace in Mermaid) and a standalone SVG chart; no plotting library needed.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field

from lokal import format_rupiah


@dataclass
class VillageRow:
    kecamatan: str
    kelurahan: str
    village_code: str
    households: int = 0
    complaints: int = 0
    cases_on_track: int = 0
    cases_at_risk: int = 0
    cases_breached: int = 0
    cases_closed: int = 0
    escalations: int = 0
    recipients: int = 0
    amount_paid: int = 0
    failures: int = 0
    rejected: int = 0


@dataclass
class Report:
    title: str
    villages: list[VillageRow]
    facts: list[tuple[str, str]] = field(default_factory=list)
    trace_tree: str = ""
    lineage_mermaid: str = ""
    verify_summary: str = ""
    trace_subject: str = ""
    #: (check, passed, detail): the end state checked where effects land
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    #: (phase, seconds)
    timings: list[tuple[str, float]] = field(default_factory=list)


COUNTS = ("households", "complaints", "cases_on_track", "cases_at_risk", "cases_breached", "cases_closed",
          "escalations", "recipients", "amount_paid", "failures", "rejected")


def _add(into: VillageRow, row: VillageRow) -> None:
    for name in COUNTS:
        setattr(into, name, getattr(into, name) + getattr(row, name))


def by_kecamatan(rows: Sequence[VillageRow]) -> list[VillageRow]:
    totals: dict[str, VillageRow] = {}
    for r in rows:
        _add(totals.setdefault(r.kecamatan, VillageRow(r.kecamatan, "", r.village_code.rsplit(".", 1)[0])), r)
    return sorted(totals.values(), key=lambda r: r.village_code)


def total(rows: Sequence[VillageRow]) -> VillageRow:
    out = VillageRow("total", "", rows[0].village_code[:5] if rows else "")
    for r in rows:
        _add(out, r)
    return out


def bar_chart_svg(rows: Sequence[VillageRow], *, width: int = 900, bar_height: int = 26) -> str:
    """Horizontal bars: BLT paid per kecamatan (Rupiah), with recipients and failures labelled."""
    top = 40
    height = top + bar_height * len(rows) + 30
    peak = max((r.amount_paid for r in rows), default=0) or 1
    label_w, bar_w = 170, width - 170 - 260
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
        f'font-size="13">',
        '<text x="10" y="22" font-size="16" font-weight="bold">BLT paid per kecamatan</text>',
    ]
    for i, r in enumerate(rows):
        y = top + i * bar_height
        w = int(bar_w * r.amount_paid / peak)
        parts += [
            f'<text x="10" y="{y + 17}">{html.escape(r.kecamatan)}</text>',
            f'<rect x="{label_w}" y="{y + 4}" width="{max(w, 1)}" height="{bar_height - 8}" fill="#2a7ab0"/>',
            f'<text x="{label_w + w + 8}" y="{y + 17}">{html.escape(format_rupiah(r.amount_paid))} · '
            f'{r.recipients} families · {r.failures} failed</text>',
        ]
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _table(rows: Sequence[VillageRow], first: str) -> list[str]:
    out = [
        f"| {first} | households | complaints | on track | at risk | breached | closed | escalations "
        "| recipients | paid | failed | rejected |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in [*rows, total(rows)]:
        name = r.kelurahan or r.kecamatan
        out.append(
            f"| {name} ({r.village_code}) | {r.households} | {r.complaints} | {r.cases_on_track} | {r.cases_at_risk} "
            f"| {r.cases_breached} | {r.cases_closed} | {r.escalations} | {r.recipients} "
            f"| {format_rupiah(r.amount_paid)} | {r.failures} | {r.rejected} |"
        )
    return out


def markdown(report: Report, chart_file: str) -> str:
    lines = [f"# {report.title}", ""]
    lines += [f"- **{k}**: {v}" for k, v in report.facts] + [""]
    lines += [f"![BLT paid per kecamatan]({chart_file})", "", "## Per kecamatan", ""]
    lines += [*_table(by_kecamatan(report.villages), "kecamatan"), "", "## Per kelurahan", ""]
    lines += [*_table(sorted(report.villages, key=lambda r: r.village_code), "kelurahan"), ""]
    if report.checks:
        lines += ["## End-state checks", ""]
        lines += [f"- {'PASS' if ok else '**FAIL**'} {name}: {detail}" for name, ok, detail in report.checks] + [""]
    if report.timings:
        lines += ["## Timings", "", "| phase | seconds |", "|---|---:|"]
        lines += [f"| {name} | {seconds:,.1f} |" for name, seconds in report.timings] + [""]
    if report.verify_summary:
        lines += ["## Audit chain", "", "```", report.verify_summary.strip(), "```", ""]
    if report.trace_tree:
        lines += ["## A decision traced to its roots", ""]
        if report.trace_subject:
            lines += [f"`audit trace allocation {report.trace_subject}` (personal data masked):", ""]
        lines += ["```", report.trace_tree.rstrip(), "```", ""]
    if report.lineage_mermaid:
        lines += ["### Lineage", "", "```mermaid", report.lineage_mermaid.strip(), "```", ""]
    return "\n".join(lines)
