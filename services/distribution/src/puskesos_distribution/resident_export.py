"""The distribution service's part of a resident's data export (``export_resident``).

Aid goes to a family (KK), so the records are keyed by family card: the cards intake links the
person to, and the ones this service's registry copy names the person as head of (``head_nik``,
kept in the clear: the service has no keyed-hash index). For each card and each round, every id
is derived (``allocation_id_for``: round and KK), so the records are point reads:

* the round's claim of the family (``claims``: which candidate decides it) and the decisions of
  its candidates (``decisions`` ``{round}:{candidate}``: allocated or rejected, with the reason);
  candidates are the recipient-list rows naming the card (``import_rows`` ``{batch}:{KK}``: one
  scan of the marks, as an export is rare) and the card's eligible assessments (``assess:{event}``);
* the payout outcome (``disbursements``, by allocation id).

Plus the service's copies of the household (head, village) and of its assessments. The payout
account of a recipient-list row is not stored here (it travels with the work item to the gateway).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

from lokal import partial_mask
from puskesos_shared.resident_export import ExportHandler, ExportResident, ExportSection, section

from .domain import allocation_id_for
from .store import ASSESSMENTS, CLAIMS, DECISIONS, DISBURSEMENTS, HOUSEHOLDS, IMPORT_ROWS, ROUNDS, MongoStore

NOTES = (
    "Aid is decided per family card (KK): records are those of the family cards the person belongs or belonged "
    "to, and of the cards naming the person as head.",
    "Households and assessments are this service's copies of intake's registry and referral's assessments.",
    "A recipient list's payout account is not stored by this service.",
)


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.datetime) else value


def _plain(doc: dict[str, Any], *drop: str) -> dict[str, Any]:
    return {k: _iso(v) for k, v in doc.items() if k not in ("_id", *drop)}


def _household(doc: dict[str, Any], nik: str) -> dict[str, Any]:
    head = doc.get("head_nik") == nik
    return {"kk_number": doc["kk"], "revision": doc["revision"], "village_code": doc["village_code"],
            "you_are_head": head, "head_nik": doc["head_nik"] if head else partial_mask("NIK", doc["head_nik"]),
            "head_name": doc["head_name"] if head else partial_mask("NAME", doc["head_name"]),
            "occurred_at": _iso(doc.get("occurred_at"))}


class ResidentRecords:
    def __init__(self, store: MongoStore) -> None:
        self.store = store

    async def export(self, req: ExportResident) -> ExportSection:
        as_head = await self.store.find_all(HOUSEHOLDS, {"head_nik": req.nik})
        kks = sorted({*req.kk_numbers, *(str(d["kk"]) for d in as_head)})
        households, assessments, rounds = [], [], []
        round_docs = await self.store.find_all(ROUNDS, {}, {"config.name": 1, "config.program": 1, "status": 1})
        for kk in kks:
            copies = await self.store.by_field(HOUSEHOLDS, "kk", kk)
            households += [_household(d, req.nik) for d in sorted(copies, key=lambda d: int(d["revision"]))]
            assessed = await self.store.by_field(ASSESSMENTS, "kk", kk)
            assessments += [{"kk_number": kk, "event_id": d["_id"], **_plain(d, "kk")} for d in assessed]
            rows = await self.store.find_all(IMPORT_ROWS, {"_id": {"$regex": f":{re.escape(kk)}$"}})
            for round_doc in round_docs:
                found = await self._round(round_doc, kk, rows, [str(d["_id"]) for d in assessed])
                if found is not None:
                    rounds.append(found)
        records = {"households": households, "assessments": assessments, "rounds": rounds}
        return section("distribution", records, NOTES)

    async def _round(self, round_doc: dict[str, Any], kk: str, rows: list[dict[str, Any]],
                     assessment_events: list[str]) -> dict[str, Any] | None:
        round_id = str(round_doc["_id"])
        allocation_id = str(allocation_id_for(uuid.UUID(round_id), kk))
        listed = [{"batch_id": r["batch_id"], "row": r["row"]} for r in rows if r["round_id"] == round_id]
        claim = await self.store.get(CLAIMS, allocation_id)
        candidates = dict.fromkeys([*([claim["candidate_id"]] if claim else []),
                                    *(f"import:{r['batch_id']}:{r['row']}" for r in listed),
                                    *(f"assess:{event_id}" for event_id in assessment_events)])
        decisions = []
        for candidate in candidates:
            decision = await self.store.get(DECISIONS, f"{round_id}:{candidate}")
            if decision is not None:
                decisions.append({"candidate_id": candidate, **_plain(decision, "round_id", "kk")})
        disbursement = await self.store.get(DISBURSEMENTS, allocation_id)
        if not (listed or decisions or disbursement):
            return None
        config = round_doc.get("config") or {}
        return {"round_id": round_id, "name": config.get("name"), "program": config.get("program"),
                "status": round_doc.get("status"), "kk_number": kk, "allocation_id": allocation_id,
                "recipient_list_rows": listed, "decisions": decisions,
                "disbursement": _plain(disbursement, "round_id") if disbursement else None}


def export_handler(store: MongoStore) -> ExportHandler:
    return ResidentRecords(store).export
