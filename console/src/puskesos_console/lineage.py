"""A trace's lineage (audit ``POST /audit/trace``: nodes and edges) drawn on the server as inline SVG.

A layered left-to-right layout: causes on the left, effects on the right. A node's layer is the length
of the longest chain of causes before it; within a layer nodes are ordered by the mean position of their
causes (then by their sequence number), so the drawing is the same for the same trace. Labels carry no
personal data: the event's sequence number and type, its day, the village code and the kind of decision;
never the event's data, a name, a NIK, a KK or an officer. No ``style`` attribute anywhere (the console's
Content-Security-Policy has no ``unsafe-inline``): presentation attributes and classes only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape, quoteattr

NODE_W = 240
NODE_H = 64
GAP_X = 72
GAP_Y = 20
PAD = 16
MAX_LABEL = 34

#: Fill and stroke per kind of node (presentation attributes: no inline style under the CSP).
COLOURS = {"start": ("#e0f2f1", "#0b5d4b"), "decision": ("#fff6d8", "#8a6100"), "ancestor": ("#ffffff", "#4a5560"),
           "descendant": ("#eef4ff", "#1d4f91"), "external": ("#f3eefa", "#5b3a8c"), "error": ("#fdecec", "#a4161a")}


@dataclass
class Box:
    id: str
    seq: int
    kind: str  # start | decision | ancestor | descendant | external | error
    lines: tuple[str, ...]
    layer: int = 0
    row: int = 0
    parents: list[str] = field(default_factory=list)

    @property
    def x(self) -> int:
        return PAD + self.layer * (NODE_W + GAP_X)

    @property
    def y(self) -> int:
        return PAD + self.row * (NODE_H + GAP_Y)


@dataclass
class Layout:
    boxes: list[Box]  # in reading order: by layer, then row
    edges: list[tuple[str, str, str]]  # parent, child, relation (both drawn)
    width: int
    height: int

    def box(self, box_id: str) -> Box:
        return next(b for b in self.boxes if b.id == box_id)


def _short(text: str, limit: int = MAX_LABEL) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def node_kind(node: Mapping[str, Any], decisions: set[str]) -> str:
    if node.get("error"):
        return "error"
    if node.get("role") == "start":
        return "start"
    if str(node.get("id")) in decisions:
        return "decision"
    return "descendant" if node.get("role") == "descendant" else "ancestor"


Words = Callable[[str, Mapping[str, Any]], tuple[str, ...]]


def default_lines(kind: str, node: Mapping[str, Any]) -> tuple[str, ...]:
    """A node's label: nothing personal (no data, no actor): sequence and type, day, village, decision kind."""
    if kind == "external":
        return ("external", _short(str(node.get("id", "")).removeprefix("external:")[:8] + "…"))
    lines = [f"#{node.get('seq')} {node.get('event_type') or '-'}"]
    day = str(node.get("occurred_at") or "")[:10]
    lines.append(" · ".join(p for p in (day, str(node.get("village_code") or "")) if p))
    decision = node.get("decision") or {}
    if isinstance(decision, Mapping) and decision.get("kind"):
        lines.append(str(decision.get("kind")))
    return tuple(_short(line) for line in lines if line)


def layout(trace: Mapping[str, Any], words: Words = default_lines) -> Layout:
    """Places the trace's nodes (and its external causes) in layers; deterministic for the same trace."""
    decisions = {str(d) for d in trace.get("decisions") or []}
    boxes: dict[str, Box] = {}
    for node in trace.get("nodes") or []:
        kind = node_kind(node, decisions)
        boxes[str(node["id"])] = Box(str(node["id"]), int(node.get("seq") or 0), kind, words(kind, node))
    for external in sorted({str(x) for x in trace.get("externals") or []}):
        box_id = f"external:{external}"
        boxes[box_id] = Box(box_id, -1, "external", words("external", {"id": box_id}))
    order = sorted(boxes.values(), key=lambda b: (b.seq, b.id))
    rank = {b.id: i for i, b in enumerate(order)}
    found: dict[tuple[str, str], str] = {}
    for edge in trace.get("edges") or []:
        parent, child, relation = str(edge.get("parent")), str(edge.get("child")), str(edge.get("relation") or "")
        # a cause comes before its effect in the log: an edge against that order (it would make a cycle) or
        # naming a node the trace does not hold is not drawn; of two edges between the same nodes, one
        if parent in boxes and child in boxes and rank[parent] < rank[child]:
            found[(parent, child)] = min(found.get((parent, child), relation), relation)
    edges = sorted(((p, c, r) for (p, c), r in found.items()), key=lambda e: (rank[e[0]], rank[e[1]]))
    for parent, child, _ in edges:
        boxes[child].parents.append(parent)
    for box in order:
        box.layer = max((boxes[p].layer + 1 for p in box.parents), default=0)
    layers: dict[int, list[Box]] = {}
    for box in order:
        layers.setdefault(box.layer, []).append(box)
    for number in sorted(layers):
        members = layers[number]
        if number > 0:
            def centre(b: Box) -> float:
                rows = [boxes[p].row for p in b.parents]
                return sum(rows) / len(rows) if rows else float("inf")
            members.sort(key=lambda b: (centre(b), b.seq, b.id))
        for row, box in enumerate(members):
            box.row = row
    width = 2 * PAD + (max(layers) + 1) * NODE_W + max(layers) * GAP_X if layers else 2 * PAD
    tallest = max((len(m) for m in layers.values()), default=0)
    height = 2 * PAD + tallest * NODE_H + max(tallest - 1, 0) * GAP_Y
    reading = [b for number in sorted(layers) for b in layers[number]]
    return Layout(reading, edges, width, height)


