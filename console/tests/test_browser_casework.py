"""Casework in a real browser against the real services: an assessor assesses, refers, records the target's
answer and closes a case opened from a filed complaint; a kecamatan coordinator takes an escalation on,
returns it to the village, and reads the monthly evaluation with its chart.

Complaints are filed through intake's API and the case is waited for (the referral service opens it from
the ComplaintFiled event). The escalation comes from the service's own rule, with no clock: a second
rejection of a referral escalates the case to the kecamatan at once. Every screen: axe-core, no sideways
scroll at 360 px, no CSP violation, screenshots at 1280 and 360 px (``Screen.check``).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest
from puskesos_shared.ids import stable_id

from console.tests.browser import ConsoleStack, token_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

VILLAGE = "35.73.01.1002"  # Arjosari, Blimbing, Kota Malang (the other browser tests use Balearjosari)
KECAMATAN = "35.73.01"


def _bearer(role: str, *scope: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(role, *scope, officer_id=f'api-{role}')}"}


def _file_complaint(stack: ConsoleStack, category: str, phone: str) -> tuple[str, str]:
    """A complaint filed at intake; (case id, case number) once the referral service opened its case."""
    body = {"category": category, "channel": "walk_in", "urgency": "normal", "village_code": VILLAGE,
            "description": "Warga membutuhkan bantuan; dicatat di loket Puskesos.",
            "complainant": {"contact_phone": phone}}
    response = httpx.post(stack.services["intake"].base_url + "/complaints", json=body,
                          headers={**_bearer("front_office", VILLAGE), "Idempotency-Key": uuid.uuid4().hex},
                          timeout=30)
    assert response.status_code == 201, response.text
    complaint = response.json()["complaint"]
    case_id = str(stable_id("case", uuid.UUID(complaint["complaint_id"])))
    deadline = time.monotonic() + 60
    while True:  # the condition: the case exists at the referral service
        found = httpx.get(f"{stack.services['referral'].base_url}/cases/{case_id}",
                          headers=_bearer("assessor", VILLAGE), timeout=30)
        if found.status_code == 200:
            return case_id, complaint["case_number"]
        assert found.status_code == 404, found.text
        assert time.monotonic() < deadline, "the referral service did not open the case"
        time.sleep(0.1)


def _referral(stack: ConsoleStack, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    response = httpx.request(method, stack.services["referral"].base_url + path, json=body,
                             headers=_bearer("assessor", VILLAGE), timeout=30)
    assert response.status_code in (200, 201), response.text
    return response.json()


def test_assessor_assesses_refers_records_the_answer_and_closes(tab: Any, console_stack: ConsoleStack) -> None:
    from playwright.sync_api import expect

    case_id, case_number = _file_complaint(console_stack, "health_referral", "081234567001")
    assessor = tab()
    assessor.sign_in(token_for("assessor", VILLAGE, officer_id="as-arjosari"))
    page = assessor.page
    assessor.goto("/cases")
    row = page.locator("main table tr", has_text=case_number)
    expect(row).to_contain_text("hari kerja lagi")  # the SLA in working days, in words
    assessor.check("17-case-list")
    row.get_by_role("link", name=case_number).click()
    expect(page.locator("h1")).to_have_text(f"Kasus {case_number}")
    expect(page.locator(".timeline")).to_contain_text("Kasus dibuka")
    assert page.url.endswith(f"/cases/{case_id}")  # a UUID: nothing personal in the URL
    assessor.check("18-case-page")

    page.get_by_role("link", name="Asesmen", exact=True).click()
    expect(page.locator("#active-rule-set")).to_contain_text("assessment@")
    page.get_by_label("Perlu perawatan rumah sakit").check()
    page.fill("#f-verified_monthly_income", "sembilan ratus")  # refused by the service, shown at the field
    page.get_by_role("button", name="Simpan asesmen").click()
    expect(page.locator("#f-verified_monthly_income-msg")).not_to_be_empty()
    expect(page.locator(".alert-error")).to_be_visible()
    assessor.check("19-case-assess-refused")
    page.fill("#f-verified_monthly_income", "900.000")
    page.get_by_role("button", name="Simpan asesmen").click()
    expect(page.locator("h1")).to_have_text("Hasil asesmen")
    expect(page.locator("#rule-set-version")).to_contain_text("assessment@")
    expect(page.locator(".eligibility")).to_contain_text("Rujukan rumah sakit")
    expect(page.locator(".reasons").first).not_to_be_empty()
    assessor.check("20-case-assessed")

    page.get_by_role("link", name="Rujuk", exact=True).click()
    page.select_option("#f-target_code", "DINSOS-MALANG")
    page.fill("#f-instructions", "Datang ke kantor Dinas Sosial dengan KTP dan KK.")
    assessor.check("21-case-refer")
    page.get_by_role("button", name="Terbitkan rujukan").click()
    expect(page.locator(".alert-ok")).to_have_text("Rujukan diterbitkan.")
    expect(page.locator("#case-status")).to_have_text("Dirujuk")
    page.select_option("#f-outcome-1", "completed")
    page.fill("#f-note-1", "Bantuan diberikan oleh Dinas Sosial.")
    assessor.check("22-case-referred")
    page.get_by_role("button", name="Catat jawaban").click()
    expect(page.locator(".alert-ok")).to_have_text("Tanggapan tujuan rujukan dicatat.")
    expect(page.locator("#case-status")).to_have_text("Rujukan selesai")

    page.get_by_role("link", name="Tutup kasus").click()
    page.select_option("#f-resolution", "referred_and_completed")
    page.get_by_role("button", name="Tutup kasus").click()  # no reason: the service's 422, next to the field
    expect(page.locator("#f-reason-msg")).not_to_be_empty()
    assessor.check("23-case-close-refused")
    page.fill("#f-reason", "Warga sudah mendapat layanan dari Dinas Sosial.")
    page.get_by_role("button", name="Tutup kasus").click()
    expect(page.locator(".alert-ok")).to_have_text("Kasus ditutup.")
    expect(page.locator("#case-status")).to_have_text("Ditutup")
    expect(page.locator(".timeline li")).to_have_count(5)  # opened, assessed, referred, answered, closed
    expect(page.locator(".timeline")).to_contain_text("Kasus ditutup")
    assessor.check("24-case-closed")


def test_coordinator_acts_on_an_escalation_and_reads_the_evaluation(tab: Any, console_stack: ConsoleStack) -> None:
    from playwright.sync_api import expect

    case_id, case_number = _file_complaint(console_stack, "elderly_alone", "081234567002")
    for _ in range(2):  # the second rejection escalates the case to the kecamatan at once
        _referral(console_stack, "POST", f"/cases/{case_id}/assessments", {"observations": {}})
        issued = _referral(console_stack, "POST", f"/cases/{case_id}/referrals", {"target_code": "DINSOS-MALANG"})
        _referral(console_stack, "POST", "/referrals/responses",
                  {"referral_id": issued["referral"]["referral_id"], "outcome": "rejected",
                   "responded_by": "DINSOS-MALANG"})
    assert _referral(console_stack, "GET", f"/cases/{case_id}")["level"] == "kecamatan"

    coordinator = tab()
    coordinator.sign_in(token_for("coordinator", KECAMATAN, officer_id="tksk-blimbing"))
    page = coordinator.page
    expect(page.locator(".tiles")).to_contain_text("Eskalasi")
    coordinator.check("25-dashboard-coordinator")
    page.locator(".main-nav").get_by_role("link", name="Eskalasi").click()
    row = page.locator("main table tr", has_text=case_number)
    expect(row).to_contain_text("Menunggu tindakan")
    coordinator.check("26-escalation-list")
    row.get_by_role("link", name=case_number).click()
    expect(page.locator("#escalation-status")).to_have_text("Menunggu tindakan")
    coordinator.check("27-escalation")
    page.get_by_role("button", name="Terima eskalasi").click()
    expect(page.locator(".alert-ok")).to_contain_text("Eskalasi Anda terima")
    expect(page.locator("#escalation-status")).to_have_text("Sedang ditangani")

    page.get_by_label("Kembalikan ke desa dengan tenggat baru").check()
    page.fill("#f-due_in_working_days", "3")
    page.get_by_role("button", name="Selesaikan eskalasi").click()  # no instructions: refused at the field
    expect(page.locator("#f-note-msg")).not_to_be_empty()
    coordinator.check("28-escalation-resolve-refused")
    page.fill("#f-note", "Kunjungi warga minggu ini dan ases ulang bersama pendamping.")
    page.get_by_role("button", name="Selesaikan eskalasi").click()
    expect(page.locator(".alert-ok")).to_have_text("Eskalasi diselesaikan.")
    expect(page.locator("#escalation-status")).to_have_text("Selesai")
    expect(page.locator("main")).to_contain_text("tenggat di Desa/kelurahan")
    coordinator.check("29-escalation-resolved")

    coordinator.goto("/escalations?status=resolved")
    expect(page.locator("main table")).to_contain_text(case_number)

    page.locator(".main-nav").get_by_role("link", name="Evaluasi bulanan").click()
    chart = page.locator("svg.chart[role=img]")
    expect(chart).to_be_visible()
    expect(chart.locator("title")).to_contain_text("Evaluasi")
    expect(page.locator("#evaluation-table")).to_contain_text("Arjosari")
    assert page.locator("[style]").count() == 0  # the strict CSP: no style attributes
    coordinator.check("30-evaluation")

    elsewhere = tab()  # a coordinator of another kecamatan does not see the case
    elsewhere.sign_in(token_for("coordinator", "35.73.02", officer_id="tksk-klojen"))
    elsewhere.goto(f"/escalations/{case_id}")
    expect(elsewhere.page.locator("h1")).to_have_text("Akses ditolak")
