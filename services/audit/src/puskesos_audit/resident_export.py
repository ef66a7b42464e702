"""The audit service's part of a resident's data export (``export_resident``).

The audit log holds copies of the events the other services published, so what it holds about a
person is the list of those events. The trace index keeps NIKs and KK numbers only as keyed hashes
(``extract.nik_key`` / ``kk_key``), so the events are found through the index of the keys they are
listed under: the person's NIK and family cards, then the entities those events name (their cases, complaints,
allocations...: a ``ReferralIssued`` names the case, not the NIK). Listed per event: its sequence,
id, type, time, producer, actor and village; the bodies are the other services' records, which
their own sections export (and they may name other people).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from puskesos_shared.resident_export import ExportHandler, ExportResident, ExportSection, section

from .extract import NARROW_KINDS, kk_key, nik_key
from .store import AuditStore

#: At most this many events are listed (the reply must fit a NATS message); the notes say if more exist.
MAX_EVENTS = 1000
MAX_ENTITIES = 200
RETENTION = (
    "The audit log holds immutable copies of the listed events in a hash-chained, append-only log. They are not "
    "erased or corrected on request: removing or altering a record would break the chain that lets auditors "
    "prove where every aid decision came from. Corrections are made by the owning service and appear as new "
    "events (e.g. HouseholdUpdated); the log is read only by auditors."
)


def _event(doc: dict[str, Any], concerns: str) -> dict[str, Any]:
    ts = doc.get("ts")
    logged = dt.datetime.fromtimestamp(ts / 1e9, dt.UTC).isoformat() if isinstance(ts, int) else None
    return {"seq": doc.get("seq"), "event_id": doc.get("event_id"), "event_type": doc.get("event_type"),
            "occurred_at": doc.get("occurred_at"), "logged_at": logged, "producer": doc.get("producer"),
            "actor": doc.get("actor"), "village_code": doc.get("village_code"), "subject": doc.get("subject"),
            "concerns": concerns}


class ResidentEvents:
    def __init__(self, store: AuditStore, index_key: bytes) -> None:
        self.store, self.index_key = store, index_key

    async def _listed(self, keys: dict[str, str], found: dict[str, tuple[dict[str, Any], str]]) -> bool:
        """Adds the events listed under ``keys`` to ``found`` (id -> (summary, why)); False when capped."""
        for key, concerns in keys.items():
            for doc in await self.store.listed(key, limit=MAX_EVENTS + 1):
                found.setdefault(str(doc["_id"]), (doc, concerns))
                if len(found) > MAX_EVENTS:
                    return False
        return True

    async def export(self, req: ExportResident) -> ExportSection:
        found: dict[str, tuple[dict[str, Any], str]] = {}
        direct = {nik_key(self.index_key, req.nik): "your NIK",
                  **{kk_key(self.index_key, kk): f"family card {kk}" for kk in req.kk_numbers}}
        complete = await self._listed(direct, found)
        entities: dict[str, str] = {}
        for doc, _ in list(found.values()):
            for key in doc.get("keys") or ():
                if key.split(":", 1)[0] in NARROW_KINDS and len(entities) < MAX_ENTITIES:
                    entities.setdefault(key, key.split(":", 1)[0])
        if complete:
            complete = await self._listed({k: f"your {kind} {k.split(':', 1)[1]}" for k, kind in entities.items()},
                                          found)
        events = sorted((_event(d, concerns) for d, concerns in found.values()), key=lambda e: e["seq"] or 0)
        events = events[:MAX_EVENTS]
        head, indexed = await self.store.get_head(), await self.store.index_position()
        notes = [RETENTION,
                 f"Index position: chunk {indexed} of the log's {head['chunk']} (events logged since are not listed "
                 "yet)." if indexed < int(head["chunk"]) else "The index covers the whole log.",
                 "Event bodies are not repeated here: they are the records the other sections export."]
        if not complete:
            notes.append(f"More than {MAX_EVENTS} events concern this person; the first {MAX_EVENTS} are listed. "
                         "Auditors can trace the rest (puskesos audit trace).")
        return section("audit", {"events": events}, tuple(notes))


def export_handler(store: AuditStore, index_key: bytes) -> ExportHandler:
    return ResidentEvents(store, index_key).export
