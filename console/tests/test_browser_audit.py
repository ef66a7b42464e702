"""An auditor in a real browser against the real services: verifies the chain, traces an allocation of a
round (and a KK, whose number travels in the POST body and never appears in a URL or in the page) and sees
the lineage drawn as an SVG graph, and replays the recorded decisions.

The round (6 families) is opened and imported through distribution's API; the test waits for the audit log
to index the allocation before the auditor asks for it. Every screen: axe-core, no sideways scroll at
360 px, no CSP violation, screenshots at 1280 and 360 px.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest
from puskesos_distribution.domain import allocation_id_for, round_id_for
from puskesos_distribution.sample_data import recipient_rows

from console.tests.browser import ConsoleStack, token_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

VILLAGE = "35.73.02.1002"  # Rampalcelaket (Klojen, Kota Malang)


def _bearer(role: str, *scope: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(role, *scope, officer_id=f'api-{role}')}"}


def _paid_round(stack: ConsoleStack) -> tuple[str, list[dict[str, str]]]:
    """A small round opened, imported and paid through distribution's API; (round key, its rows)."""
    key = f"blt-audit-{uuid.uuid4().hex[:8]}"
    rows = list(recipient_rows(6, seed=99, village_codes=(VILLAGE,)))
    headers = _bearer("operator", "35.73")
    with httpx.Client(base_url=stack.services["distribution"].base_url, headers=headers, timeout=30) as api:
        opened = api.post("/rounds", json={
            "key": key, "name": "BLT audit", "funding_source": "APBD", "amount_per_family": 300_000,
            "budget_cap": 3_000_000, "period_start": "2026-12-01", "period_end": "2026-12-31"})
        assert opened.status_code == 201, opened.text
        batch = str(uuid.uuid4())
        body = {"batch_id": batch, "rows": [{"row": i + 2, "fields": r} for i, r in enumerate(rows)]}
        imported = api.post(f"/rounds/{key}/candidates", json=body)
        assert imported.status_code == 200 and imported.json()["accepted"] == 6, imported.text
        deadline = time.monotonic() + 60
        while True:  # the service's own counts: every family paid
            live = api.get(f"/rounds/{key}").json()["live"]
            if int(live.get("disbursed", 0)) == 6:
                break
            assert time.monotonic() < deadline, live
            time.sleep(0.2)
    return key, rows


def _wait_indexed(stack: ConsoleStack, allocation_id: str) -> None:
    """Until the audit log has indexed the allocation's payout (its lineage is then complete)."""
    deadline = time.monotonic() + 60
    with httpx.Client(base_url=stack.services["audit"].base_url, headers=_bearer("auditor", "35.73"),
                      timeout=30) as api:
        while True:
            found = api.post("/audit/trace", json={"kind": "allocation", "value": allocation_id})
            if found.status_code == 200 and any(n["event_type"] == "AidDisbursed" for n in found.json()["nodes"]):
                return
            assert time.monotonic() < deadline, found.text
            time.sleep(0.25)


def test_auditor_verifies_the_chain_and_traces_an_allocation_as_a_graph(
        tab: Any, console_stack: ConsoleStack) -> None:
    from playwright.sync_api import expect

    key, rows = _paid_round(console_stack)
    kk = rows[0]["kk_number"]
    allocation_id = str(allocation_id_for(round_id_for(key), kk))
    _wait_indexed(console_stack, allocation_id)

    auditor = tab()
    auditor.sign_in(token_for("auditor", "35.73", officer_id="aud-malang"))
    page = auditor.page
    auditor.check("50-dashboard-auditor")

    page.click("nav >> text=Periksa rantai log")
    page.click("button >> text=Periksa sekarang")
    expect(page.locator("#verify-result")).to_contain_text("Utuh")
    auditor.check("51-audit-verify")

    page.click("nav >> text=Telusuri asal-usul")
    auditor.check("52-audit-trace")
    page.select_option("#f-kind", "allocation")
    page.fill("#f-value", allocation_id)
    page.click("button >> text=Telusuri")
    graph = page.locator("svg.lineage-graph[role=img]")
    expect(graph).to_be_visible()
    expect(graph.locator("title")).to_have_text("Grafik asal-usul: Alokasi")
    assert graph.locator("g.lineage-node").count() >= 4  # round opened, candidate, allocated, paid
    assert graph.locator("g.lineage-node.is-start").count() >= 1  # the events that name the allocation
    expect(graph.locator("text", has_text="AidAllocated").first).to_be_visible()
    expect(graph.locator("text", has_text="AidDisbursed").first).to_be_visible()
    assert graph.locator("path.lineage-edge").count() >= 3
    expect(page.locator(".lineage-list li")).to_have_count(graph.locator("g.lineage-node").count())
    svg = graph.evaluate("el => el.outerHTML")
    for personal in (kk, rows[0]["head_nik"], rows[0]["head_name"]):
        assert personal not in svg
    assert "style=" not in svg
    auditor.check("53-audit-trace-allocation")

    page.select_option("#f-kind", "kk")
    page.fill("#f-value", kk)
    page.click("button >> text=Telusuri")
    expect(page.locator("svg.lineage-graph")).to_be_visible()
    assert kk not in page.url and kk not in page.content()
    assert page.url == auditor.base_url + "/audit/trace"

    page.click("nav >> text=Ulangi keputusan")
    page.click("button >> text=Ulangi sekarang")
    expect(page.locator("#replay-result")).to_be_visible()
    auditor.check("54-audit-decisions")
