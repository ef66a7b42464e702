"""The auditor's operations, shared by the HTTP API and the CLI.

Heavy reads (verification, scans for decision and history replay) use a synchronous
``LogReader`` and run on a worker thread; traces use the async store (indexed lookups).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path
from typing import Any, TypeVar

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from puskesos_shared.canonical import digest
from puskesos_shared.commands import send_command
from puskesos_shared.topology import Topology
from pymongo.errors import DuplicateKeyError

from .chain import chunk_records
from .checkpoints import Checkpoint, new_checkpoint, to_document
from .decisions import DECISION_TYPES, DecisionReport, replay_decisions
from .history import live_round, log_events, stream_events
from .projections import RoundTotalsProjection, VillageCasesProjection, compare, round_totals, village_cases
from .reader import LogReader, verify_log
from .rules import RULES_FORMAT, load_rule_sets
from .verify import ChainVerifier, VerifyReport

RULESETS = "rulesets"
ROUND_TYPES = frozenset({"AidRoundOpened", "AidAllocated", "AidAllocationRejected", "AidDisbursed",
                         "DisbursementFailed", "AidRoundClosed"})
CASE_TYPES = frozenset({"ComplaintFiled", "CaseOpened", "CaseAssessed", "CaseEscalated", "CaseClosed",
                        "ReferralIssued", "ReferralResolved"})
P = TypeVar("P", RoundTotalsProjection, VillageCasesProjection)


def verify(reader: LogReader, key: bytes | None, *, from_seq: int | None = None, to_seq: int | None = None,
           external: Iterable[Checkpoint] = ()) -> VerifyReport:
    return verify_log(reader, from_seq=from_seq, to_seq=to_seq, external=external, key=key)


# -- rule sets ------------------------------------------------------------------------------------
def known_rule_sets(reader: LogReader, directories: Iterable[Path]) -> dict[str, dict[str, Any]]:
    """Rule sets from the configured directories, then those learnt earlier (kept in the audit DB)."""
    found = load_rule_sets(directories)
    for doc in reader.db[RULESETS].find({}):
        document = doc.get("document")
        if isinstance(document, dict) and digest(document) == doc.get("digest"):
            found.setdefault(str(doc["tag"]), document)
    return found


async def fetch_rule_set(nc: NatsClient, topology: Topology, tag: str) -> dict[str, Any] | None:
    """Asks the referral service for a published rule set (``referral.get_rule_set``)."""
    with suppress(Exception):
        reply = await send_command(nc, topology.command_subject("referral", "get_rule_set"), {"tag": tag})
        if reply.ok and reply.result and isinstance(reply.result.get("document"), dict):
            document: dict[str, Any] = reply.result["document"]
            if document.get("format") == RULES_FORMAT and digest(document) == reply.result.get("digest"):
                return document
    return None


async def decisions(reader: LogReader, *, directories: Iterable[Path], nc: NatsClient | None = None,
                    topology: Topology | None = None, from_seq: int | None = None,
                    to_seq: int | None = None) -> DecisionReport:
    rule_sets = await asyncio.to_thread(known_rule_sets, reader, directories)

    def scan() -> Any:
        events = log_events(reader, types=DECISION_TYPES, from_seq=from_seq, to_seq=to_seq)
        return replay_decisions(events, rule_sets)

    replay = await asyncio.to_thread(scan)
    if nc is not None and topology is not None:
        for tag in list(replay.missing_rules):
            document = await fetch_rule_set(nc, topology, tag)
            if document is not None:
                replay.resolve_rule_set(tag, document)
                with suppress(DuplicateKeyError):
                    await asyncio.to_thread(reader.db[RULESETS].insert_one,
                                            {"_id": f"r:{tag}", "tag": tag, "digest": digest(document),
                                             "document": document, "learnt_at": dt.datetime.now(dt.UTC)})
    report: DecisionReport = replay.finish()
    return report


# -- history replay -------------------------------------------------------------------------------
async def _fed_from_stream(reader: LogReader, js: JetStreamContext, topology: Topology, projection: P) -> P:
    """``projection`` fed with the events read straight from the stream, up to the log's head."""
    head = int((await asyncio.to_thread(reader.head)).get("seq", 0))
    async for _, event in stream_events(js, topology, until_seq=head):
        projection.feed(event)
    return projection


async def round_history(reader: LogReader, round_id: str, *, js: JetStreamContext | None = None,
                        topology: Topology | None = None, live_url: str | None = None,
                        token: str | None = None) -> dict[str, Any]:
    """A round's totals rebuilt from the log, compared with every other source available."""
    projection = await asyncio.to_thread(lambda: round_totals(round_id, (e for _, e in log_events(
        reader, types=ROUND_TYPES))))
    totals = projection.totals()
    out: dict[str, Any] = {"round_id": round_id, "events": projection.events, "log": totals,
                           "closed": projection.closed, "comparisons": {}}
    if projection.reported_totals is not None:
        out["comparisons"]["reported_at_close"] = compare(totals, projection.reported_totals)
    if js is not None and topology is not None:
        stream = await _fed_from_stream(reader, js, topology, RoundTotalsProjection(round_id=round_id))
        out["comparisons"]["stream"] = compare(totals, stream.totals())
    if live_url and token:
        live = await live_round(live_url, round_id, token)
        out["live"] = live
        out["comparisons"]["live"] = compare(totals, live, only=sorted(live))
    out["ok"] = all(not diffs for diffs in out["comparisons"].values())
    return out


async def village_history(reader: LogReader, village_code: str, *, js: JetStreamContext | None = None,
                          topology: Topology | None = None) -> dict[str, Any]:
    projection = await asyncio.to_thread(lambda: village_cases(village_code, (e for _, e in log_events(
        reader, types=CASE_TYPES))))
    counts = projection.counts()
    out: dict[str, Any] = {"village_code": village_code, "log": counts, "comparisons": {}}
    if js is not None and topology is not None:
        from_stream = await _fed_from_stream(reader, js, topology, VillageCasesProjection(village_code=village_code))
        out["comparisons"]["stream"] = compare(counts, from_stream.counts())
    out["ok"] = all(not diffs for diffs in out["comparisons"].values())
    return out


# -- checkpoints ----------------------------------------------------------------------------------
def checkpoints(reader: LogReader) -> list[dict[str, Any]]:
    return [cp.model_dump(mode="json") for cp in reader.checkpoints()]


def create_checkpoint(reader: LogReader, key: bytes, stream: str) -> dict[str, Any] | None:
    """A checkpoint of the current head (anyone with the key may take one; it is idempotent per seq)."""
    last = reader.last_chunk_number()
    doc = reader.chunk(last) if last >= 0 else None
    if doc is None:
        return None
    check = ChainVerifier(from_start=False)
    check.feed(doc)
    if not check.finish().ok:  # never sign a head that does not verify
        raise ValueError(f"chunk {last} does not verify; run audit verify before taking a checkpoint")
    records = chunk_records(doc)
    cp = new_checkpoint(seq=records[-1].last_seq, hash_=records[-1].hash, chunk=last, records=int(doc.get("total", 0)),
                        stream=stream, now=dt.datetime.now(dt.UTC), key=key)
    with suppress(DuplicateKeyError):
        reader.db["checkpoints"].insert_one(to_document(cp))
    return cp.model_dump(mode="json")
