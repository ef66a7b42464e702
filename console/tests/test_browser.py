"""The console in a real browser (Debian's chromium through Playwright) against real service processes.

Every screen visited is checked with axe-core (0 serious or critical violations), must not scroll
sideways at 360 px, must raise no Content-Security-Policy violation, and is saved as a screenshot at
1280 px and 360 px to ``docs/console/`` (deterministic names, shown in console/README.md).
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from console.tests.browser import token_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

VILLAGE = "35.73.01.1001"  # Balearjosari, Blimbing, Kota Malang
OTHER_VILLAGE = "35.73.02.1001"  # a village of another kecamatan
KK = "3573010502200123"
HEAD, SPOUSE = "3573010505800007", "3573014101850008"  # a man born 5-5-1980; a woman born 1-1-1985 (day + 40)
BAD_BIRTH_DATE_NIK = "3573013201850008"  # day 32: no such date
UNKNOWN_PROVINCE_NIK = "9973010505800007"
def fill_household(page: Any) -> None:
    page.fill("#f-kk_number", KK)
    page.select_option("#f-village_code", VILLAGE)
    page.fill("#f-street", "Jl. Raya Balearjosari 12")
    page.fill("#f-rt", "003")
    page.fill("#f-rw", "002")
    for i, (nik, name, born, sex, relationship) in enumerate((
            (HEAD, "Slamet Riyadi", "1980-05-05", "L", "kepala_keluarga"),
            (SPOUSE, "Siti Aminah", "1985-01-01", "P", "pasangan"))):
        page.fill(f"#f-members-{i}-nik", nik)
        page.fill(f"#f-members-{i}-name", name)
        page.fill(f"#f-members-{i}-birth_date", born)
        page.select_option(f"#f-members-{i}-sex", sex)
        page.select_option(f"#f-members-{i}-relationship", relationship)
    page.fill("#f-monthly_income", "900.000")
    page.fill("#f-dependants", "2")
    for name, value in (("floor", "tanah"), ("wall", "bambu"), ("roof", "seng"), ("water", "sumur_tidak_terlindungi"),
                        ("electricity", "450VA")):
        page.select_option(f"#f-{name}", value)


def test_back_office_registers_a_household_and_front_office_files_a_complaint_for_it(tab: Any) -> None:
    from playwright.sync_api import expect

    back = tab()
    back.goto("/login")
    back.check("01-login")
    back.sign_in(token_for("back_office", VILLAGE, officer_id="bo-balearjosari"))
    back.check("02-dashboard-back-office")
    back.goto("/households/register")
    back.check("03-household-register")
    fill_household(back.page)
    expect(back.page.locator("#f-members-1-nik-msg")).to_contain_text("Perempuan")  # +40: checked as typed
    back.page.click("button[value=save]")
    expect(back.page.locator("h1")).to_have_text("Rumah tangga terdaftar")
    back.check("06-household-saved")

    front = tab()
    front.sign_in(token_for("front_office", VILLAGE, officer_id="fo-balearjosari"))
    front.check("07-dashboard-front-office")
    front.goto("/households/search")
    front.page.fill("#f-number", HEAD)
    front.page.click("button >> text=Cari")
    expect(front.page.locator("#h-result")).to_be_visible()
    masked = front.page.content()
    assert "3573********0007" in masked and "Slamet Riyadi" not in masked
    assert HEAD not in front.page.url and KK not in front.page.url
    front.check("08-household-search-masked")
    front.page.fill("#f-purpose", "Verifikasi identitas pelapor di loket")
    front.page.click("button >> text=Tampilkan data")
    expect(front.page.locator("main")).to_contain_text("Slamet Riyadi")
    expect(front.page.locator("main")).to_contain_text("dicatat")
    front.check("09-household-search-revealed")

    front.goto("/complaints/new")
    front.check("10-complaint-new")
    front.page.fill("#f-nik", HEAD)
    front.page.select_option("#f-category", "aid_not_received")
    front.page.select_option("#f-urgency", "high")
    front.page.fill("#f-description", "Keluarga tidak menerima BLT DBHCHT meski termasuk keluarga miskin.")
    front.page.click("button >> text=Simpan keluhan")
    case_number = front.page.locator("#case-number").inner_text()
    assert re.fullmatch(r"3573011001/\d{4}/\d{5,}", case_number)
    front.check("11-complaint-filed")

    front.goto("/residents/complaints")
    front.page.fill("#f-nik", HEAD)
    front.page.click("button >> text=Tampilkan keluhan")
    expect(front.page.locator("main table")).to_contain_text(case_number)
    expect(front.page.locator("main table")).to_contain_text("hari kerja")
    front.check("12-resident-complaints")
    front.goto("/complaints")
    expect(front.page.locator("main table")).to_contain_text(case_number)
    front.check("16-complaints-list")


def test_a_bad_nik_is_explained_as_typed_and_on_submit(tab: Any) -> None:
    from playwright.sync_api import expect

    back = tab()
    back.sign_in(token_for("back_office", VILLAGE, officer_id="bo-nik"))
    back.goto("/households/register")
    back.page.fill("#f-members-0-nik", UNKNOWN_PROVINCE_NIK)
    back.page.keyboard.press("Tab")
    expect(back.page.locator("#f-members-0-nik-msg")).to_contain_text("provinsi")
    expect(back.page.locator("#f-members-0-nik")).to_have_attribute("aria-invalid", "true")
    back.check("04-household-register-nik-typed")
    fill_household(back.page)
    back.page.fill("#f-kk_number", "3573010502200456")
    back.page.fill("#f-members-0-nik", BAD_BIRTH_DATE_NIK)
    back.page.fill("#f-members-1-nik", "3573014101850009")
    with back.page.expect_response(lambda r: r.url.endswith("/households/register")) as answer:
        back.page.click("button[value=save]")
    assert answer.value.status == 422
    # the server's problem details (intake's 422, field members.0.nik) next to the field, explained
    expect(back.page.locator("#f-members-0-nik-msg")).to_contain_text("Tanggal lahir")
    expect(back.page.locator(".alert-error")).to_be_visible()
    back.check("05-household-register-nik-refused")


def test_an_officer_of_another_village_is_refused(tab: Any) -> None:
    from playwright.sync_api import expect

    elsewhere = tab()
    elsewhere.sign_in(token_for("front_office", OTHER_VILLAGE, officer_id="fo-elsewhere"))
    elsewhere.goto("/households/search")
    elsewhere.page.check("input[value=kk]")
    elsewhere.page.fill("#f-number", KK)
    with elsewhere.page.expect_response(lambda r: r.url.endswith("/households/search")) as answer:
        elsewhere.page.click("button >> text=Cari")
    assert answer.value.status == 403
    expect(elsewhere.page.locator("h1")).to_have_text("Akses ditolak")
    html = elsewhere.page.content()
    assert "Slamet" not in html and "S*** R***" not in html and "0007" not in html
    elsewhere.check("13-refused-other-village")


def test_error_pages_are_in_bahasa_indonesia(tab: Any) -> None:
    from playwright.sync_api import expect

    screen = tab()
    screen.sign_in(token_for("assessor", VILLAGE, officer_id="as-balearjosari", ttl_seconds=4))
    screen.goto("/tidak-ada")
    expect(screen.page.locator("h1")).to_have_text("Halaman tidak ditemukan")
    screen.check("14-not-found")
    time.sleep(4.5)  # the token's own expiry: nothing else ends the session
    screen.goto("/")
    expect(screen.page.locator("h1")).to_have_text("Sesi Anda telah berakhir")
    screen.check("15-session-expired")
