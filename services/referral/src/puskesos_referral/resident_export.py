"""The referral service's part of a resident's data export (``export_resident``, ``puskesos_shared.resident_export``).

What it holds about a person: the cases opened from their complaints (``subject_nik``) or about
their family card (``kk_number``), each with its assessments (inputs, rule-set version, result),
referrals (target, responses), escalations and closure; and its copy of the household registry
(the latest revision of each family card listing the NIK). The service keeps NIKs in the clear
(it has no keyed-hash index), so cases are found by indexes on the subject's NIK and the KK.
"""

from __future__ import annotations

from typing import Any

from lokal import partial_mask
from puskesos_shared.resident_export import ExportHandler, ExportResident, ExportSection, section

from .service import Clock
from .store import CaseStore
from .views import case_detail

NOTES = (
    "Cases are found by the NIK of their subject (the complainant) and by the family cards the person belongs "
    "or belonged to; a case about the family card filed by another member shows that member's NIK masked.",
    "Households are this service's copy of the intake registry, kept for assessments: the latest revision of "
    "each family card listing the NIK is shown (other members by relationship and masked NIK); earlier "
    "revisions are kept as received, insert-only.",
)


def _household(doc: dict[str, Any], nik: str) -> dict[str, Any]:
    """The stored copy, with the other members (other data subjects) as relationship and masked NIK only."""
    household = dict(doc["household"])
    household["members"] = [m if m["nik"] == nik else {"relationship": m["relationship"],
                                                       "nik_masked": partial_mask("NIK", m["nik"])}
                            for m in household["members"]]
    return {"kk_number": doc["kk_number"], "revision": doc["revision"], "household_id": doc["household_id"],
            "household": household}


def export_handler(store: CaseStore, clock: Clock) -> ExportHandler:
    async def export_resident(req: ExportResident) -> ExportSection:
        households = await store.households_listing(req.nik)
        kks = {*req.kk_numbers, *(str(doc["kk_number"]) for doc in households)}
        now = clock()
        cases = []
        for case in await store.cases_concerning(req.nik, sorted(kks)):
            detail = case_detail(case, now)
            mine = case.subject_nik == req.nik
            if not mine and case.subject_nik:
                detail["subject_nik"] = partial_mask("NIK", case.subject_nik)
            cases.append({"relation": "subject" if mine else "household", **detail})
        records = {"cases": cases, "households": [_household(doc, req.nik) for doc in households]}
        return section("referral", records, NOTES, now=now)

    return export_resident