def _text(x: float, y: float, content: str, cls: str, **attrs: str) -> str:
    extra = "".join(f" {k.replace('_', '-')}={quoteattr(v)}" for k, v in attrs.items())
    return f'<text x="{x:g}" y="{y:g}" class="{cls}"{extra}>{escape(content)}</text>'


def render_svg(result: Layout, *, title: str, desc: str, id_prefix: str = "lineage") -> str:
    """The layout as an ``<svg role="img">`` with ``<title>`` and ``<desc>``; no style attributes."""
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="lineage-graph" role="img" '
           f'aria-labelledby="{id_prefix}-title {id_prefix}-desc" width="{result.width}" height="{result.height}" '
           f'viewBox="0 0 {result.width} {result.height}" font-family="system-ui, sans-serif">',
           f'<title id="{id_prefix}-title">{escape(title)}</title>',
           f'<desc id="{id_prefix}-desc">{escape(desc)}</desc>',
           f'<defs><marker id="{id_prefix}-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" '
           'markerHeight="8" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#4a5560"/>'
           '</marker></defs>']
    by_id = {b.id: b for b in result.boxes}
    out.append('<g class="lineage-edges">')
    for parent, child, relation in result.edges:
        a, b = by_id[parent], by_id[child]
        x1, y1, x2, y2 = a.x + NODE_W, a.y + NODE_H / 2, b.x, b.y + NODE_H / 2
        mid = (x1 + x2) / 2
        out.append(f'<path class="lineage-edge" d="M {x1:g} {y1:g} C {mid:g} {y1:g}, {mid:g} {y2:g}, {x2:g} {y2:g}" '
                   f'fill="none" stroke="#4a5560" stroke-width="1.5" marker-end="url(#{id_prefix}-arrow)"/>')
        if relation and b.layer == a.layer + 1:
            out.append(_text(mid, (y1 + y2) / 2 - 4, _short(relation, 14), "lineage-relation", font_size="10",
                             text_anchor="middle", fill="#4a5560"))
    out.append("</g>")
    out.append('<g class="lineage-nodes">')
    for box in result.boxes:
        fill, stroke = COLOURS[box.kind]
        width = "3" if box.kind in ("start", "decision") else "1.5"
        out.append(f'<g class="lineage-node is-{box.kind}">')
        out.append(f'<rect x="{box.x}" y="{box.y}" width="{NODE_W}" height="{NODE_H}" rx="6" fill="{fill}" '
                   f'stroke="{stroke}" stroke-width="{width}"/>')
        for i, line in enumerate(box.lines[:3]):
            out.append(_text(box.x + 10, box.y + 20 + i * 17, line, "lineage-label" if i else "lineage-label is-head",
                             font_size="13" if i == 0 else "11.5", font_weight="700" if i == 0 else "400",
                             fill="#1b1f23"))
        out.append("</g>")
    out.append("</g></svg>")
    return "\n".join(out)


def lineage_svg(trace: Mapping[str, Any], *, title: str, desc: str, words: Words = default_lines) -> str:
    return render_svg(layout(trace, words), title=title, desc=desc)


def text_list(result: Layout) -> Sequence[tuple[Box, list[tuple[Box, str]]]]:
    """The same nodes for screen readers and for reading: each box with its causes (box, relation)."""
    by_id = {b.id: b for b in result.boxes}
    causes: dict[str, list[tuple[Box, str]]] = {}
    for parent, child, relation in result.edges:
        causes.setdefault(child, []).append((by_id[parent], relation))
    return [(b, causes.get(b.id, [])) for b in result.boxes]
