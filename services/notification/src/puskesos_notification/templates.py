"""Message templates in Bahasa Indonesia, versioned by (template_id, version).

A template is a text with ``{placeholders}``; the values are prepared by ``messages`` (Rupiah with
terbilang, Indonesian dates, masked identity numbers). Changing a text means adding a new
version and pointing ``ACTIVE`` at it: older versions stay renderable, and every delivery
record and NotificationSent event names the version that was sent.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from .formatting import tidy

#: Longest message sent (WhatsApp allows 4096 characters; a long SMS is about 900).
MAX_MESSAGE_CHARS = 900


class Audience(StrEnum):
    RESIDENT = "resident"
    OFFICER = "officer"


@dataclass(frozen=True, slots=True)
class Template:
    template_id: str
    version: int
    audience: Audience
    text: str

    @property
    def placeholders(self) -> frozenset[str]:
        return frozenset(name for _, name, _, _ in string.Formatter().parse(self.text) if name)


_CATALOGUE = (
    Template("complaint_receipt", 1, Audience.RESIDENT,
             "{puskesos}: keluhan Anda telah kami terima pada {filed_at} dengan nomor kasus {case_number} "
             "({category}).{reporter} Simpan nomor kasus ini untuk menanyakan perkembangannya. "
             "Pesan otomatis, mohon tidak dibalas."),
    Template("referral_issued", 1, Audience.RESIDENT,
             "Puskesos: kasus Anda{case_ref} dirujuk ke {target}. Nomor rujukan: {referral_number}. "
             "Harap datang paling lambat {due_on}.{instructions} Tunjukkan nomor rujukan ini kepada petugas."),
    Template("case_closed", 1, Audience.RESIDENT,
             "Puskesos: kasus Anda{case_ref} ditutup pada {closed_at} dengan hasil: {resolution}. "
             "Keterangan: {reason} Jika masih membutuhkan bantuan, silakan datang ke {puskesos}."),
    Template("aid_allocated", 1, Audience.RESIDENT,
             "Yth. {name}, keluarga Anda (KK {kk}) ditetapkan sebagai penerima {program}{round} sebesar "
             "{amount}. {payout} Bantuan ini gratis, tidak dipungut biaya apa pun."),
    Template("aid_disbursed", 1, Audience.RESIDENT,
             "Puskesos: {program} sebesar {amount} untuk keluarga dengan KK {kk} telah disalurkan "
             "pada {disbursed_at}. Nomor referensi: {reference}. Jika bantuan belum Anda terima, "
             "hubungi {puskesos}."),
    Template("disbursement_failed", 1, Audience.OFFICER,
             "[Puskesos] Penyaluran GAGAL (final): KK {kk}, {amount}{round}, melalui {gateway} setelah "
             "{attempts} kali percobaan. Alasan: {reason} Alokasi: {allocation}. Mohon segera ditindaklanjuti."),
    Template("case_escalated", 1, Audience.OFFICER,
             "[Puskesos] Kasus {case_ref} di {village} dieskalasi dari {from_level} ke {to_level}. "
             "Alasan: {reason} Batas waktu {sla_due_on}, terlambat {overdue} hari kerja. "
             "Mohon segera ditindaklanjuti."),
)

TEMPLATES: dict[tuple[str, int], Template] = {(t.template_id, t.version): t for t in _CATALOGUE}
#: The version each template renders today.
ACTIVE: dict[str, int] = {}
for _t in _CATALOGUE:
    ACTIVE[_t.template_id] = max(ACTIVE.get(_t.template_id, 0), _t.version)


class TemplateError(ValueError):
    """Unknown template or version, or values that do not fill its placeholders."""


@dataclass(frozen=True, slots=True)
class Rendered:
    template_id: str
    version: int
    text: str


def template(template_id: str, version: int | None = None) -> Template:
    chosen = version if version is not None else ACTIVE.get(template_id)
    found = TEMPLATES.get((template_id, chosen)) if chosen is not None else None
    if found is None:
        raise TemplateError(f"no template {template_id!r} version {chosen}")
    return found


def render(template_id: str, values: Mapping[str, str], version: int | None = None) -> Rendered:
    """The message text of a template with ``values``; every placeholder must be given, nothing else."""
    chosen = template(template_id, version)
    missing = chosen.placeholders - values.keys()
    extra = values.keys() - chosen.placeholders
    if missing or extra:
        raise TemplateError(f"{template_id} v{chosen.version}: missing {sorted(missing)}, unexpected {sorted(extra)}")
    text = tidy(chosen.text.format_map(values))
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[: MAX_MESSAGE_CHARS - 1].rstrip() + "…"
    return Rendered(chosen.template_id, chosen.version, text)
