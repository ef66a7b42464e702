"""Rendering every template with real lokal-id formatting (Rupiah, terbilang, dates, masks)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import TypeVar

import pytest
from puskesos_notification import messages
from puskesos_notification.formatting import (
    mask_identity_numbers,
    rupiah_in_words,
    tanggal,
    waktu,
    whatsapp_number,
)
from puskesos_notification.templates import ACTIVE, MAX_MESSAGE_CHARS, TEMPLATES, TemplateError, render
from puskesos_shared.contracts import (
    AidAllocated,
    AidDisbursed,
    CaseClosed,
    CaseEscalated,
    ComplaintFiled,
    DisbursementFailed,
    Event,
    ReferralIssued,
)
from puskesos_shared.contracts.examples import HEAD_NIK, KK, example
from puskesos_shared.contracts.primitives import Program

E = TypeVar("E", bound=Event)
CASE = messages.CaseInfo(case_id="c", case_number="3573011001/2026/00001", village_code="35.73.01.1001")
ROUND = messages.RoundInfo(round_id="r", name="BLT DBHCHT Kota Malang 2026", program=Program.BLT,
                           period_start=dt.date(2026, 11, 1), period_end=dt.date(2026, 12, 31))


def _ex(model: type[E]) -> E:
    event = example(model.__name__)
    assert isinstance(event, model)
    return event


#: template id → values from the contract example; one entry per template (checked below).
BUILDERS: dict[str, Callable[[], dict[str, str]]] = {
    "complaint_receipt": lambda: messages.complaint_receipt(_ex(ComplaintFiled)),
    "referral_issued": lambda: messages.referral_issued(_ex(ReferralIssued), CASE),
    "case_closed": lambda: messages.case_closed(_ex(CaseClosed), CASE),
    "aid_allocated": lambda: messages.aid_allocated(_ex(AidAllocated), ROUND),
    "aid_disbursed": lambda: messages.aid_disbursed(_ex(AidDisbursed), ROUND, "35.73.01.1001"),
    "disbursement_failed": lambda: messages.disbursement_failed(_ex(DisbursementFailed), ROUND),
    "case_escalated": lambda: messages.case_escalated(_ex(CaseEscalated), CASE, "35.73.01.1001"),
}

EXPECTED = {
    "complaint_receipt": (
        "Puskesos Balearjosari: keluhan Anda telah kami terima pada 2 November 2026 pukul 09.30 WIB dengan "
        "nomor kasus 3573011001/2026/00001 (bantuan belum diterima). NIK pelapor: 3573********0003. Simpan "
        "nomor kasus ini untuk menanyakan perkembangannya. Pesan otomatis, mohon tidak dibalas."),
    "referral_issued": (
        "Puskesos: kasus Anda (nomor kasus 3573011001/2026/00001) dirujuk ke BLT Dinas Sosial Kota Malang. "
        "Nomor rujukan: RJK/3573011001/2026/00001. Harap datang paling lambat Senin, 16 November 2026. "
        "Petunjuk: Bawa KK dan KTP asli ke kantor kelurahan. Tunjukkan nomor rujukan ini kepada petugas."),
    "case_closed": (
        "Puskesos: kasus Anda (nomor kasus 3573011001/2026/00001) ditutup pada 5 November 2026 dengan hasil: "
        "rujukan selesai. Keterangan: Keluarga terdaftar sebagai penerima BLT. Jika masih membutuhkan bantuan, "
        "silakan datang ke Puskesos Balearjosari."),
    "aid_allocated": (
        "Yth. Slamet Riyadi, keluarga Anda (KK 3573********0001) ditetapkan sebagai penerima Bantuan Langsung "
        "Tunai (BLT) pada penyaluran BLT DBHCHT Kota Malang 2026 sebesar Rp300.000 (tiga ratus ribu rupiah). "
        "Bantuan dapat diambil di Kantor Pos Blimbing mulai 1 November 2026 sampai 31 Desember 2026. Bawa KK "
        "dan KTP asli. Bantuan ini gratis, tidak dipungut biaya apa pun."),
    "aid_disbursed": (
        "Puskesos: Bantuan Langsung Tunai (BLT) sebesar Rp300.000 (tiga ratus ribu rupiah) untuk keluarga "
        "dengan KK 3573********0001 telah disalurkan pada 2 November 2026 pukul 10.30 WIB. Nomor referensi: "
        "SIM-000042. Jika bantuan belum Anda terima, hubungi Puskesos Balearjosari."),
    "disbursement_failed": (
        "[Puskesos] Penyaluran GAGAL (final): KK 3573********0001, Rp300.000 (BLT DBHCHT Kota Malang 2026), "
        "melalui simulated setelah 3 kali percobaan. Alasan: gateway timeout after 3 attempts. Alokasi: "
        "5eed0000. Mohon segera ditindaklanjuti."),
    "case_escalated": (
        "[Puskesos] Kasus 3573011001/2026/00001 di Balearjosari (35.73.01.1001) dieskalasi dari Puskesos "
        "kelurahan/desa ke TKSK kecamatan. Alasan: SLA breached: not assessed in time. Batas waktu Senin, "
        "9 November 2026, terlambat 1 hari kerja. Mohon segera ditindaklanjuti."),
}


def test_every_template_has_a_rendering_test() -> None:
    assert set(BUILDERS) == set(ACTIVE) == set(EXPECTED)


@pytest.mark.parametrize(("template_id", "version"), sorted(TEMPLATES))
def test_every_template_version_renders_with_lokal_formatting(template_id: str, version: int) -> None:
    rendered = render(template_id, BUILDERS[template_id](), version)
    assert (rendered.template_id, rendered.version) == (template_id, version)
    if version == ACTIVE[template_id]:
        assert rendered.text == EXPECTED[template_id]
    assert not re.search(r"\d{16}", rendered.text), "a NIK or KK number is in clear"
    assert HEAD_NIK not in rendered.text and KK not in rendered.text
    assert "  " not in rendered.text and "{" not in rendered.text
    assert len(rendered.text) <= MAX_MESSAGE_CHARS


def test_rupiah_with_terbilang() -> None:
    assert rupiah_in_words(300_000) == "Rp300.000 (tiga ratus ribu rupiah)"
    assert rupiah_in_words(1_250_500) == "Rp1.250.500 (satu juta dua ratus lima puluh ribu lima ratus rupiah)"
    assert rupiah_in_words(1_000) == "Rp1.000 (seribu rupiah)"


def test_dates_and_times_in_indonesian_and_the_villages_zone() -> None:
    assert tanggal(dt.date(2026, 8, 17), with_weekday=True) == "Senin, 17 Agustus 2026"
    assert tanggal(dt.date(2027, 1, 1)) == "1 Januari 2027"
    at = dt.datetime(2026, 12, 31, 23, 30, tzinfo=dt.UTC)
    assert waktu(at, "35.73.01.1001") == "1 Januari 2027 pukul 06.30 WIB"  # Kota Malang
    assert waktu(at, "51.71.01.1001") == "1 Januari 2027 pukul 07.30 WITA"  # Denpasar
    assert waktu(at, "91.71.01.1001") == "1 Januari 2027 pukul 08.30 WIT"  # Jayapura
    assert waktu(at, None).endswith("WIB")


def test_free_text_identity_numbers_are_masked() -> None:
    base = _ex(ReferralIssued)
    data = base.data.model_copy(update={"instructions": "Bawa KK 3573010502200001, NIK 3573010101800003 dan "
                                                        "buku rekening 1234567890."})
    values = messages.referral_issued(base.model_copy(update={"data": data}), None)
    text = render("referral_issued", values).text
    assert "3573********0001" in text and "3573********0003" in text and "******7890" in text
    assert "3573010502200001" not in text and "1234567890" not in text
    assert "(nomor kasus" not in text  # the case number is left out when the case is not known
    assert mask_identity_numbers("kasus 3573011001/2026/00001") == "kasus 3573011001/2026/00001"


def test_bank_payout_masks_the_account_and_unknown_round_says_so() -> None:
    base = _ex(AidAllocated)
    bank = base.data.model_copy(update={"payout": base.data.payout.model_copy(
        update={"method": "bank_account", "reference": "0123456789012"})})
    text = render("aid_allocated", messages.aid_allocated(base.model_copy(update={"data": bank}), ROUND)).text
    assert "ditransfer ke rekening *********9012 antara 1 November 2026 dan 31 Desember 2026." in text
    assert "0123456789012" not in text
    unknown = render("aid_allocated", messages.aid_allocated(base, None)).text
    assert "penerima bantuan sosial sebesar Rp300.000 (tiga ratus ribu rupiah)" in unknown
    assert "jadwal pengambilan diumumkan oleh kelurahan" in unknown


def test_render_refuses_missing_or_unknown_values() -> None:
    values = BUILDERS["case_closed"]()
    with pytest.raises(TemplateError, match="missing"):
        render("case_closed", {k: v for k, v in values.items() if k != "reason"})
    with pytest.raises(TemplateError, match="unexpected"):
        render("case_closed", {**values, "nik": "3573010101800003"})
    with pytest.raises(TemplateError):
        render("no_such_template", values)
    with pytest.raises(TemplateError):
        render("case_closed", values, version=99)


def test_overlong_text_is_cut() -> None:
    values = {**BUILDERS["case_closed"](), "reason": "x" * 2000}
    text = render("case_closed", values).text
    assert len(text) == MAX_MESSAGE_CHARS and text.endswith("…")


@pytest.mark.parametrize(("raw", "expected"), [
    ("0812-3456-7890", "+6281234567890"), ("+62 812 3456 7890", "+6281234567890"),
    ("6281234567890", "+6281234567890"), ("0341-123456", None), ("12345", None),
])
def test_phone_numbers_are_normalised_to_the_whatsapp_form(raw: str, expected: str | None) -> None:
    assert whatsapp_number(raw) == expected
