"""A BLT operator in a real browser against the real services and the simulated bank: opens a round (a
refused first try shows the API's problems next to their fields), uploads a recipient list with a few bad
rows, downloads the rejected rows, follows the round live until every family is paid or failed (the
page's own refresh; the test waits on the page's numbers), closes it and reads the reconciliation.

Every screen: axe-core, no sideways scroll at 360 px, no CSP violation, screenshots at 1280 and 360 px.
"""

from __future__ import annotations

import csv
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from puskesos_distribution.sample_data import write_csv

from console.tests.browser import token_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

QUOTA_VILLAGE = "35.73.01.1001"  # Balearjosari (Blimbing): a quota of 3 families
VILLAGES = (QUOTA_VILLAGE, "35.73.01.1002", "35.73.02.1001")  # + Arjosari (Blimbing), Klojen (Klojen)
FAMILIES = 14  # rows 7 and 14 are bad (sample_data's bad_every): 12 valid families


def recipient_list(path: Path) -> tuple[Path, list[dict[str, str]]]:
    """14 rows over three villages: 2 invalid, 4 valid in the quota village (one is rejected: quota), and
    one account the simulated bank declines (it starts 0000): 11 allocated, 10 paid, 1 failed."""
    write_csv(path, FAMILIES, seed=16, bad_every=7, village_codes=VILLAGES)
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    declined = rows[1]  # Arjosari: no quota, so it is allocated and then declined by the bank
    declined["account_number"], declined["collection_point"] = "0000123456", ""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path, rows


def test_operator_opens_a_round_uploads_follows_it_live_and_reconciles(
        tab: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    started = time.monotonic()
    csv_path, rows = recipient_list(tmp_path / "penerima.csv")
    key = f"blt-uji-{uuid.uuid4().hex[:8]}"
    operator = tab()
    operator.sign_in(token_for("operator", "35.73", officer_id="op-malang"))
    page = operator.page
    operator.check("40-dashboard-operator")
    page.click("nav >> text=Putaran BLT")
    page.wait_for_url(operator.base_url + "/rounds")
    operator.check("41-round-open")

    page.fill("#f-name", "BLT Uji Desember 2026")
    page.fill("#f-key", key)
    page.select_option("#f-funding_source", "DANA_DESA")
    page.fill("#f-amount_per_family", "Rp600.000")
    page.fill("#f-budget_cap", "Rp500.000")  # smaller than one family's amount: refused by the API
    page.fill("#f-period_start", "2026-12-01")
    page.fill("#f-period_end", "2026-12-31")
    page.select_option("#f-village_quotas-0-village_code", QUOTA_VILLAGE)
    page.fill("#f-village_quotas-0-max_families", "3")
    page.click("button >> text=Buka putaran")
    expect(page.locator("#f-budget_cap-msg")).to_contain_text("lebih kecil dari jumlah untuk satu keluarga")
    expect(page.locator("#f-villages_without_quota-msg")).to_contain_text("pilih apa yang berlaku")
    operator.check("42-round-open-refused")

    page.fill("#f-budget_cap", "Rp7.200.000")
    page.check("input[name=villages_without_quota][value=unlimited]")
    page.click("button >> text=Buka putaran")
    page.wait_for_url(f"{operator.base_url}/rounds/{key}?opened=1")
    expect(page.locator("#n-candidates")).to_have_text("0")
    operator.check("43-round-opened")

    page.set_input_files("#f-file", str(csv_path))
    page.click("button >> text=Unggah dan periksa")
    expect(page.locator("#n-rows")).to_have_text(str(FAMILIES))
    expect(page.locator("#n-accepted")).to_have_text("12")
    expect(page.locator("#n-rejected-rows")).to_have_text("2")
    operator.check("44-round-import-report")
    with page.expect_download() as download_info:
        page.click("button >> text=Unduh baris ditolak (CSV)")
    download = download_info.value
    assert download.suggested_filename == f"{key}.rejected.csv"
    report = Path(download.path()).read_text(encoding="utf-8")
    lines = list(csv.DictReader(report.splitlines()))
    assert [(r["row"], r["column"]) for r in lines] == [("8", "kk_number"), ("15", "head_nik")]
    for row in (rows[6], rows[13]):  # the values of the bad rows are never echoed
        assert row["kk_number"] not in report and row["head_nik"] not in report and row["head_name"] not in report

    page.click("text=Pantau putaran")
    page.wait_for_url(f"{operator.base_url}/rounds/{key}")
    live = page.locator("#round-live .live")
    expect(live).to_have_attribute("data-done", "1", timeout=90_000)  # the page's own refresh (console.js)
    expect(page.locator("#n-allocated")).to_have_text("11")
    expect(page.locator("#n-rejected")).to_have_text("1")
    expect(page.locator("#n-disbursed")).to_have_text("10")
    expect(page.locator("#n-failed")).to_have_text("1")
    expect(page.locator("#n-replicas")).to_have_text("1")
    expect(page.locator("#round-state")).to_contain_text("setiap keluarga sudah dibayar atau gagal")
    operator.check("45-round-live-done")

    page.click("button >> text=Tutup dan rekonsiliasi")
    expect(page.locator("#reconciliation-result")).to_contain_text("Cocok persis")
    expect(page.locator("#r-disbursed")).to_have_text("10 keluarga (Rp6.000.000)")
    expect(page.locator("#r-gateway")).to_have_text("10 keluarga (Rp6.000.000)")
    expect(page.locator("#r-failed")).to_have_text("1")
    operator.check("46-round-closed")
    assert time.monotonic() - started < 120
