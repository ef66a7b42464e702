"""The lineage graph drawn on the server: a layered left-to-right layout that is deterministic, valid SVG with
an accessible name, no style attributes (CSP) and no personal data; and the rounds page's small helpers."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from puskesos_console.lineage import NODE_W, PAD, layout, lineage_svg, text_list
from puskesos_console.rounds import key_from_name, number, parse_prev, round_view, rupiah_value

SVG = "{http://www.w3.org/2000/svg}"
NIK, KK, NAME = "3573014505800001", "3573010101200003", "Siti Aminah"


def _node(seq: int, event_type: str, role: str = "ancestor", **extra: Any) -> dict[str, Any]:
    return {"id": f"n{seq}", "seq": seq, "role": role, "event_type": event_type, "occurred_at":
            f"2026-12-0{seq % 9 + 1}T03:00:00+00:00", "village_code": "35.73.01.1001", "producer": "distribution",
            "actor": {"id": "op-malang", "role": "operator"}, "error": None, **extra}


def trace() -> dict[str, Any]:
    """A round opened (#1), a candidate imported (external cause), allocated (#5, the start) and paid (#9); the
    events' data hold a NIK, a KK and a name, as the audit API's (masked or not) might."""
    data = {"kk_number": KK, "head_nik": NIK, "recipient_name": NAME}
    return {
        "query": {"kind": "allocation", "value": "x"}, "start": ["n5"],
        "nodes": [_node(9, "AidDisbursed", "descendant", data=data),
                  _node(1, "AidRoundOpened", decision={"kind": "round_rules"}),
                  _node(5, "AidAllocated", "start", data=data, decision={"kind": "allocation", "amount": 600000}),
                  _node(7, "CaseAssessed", "ancestor", data=data, error="outside your scope")],
        "edges": [{"parent": "n5", "child": "n9", "relation": "caused_by"},
                  {"parent": "n1", "child": "n5", "relation": "refers_to:round"},
                  {"parent": "external:abc-def", "child": "n5", "relation": "caused_by"},
                  {"parent": "n1", "child": "n9", "relation": "refers_to:round"},
                  {"parent": "n9", "child": "n1", "relation": "bogus"},  # against the log's order: ignored
                  {"parent": "n404", "child": "n5", "relation": "caused_by"}],  # an unknown node: ignored
        "roots": ["n1"], "externals": ["abc-def"], "decisions": ["n5"], "truncated": False, "lookups": 3, "ms": 1.0,
    }


def test_layers_run_from_causes_on_the_left_to_effects_on_the_right() -> None:
    placed = layout(trace())
    layer = {b.id: b.layer for b in placed.boxes}
    assert layer == {"external:abc-def": 0, "n1": 0, "n7": 0, "n5": 1, "n9": 2}
    assert {b.id: b.kind for b in placed.boxes} == {"external:abc-def": "external", "n1": "ancestor",
                                                     "n7": "error", "n5": "start", "n9": "descendant"}
    assert [(p, c) for p, c, _ in placed.edges] == [("external:abc-def", "n5"), ("n1", "n5"), ("n1", "n9"),
                                                   ("n5", "n9")]
    assert placed.box("n9").x > placed.box("n5").x > placed.box("n1").x == PAD
    assert placed.width == 2 * PAD + 3 * NODE_W + 2 * 72
    rows = [(b.layer, b.row) for b in placed.boxes]
    assert len(set(rows)) == len(rows)  # no two boxes in one place
    causes = {box.id: [(p.id, rel) for p, rel in c] for box, c in text_list(placed)}
    assert causes["n5"] == [("external:abc-def", "caused_by"), ("n1", "refers_to:round")]


def test_the_same_trace_in_any_order_draws_the_same_svg() -> None:
    first = lineage_svg(trace(), title="t", desc="d")
    shuffled = trace()
    shuffled["nodes"].reverse()
    shuffled["edges"].reverse()
    assert lineage_svg(shuffled, title="t", desc="d") == first


def test_the_svg_is_valid_named_for_screen_readers_and_has_no_style_attribute() -> None:
    svg = lineage_svg(trace(), title="Grafik asal-usul: Alokasi", desc="5 peristiwa <&> 5 hubungan")
    root = ET.fromstring(svg)  # well-formed XML
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    assert root.get("aria-labelledby") == "lineage-title lineage-desc"
    assert root.find(f"{SVG}title").text == "Grafik asal-usul: Alokasi"  # type: ignore[union-attr]
    assert root.find(f"{SVG}desc").text == "5 peristiwa <&> 5 hubungan"  # type: ignore[union-attr]
    assert all("style" not in el.attrib for el in root.iter())
    assert len(root.findall(f".//{SVG}rect")) == 5
    assert len(root.findall(f".//{SVG}path[@class='lineage-edge']")) == 4
    labels = " ".join(el.text or "" for el in root.iter(f"{SVG}text"))
    assert "#5 AidAllocated" in labels and "#9 AidDisbursed" in labels


def test_labels_carry_no_personal_data() -> None:
    svg = lineage_svg(trace(), title="t", desc="d")
    for personal in (NIK, KK, NAME, "op-malang", NIK[-4:] + "\n"):
        assert personal not in svg
    assert "600000" not in svg  # no data at all, not even amounts: only type, day, village and decision kind


def test_an_empty_trace_is_an_empty_valid_svg() -> None:
    root = ET.fromstring(lineage_svg({"nodes": [], "edges": []}, title="t", desc="d"))
    assert root.get("width") == str(2 * PAD)


def test_round_helpers() -> None:
    assert key_from_name("BLT Dana Desa — Desember 2026!") == "blt-dana-desa-desember-2026"
    assert rupiah_value("Rp600.000") == 600_000 and rupiah_value("1,5 juta") == 1_500_000
    assert rupiah_value("600.000,50") is None and rupiah_value("banyak") is None and rupiah_value("") is None
    assert number(1234567, "id") == "1.234.567" and number(1234567, "en") == "1,234,567"
    assert number(2.5, "id", 1) == "2,5"
    assert parse_prev("1000-3-2") == (1.0, 3, 2) and parse_prev("x-1-2") is None
    status = {"candidates": 10, "config": {"amount_per_family": 100, "budget_cap": 1000, "village_quotas": []},
              "live": {"allocated": 6, "rejected_quota_exhausted": 2, "disbursed": 3, "failed": 1},
              "pending": {"allocate": 2, "disburse": 2}, "consumers": {}, "replicas": 2}
    view = round_view(status, (100.0, 4, 2), 102.0)
    assert (view["allocated"], view["rejected"], view["to_decide"], view["to_pay"]) == (6, 2, 2, 2)
    assert (view["decide_rate"], view["pay_rate"], view["eta"], view["done"]) == (2.0, 1.0, 4.0, False)
    assert view["sample"] == "102000-8-4" and view["budget_slots"] == 10
    finished = {**status, "live": {"allocated": 8, "rejected_quota_exhausted": 2, "disbursed": 7, "failed": 1},
                "pending": {"allocate": 0, "disburse": 0}}
    assert round_view(finished, None, 1.0)["done"] is True


def test_the_rounds_and_audit_catalogs_have_the_same_keys_in_both_languages() -> None:
    import json

    from puskesos_console.i18n import CATALOG_DIR, catalog

    for area in ("rounds", "audit"):
        indonesian = json.loads((CATALOG_DIR / f"id.{area}.json").read_text(encoding="utf-8"))
        english = json.loads((CATALOG_DIR / f"en.{area}.json").read_text(encoding="utf-8"))
        assert set(indonesian) == set(english), area
        assert all(v.strip() for v in [*indonesian.values(), *english.values()])
    assert catalog("id")["nav.rounds"] == "Putaran BLT"  # merged without a key defined twice
