"""Rendering traces and reports for people: a rich tree, a Mermaid lineage diagram, verify tables."""

from __future__ import annotations

import json
from typing import Any

from lokal import format_rupiah
from rich.console import Group
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from .trace import TraceNode, TraceResult
from .verify import VerifyReport


def _actor(node: TraceNode) -> str:
    actor = node.actor or {}
    if not actor:
        return "?"
    role = f" ({actor['role']})" if actor.get("role") else ""
    return f"{actor.get('id', '?')}{role}"


def _decision_lines(node: TraceNode) -> list[str]:
    d = node.decision or {}
    kind = d.get("kind")
    lines = [f"rule set {d.get('rule_set_version')}"] if d.get("rule_set_version") else []
    if kind == "assessment":
        result = d.get("result") or {}
        eligible = [e["program"] for e in result.get("eligibility", []) if e.get("eligible")]
        lines += [f"result: {result.get('pmks_category')}, score {result.get('vulnerability_score')}, "
                  f"eligible for {', '.join(eligible) or 'nothing'}",
                  f"inputs digest {str(d.get('inputs_digest'))[:16]}…",
                  f"inputs: {json.dumps(d.get('inputs'), sort_keys=True)[:300]}"]
    elif kind == "allocation":
        basis = d.get("basis") or {}
        lines += [f"amount {format_rupiah(int(d.get('amount') or 0))}, basis {basis.get('source')}"
                  + (f" (assessment event {basis.get('assessment_event_id')})" if basis.get("assessment_event_id")
                     else "")]
    elif kind == "rejection":
        lines += [f"rejected: {d.get('reason')} {d.get('detail') or ''}".rstrip()]
    elif kind == "round_rules":
        lines += [f"{d.get('program')}: {format_rupiah(int(d.get('amount_per_family') or 0))} per family, "
                  f"budget {format_rupiah(int(d.get('budget_cap') or 0))}"]
    return lines


def _label(node: TraceNode) -> Text:
    style = {"start": "bold cyan", "ancestor": "", "descendant": "green"}.get(node.role, "")
    text = Text(f"#{node.seq} {node.event_type or '(not an event)'}", style=style)
    text.append(f"  {node.occurred_at or ''}  by {_actor(node)}  village {node.village_code or '-'}", style="dim")
    if node.decision and node.decision.get("kind") != "round_rules":
        text.append("  DECISION", style="bold yellow")
    if node.error:
        text.append(f"  [{node.error}]", style="red")
    return text


def tree(result: TraceResult) -> Tree:
    title = f"trace {result.query['kind']} {result.query['value']}: {len(result.nodes)} events, " \
            f"{len(result.decisions)} decisions, {result.ms} ms"
    root = Tree(Text(title, style="bold"))
    by_id = {n.id: n for n in result.nodes}
    children: dict[str, list[tuple[str, str]]] = {}
    for e in result.edges:
        children.setdefault(e.parent, []).append((e.child, e.relation))
    shown: set[str] = set()

    def add(branch: Tree, node_id: str, relation: str | None) -> None:
        node = by_id[node_id]
        label = _label(node)
        if relation:
            label = Text(f"{relation} → ", style="dim") + label
        if node_id in shown:
            branch.add(label + Text("  (shown above)", style="dim"))
            return
        shown.add(node_id)
        sub = branch.add(label)
        for line in _decision_lines(node):
            sub.add(Text(line, style="yellow"))
        for child, rel in sorted(children.get(node_id, []), key=lambda c: by_id[c[0]].seq if c[0] in by_id else 0):
            if child in by_id:
                add(sub, child, rel)

    for external in result.externals:
        ext = root.add(Text(f"external cause {external} (a command or record outside the log)", style="magenta"))
        for child, rel in children.get(f"external:{external}", []):
            if child in by_id:
                add(ext, child, rel)
    for node_id in result.roots:
        if node_id not in shown:
            add(root, node_id, None)
    if result.truncated:
        root.add(Text("… truncated (raise max_nodes)", style="red"))
    return root


def _escape(text: str) -> str:
    return text.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def mermaid(result: TraceResult) -> str:
    """A Mermaid flowchart of the lineage (causes on the left)."""
    lines = ["graph LR"]
    for node in result.nodes:
        parts = [f"#{node.seq} {node.event_type or 'not an event'}", _actor(node)]
        if node.village_code:
            parts.append(node.village_code)
        parts += _decision_lines(node)[:2]
        label = "<br/>".join(_escape(p) for p in parts)
        lines.append(f'  n{node.seq}["{label}"]')
    externals = {x: f"x{i}" for i, x in enumerate(result.externals)}
    for x, ident in externals.items():
        lines.append(f'  {ident}(["{_escape("external: " + x)}"])')
    by_id = {n.id: n for n in result.nodes}
    for e in result.edges:
        parent = externals.get(e.parent.removeprefix("external:")) if e.parent.startswith("external:") else (
            f"n{by_id[e.parent].seq}" if e.parent in by_id else None)
        if parent and e.child in by_id:
            lines.append(f"  {parent} -->|{_escape(e.relation)}| n{by_id[e.child].seq}")
    lines += ["  classDef decision fill:#fde68a,stroke:#b45309", "  classDef start stroke-width:3px,stroke:#0e7490"]
    for node in result.nodes:
        if node.id in result.decisions:
            lines.append(f"  class n{node.seq} decision")
        elif node.role == "start":
            lines.append(f"  class n{node.seq} start")
    return "\n".join(lines) + "\n"


def verify_table(report: VerifyReport) -> Group:
    table = Table(title="audit log verification", show_header=False)
    table.add_row("result", "[green]intact[/green]" if report.ok else "[bold red]TAMPERED OR DAMAGED[/bold red]")
    table.add_row("records", f"{report.records:,} in {report.chunks:,} chunks "
                  f"(seq {report.first_seq}..{report.last_seq})")
    table.add_row("head", str(report.head_hash))
    table.add_row("checkpoints matched", str(report.checkpoints_checked))
    table.add_row("speed", f"{report.records_per_second:,.0f} records/s ({report.seconds} s)")
    findings = Table("kind", "seq", "detail", title=f"findings ({report.findings_total})") if report.findings else None
    for f in report.findings:
        seq = "" if f.seq is None else str(f.seq) if f.last_seq in (None, f.seq) else f"{f.seq}..{f.last_seq}"
        assert findings is not None
        findings.add_row(Text(f.kind, style="red" if f.failure else "yellow"), seq, f.detail)
    parts: list[Any] = [table]
    if findings is not None:
        parts.append(findings)
    return Group(*parts)
