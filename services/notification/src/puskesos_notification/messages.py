"""The values each template is filled with, from an event and what the service knows (pure).

Identity numbers (NIK, KK, account numbers) only ever appear masked; free text written by
officers (reasons, instructions) is masked too, shortened and put on one line.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from puskesos_shared.contracts import (
    AidAllocated,
    AidDisbursed,
    CaseClosed,
    CaseEscalated,
    ComplaintFiled,
    DisbursementFailed,
    ReferralIssued,
)
from puskesos_shared.contracts.distribution import PayoutMethod
from puskesos_shared.contracts.intake import ComplaintCategory
from puskesos_shared.contracts.primitives import Program
from puskesos_shared.contracts.referral import CaseResolution, EscalationLevel
from puskesos_shared.regions import village_name

from .formatting import (
    free_text,
    mask_account,
    mask_kk,
    mask_nik,
    puskesos_of,
    rupiah,
    rupiah_in_words,
    tanggal,
    waktu,
    zone_of,
)

CATEGORY_LABELS = {
    ComplaintCategory.AID_NOT_RECEIVED: "bantuan belum diterima",
    ComplaintCategory.HEALTH_REFERRAL: "rujukan kesehatan",
    ComplaintCategory.NEGLECTED_CHILD: "anak terlantar",
    ComplaintCategory.HOMELESS_OR_BEGGAR: "gelandangan atau pengemis",
    ComplaintCategory.DISABILITY: "penyandang disabilitas",
    ComplaintCategory.ELDERLY_ALONE: "lansia tanpa pendamping",
    ComplaintCategory.DISASTER_VICTIM: "korban bencana",
    ComplaintCategory.DATA_CORRECTION: "perbaikan data",
    ComplaintCategory.OTHER: "lainnya",
}
PROGRAM_LABELS = {
    Program.PKH: "Program Keluarga Harapan (PKH)",
    Program.BPNT: "Bantuan Pangan Non Tunai (BPNT)",
    Program.PBI_JK: "PBI Jaminan Kesehatan",
    Program.BLT: "Bantuan Langsung Tunai (BLT)",
    Program.HOSPITAL_REFERRAL: "rujukan rumah sakit",
    Program.REHABILITATION: "rehabilitasi sosial",
}
RESOLUTION_LABELS = {
    CaseResolution.RESOLVED: "selesai ditangani",
    CaseResolution.REFERRED_AND_COMPLETED: "rujukan selesai",
    CaseResolution.REJECTED: "tidak dapat ditindaklanjuti",
    CaseResolution.WITHDRAWN: "dicabut oleh pelapor",
}
LEVEL_LABELS = {
    EscalationLevel.VILLAGE: "Puskesos kelurahan/desa",
    EscalationLevel.KECAMATAN: "TKSK kecamatan",
    EscalationLevel.DINAS_SOSIAL: "Dinas Sosial",
}


@dataclass(frozen=True, slots=True)
class CaseInfo:
    """What the service learnt about a case (CaseOpened, ComplaintFiled)."""

    case_id: str
    case_number: str | None = None
    complaint_id: str | None = None
    village_code: str | None = None
    nik_hash: str | None = None
    kk_hash: str | None = None


@dataclass(frozen=True, slots=True)
class RoundInfo:
    """What the service learnt about an aid round (AidRoundOpened)."""

    round_id: str
    name: str
    program: Program
    period_start: dt.date
    period_end: dt.date


def _sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?", "…")) else f"{text}."


def _case_ref(case: CaseInfo | None) -> str:
    return f" (nomor kasus {case.case_number})" if case and case.case_number else ""


def _short(value: uuid.UUID | str) -> str:
    return str(value)[:8]


def _place(reference: str) -> str:
    """``KANTOR-POS-BLIMBING`` → ``Kantor Pos Blimbing``."""
    words = reference.replace("-", " ").replace("_", " ").split()
    return " ".join(w.capitalize() if w.isupper() or w.islower() else w for w in words)


def complaint_receipt(event: ComplaintFiled) -> dict[str, str]:
    data = event.data
    nik = data.complainant.nik
    return {
        "puskesos": puskesos_of(data.village_code),
        "filed_at": waktu(data.filed_at, data.village_code),
        "case_number": data.case_number,
        "category": CATEGORY_LABELS[data.category],
        "reporter": f" NIK pelapor: {mask_nik(nik)}." if nik else "",
    }


def referral_issued(event: ReferralIssued, case: CaseInfo | None) -> dict[str, str]:
    data = event.data
    instructions = free_text(data.instructions, 400) if data.instructions.strip() else ""
    return {
        "case_ref": _case_ref(case),
        "target": data.target.name,
        "referral_number": data.referral_number,
        "due_on": tanggal(data.due_on, with_weekday=True),
        "instructions": f" Petunjuk: {_sentence(instructions)}" if instructions else "",
    }


def case_closed(event: CaseClosed, case: CaseInfo | None) -> dict[str, str]:
    data = event.data
    village = case.village_code if case else event.village_code
    return {
        "case_ref": _case_ref(case),
        "closed_at": tanggal(data.closed_at.astimezone(zone_of(village)).date()),
        "resolution": RESOLUTION_LABELS[data.resolution],
        "reason": _sentence(free_text(data.reason, 300)),
        "puskesos": puskesos_of(village),
    }


def _program(round_info: RoundInfo | None) -> str:
    return PROGRAM_LABELS[round_info.program] if round_info else "bantuan sosial"


def aid_allocated(event: AidAllocated, round_info: RoundInfo | None) -> dict[str, str]:
    data = event.data
    if round_info is not None:
        start, end = tanggal(round_info.period_start), tanggal(round_info.period_end)
    if data.payout.method is PayoutMethod.COLLECTION_POINT:
        when = (f" mulai {start} sampai {end}" if round_info
                else "; jadwal pengambilan diumumkan oleh kelurahan")
        payout = f"Bantuan dapat diambil di {_place(data.payout.reference)}{when}. Bawa KK dan KTP asli."
    else:
        when = f" antara {start} dan {end}" if round_info else ""
        payout = f"Bantuan akan ditransfer ke rekening {mask_account(data.payout.reference)}{when}."
    return {
        "name": data.recipient_name,
        "kk": mask_kk(data.kk_number),
        "program": _program(round_info),
        "round": f" pada penyaluran {round_info.name}" if round_info else "",
        "amount": rupiah_in_words(data.amount),
        "payout": payout,
    }


def aid_disbursed(event: AidDisbursed, round_info: RoundInfo | None, village_code: str | None) -> dict[str, str]:
    data = event.data
    return {
        "program": _program(round_info),
        "amount": rupiah_in_words(data.amount),
        "kk": mask_kk(data.kk_number),
        "disbursed_at": waktu(data.disbursed_at, village_code),
        "reference": data.gateway_reference,
        "puskesos": puskesos_of(village_code),
    }


def disbursement_failed(event: DisbursementFailed, round_info: RoundInfo | None) -> dict[str, str]:
    data = event.data
    return {
        "kk": mask_kk(data.kk_number),
        "amount": rupiah(data.amount),
        "round": f" ({round_info.name})" if round_info else "",
        "gateway": data.gateway,
        "attempts": str(data.attempts),
        "reason": _sentence(free_text(data.reason, 200)),
        "allocation": _short(data.allocation_id),
    }


def case_escalated(event: CaseEscalated, case: CaseInfo | None, village_code: str | None) -> dict[str, str]:
    data = event.data
    name = village_name(village_code) if village_code else None
    return {
        "case_ref": case.case_number if case and case.case_number else f"#{_short(data.case_id)}",
        "village": f"{name} ({village_code})" if name else (village_code or "wilayah tidak diketahui"),
        "from_level": LEVEL_LABELS[data.from_level],
        "to_level": LEVEL_LABELS[data.to_level],
        "reason": _sentence(free_text(data.reason, 200)),
        "sla_due_on": tanggal(data.sla_due_on, with_weekday=True),
        "overdue": str(data.overdue_working_days),
    }
