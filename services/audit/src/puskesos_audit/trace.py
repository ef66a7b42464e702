"""Tracing: from an allocation, disbursement, case, complaint, household, KK, NIK or event to the
roots of every decision on the way, and on to what followed.

The walk reads the trace index only, level by level, and every query it sends is served by an
index: summaries and origins by ``_id`` (one ``$in`` per level), an entity's events and an
event's children by equality on ``events.index_keys`` (its multikey index):

* up: an event's ``causation_id`` and other event links (an allocation's assessment event, a
  notification's source event), and the *origin* of each entity it refers to (a disbursement
  refers to its allocation's ``AidAllocated``, an assessment to its ``CaseOpened``, an allocation
  to its round's ``AidRoundOpened`` and the family's ``HouseholdRegistered``);
* down: the events caused by or based on it, and the events about the entities it defines
  (a narrow entity only: never a whole aid round).

Decisions (``CaseAssessed``, ``AidAllocated``, ``AidAllocationRejected``) carry their inputs and
rule-set version. Personal data in the result is masked unless ``reveal`` is asked for; NIK
and KK numbers are looked up through their keyed hashes.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from puskesos_shared.contracts.primitives import check_kk_number, check_nik
from puskesos_shared.logging import mask_value
from pydantic import BaseModel

from .extract import DECISIONS, NARROW_KINDS, kk_key, nik_key
from .store import EVENTS, ORIGINS, AuditStore, origin_id

Document = dict[str, Any]


class TraceKind(StrEnum):
    ALLOCATION = "allocation"
    DISBURSEMENT = "disbursement"
    CASE = "case"
    COMPLAINT = "complaint"
    ASSESSMENT = "assessment"
    REFERRAL = "referral"
    HOUSEHOLD = "household"
    KK = "kk"
    NIK = "nik"
    EVENT = "event"


def check_trace_value(kind: TraceKind, value: str) -> str:
    """The value a trace starts from, checked for its kind: a NIK or KK by lokal-id's rules, every other kind
    a UUID (canonical lower case). ValueError says what is wrong, never echoing the value."""
    value = value.strip()
    if kind is TraceKind.NIK:
        return check_nik(value)
    if kind is TraceKind.KK:
        return check_kk_number(value)
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ValueError(f"a {kind.value} id is a UUID (e.g. 3f2b6c1e-8d4a-4e0b-9c57-1a2b3c4d5e6f)") from None


class TraceNode(BaseModel):
    id: str
    seq: int
    role: str  # start | ancestor | descendant
    event_id: str | None
    event_type: str | None
    occurred_at: str | None
    producer: str | None
    actor: dict[str, Any] | None
    village_code: str | None
    correlation_id: str | None
    causation_id: str | None
    hash: str
    error: str | None = None
    decision: dict[str, Any] | None = None
    data: dict[str, Any] | None = None


class TraceEdge(BaseModel):
    parent: str
    child: str
    relation: str


class TraceResult(BaseModel):
    query: dict[str, str]
    start: list[str]
    nodes: list[TraceNode]
    edges: list[TraceEdge]
    roots: list[str]
    externals: list[str]
    decisions: list[str]
    truncated: bool
    lookups: int
    ms: float

    def node(self, node_id: str) -> TraceNode | None:
        return next((n for n in self.nodes if n.id == node_id), None)


def start_key(kind: TraceKind, value: str, index_key: bytes) -> str:
    if kind is TraceKind.NIK:
        return nik_key(index_key, value)
    if kind is TraceKind.KK:
        return kk_key(index_key, value)
    return f"{kind.value}:{value.lower()}"


def decision_of(event_type: str | None, body: dict[str, Any]) -> dict[str, Any] | None:
    data = body.get("data") or {}
    if event_type == "CaseAssessed":
        return {"kind": "assessment", "rule_set_version": data.get("rule_set_version"),
                "inputs": data.get("inputs"), "inputs_digest": data.get("inputs_digest"),
                "result": data.get("result"), "assessed_by": data.get("assessed_by")}
    if event_type == "AidAllocated":
        basis = data.get("basis") or {}
        return {"kind": "allocation", "rule_set_version": basis.get("rule_set_version"), "basis": basis,
                "amount": data.get("amount"), "round_id": data.get("round_id")}
    if event_type == "AidAllocationRejected":
        basis = data.get("basis") or {}
        return {"kind": "rejection", "rule_set_version": basis.get("rule_set_version"), "basis": basis,
                "reason": data.get("reason"), "detail": data.get("detail"), "round_id": data.get("round_id")}
    if event_type == "AidRoundOpened":
        return {"kind": "round_rules", "rule_set_version": data.get("eligibility_rule_version"),
                "amount_per_family": data.get("amount_per_family"), "budget_cap": data.get("budget_cap"),
                "village_quotas": data.get("village_quotas"), "program": data.get("program")}
    return None


def _node(doc: Document, role: str, reveal: bool) -> TraceNode:
    try:
        body = json.loads(bytes(doc["body"]))
    except (ValueError, KeyError, TypeError):
        body = {}
    body = body if isinstance(body, dict) else {}
    data = body.get("data") if isinstance(body.get("data"), dict) else None
    decision = decision_of(doc.get("event_type"), body) if doc.get("error") is None else None
    if not reveal:
        data = mask_value("data", data) if data is not None else None
        decision = mask_value("decision", decision) if decision is not None else None
    occurred = doc.get("occurred_at")
    return TraceNode(
        id=str(doc["_id"]), seq=int(doc["seq"]), role=role, event_id=doc.get("event_id"),
        event_type=doc.get("event_type"), occurred_at=str(occurred) if occurred else None,
        producer=doc.get("producer"), actor=doc.get("actor"), village_code=doc.get("village_code"),
        correlation_id=mask_value("correlation_id", doc.get("correlation_id")) if not reveal
        else doc.get("correlation_id"),
        causation_id=doc.get("causation_id"), hash=str(doc.get("hash", "")), error=doc.get("error"),
        decision=decision, data=data,
    )


class _Walk:
    def __init__(self, store: AuditStore, max_nodes: int) -> None:
        self.store = store
        self.max_nodes = max_nodes
        self.docs: dict[str, Document] = {}
        self.roles: dict[str, str] = {}
        self.edges: dict[tuple[str, str], str] = {}
        self.externals: set[str] = set()
        self.lookups = 0
        self.truncated = False

    async def get(self, collection: str, ids: Iterable[str]) -> list[Document | None]:
        ids = list(ids)
        self.lookups += len(ids)
        return await self.store.get_many(collection, ids)

    def add(self, doc: Document, role: str) -> bool:
        doc_id = str(doc["_id"])
        if doc_id in self.docs:
            return False
        if len(self.docs) >= self.max_nodes:
            self.truncated = True
            return False
        self.docs[doc_id] = doc
        self.roles[doc_id] = role
        return True

    async def up(self, frontier: list[Document]) -> None:
        while frontier:
            links: list[tuple[str, str, str]] = []  # child id, parent event id, relation
            refs: list[tuple[str, str]] = []  # child id, entity key
            for doc in frontier:
                links += [(doc["_id"], str(p["id"]), str(p["rel"])) for p in doc.get("parents") or []]
                own = set(doc.get("origin_of") or [])
                refs += [(doc["_id"], k) for k in doc.get("keys") or []
                         if k not in own and k.split(":", 1)[0] in _REF_KINDS]
            seqs = {str(d["_id"]): int(d["seq"]) for d in frontier}
            parents, origins = await asyncio.gather(self.get(EVENTS, [f"e:{p}" for _, p, _ in links]),
                                                    self.get(ORIGINS, [origin_id(k) for _, k in refs]))
            origin_docs = await self.get(EVENTS, [str(o["doc"]) for o in origins if o is not None])
            nxt: list[Document] = []
            for (child, parent_event, relation), found in zip(links, parents, strict=True):
                if found is None:
                    self.externals.add(parent_event)
                    self.edges[(f"external:{parent_event}", child)] = relation
                    continue
                self.edges[(str(found["_id"]), child)] = relation
                if self.add(found, "ancestor"):
                    nxt.append(found)
            it = iter(origin_docs)
            for (child, key), origin in zip(refs, origins, strict=True):
                if origin is None:
                    continue
                found = next(it)
                if found is None or int(found["seq"]) >= seqs[child]:
                    continue  # an origin defines the entity first; a later one is not a cause
                self.edges.setdefault((str(found["_id"]), child), f"refers_to:{key.split(':', 1)[0]}")
                if self.add(found, "ancestor"):
                    nxt.append(found)
            frontier = nxt

    async def down(self, frontier: list[Document]) -> list[Document]:
        found_all: list[Document] = []
        while frontier and not self.truncated:
            keys: list[tuple[str, str]] = []
            for doc in frontier:
                if doc.get("event_id"):
                    keys.append((doc["_id"], f"ch:{doc['event_id']}"))
                keys += [(doc["_id"], k) for k in doc.get("origin_of") or [] if k.split(":", 1)[0] in NARROW_KINDS]
            lists = await asyncio.gather(*(self.store.listed(k, limit=self.max_nodes) for _, k in keys))
            self.lookups += len(keys)
            wanted: list[tuple[str, str, str]] = []
            fetched: dict[str, Document] = {}
            for (parent, key), listed in zip(keys, lists, strict=True):
                relation = "caused" if key.startswith("ch:") else f"refers_to:{key.split(':', 1)[0]}"
                for doc in listed:
                    if str(doc["_id"]) != parent:
                        wanted.append((parent, str(doc["_id"]), relation))
                        fetched[str(doc["_id"])] = doc
            nxt: list[Document] = []
            seqs = {str(d["_id"]): int(d["seq"]) for d in frontier}
            for parent, doc_id, relation in wanted:
                child = fetched.get(doc_id) or self.docs.get(doc_id)
                if child is None or int(child["seq"]) <= seqs[parent]:
                    continue  # effects come after their causes in the stream
                rel = next((str(p["rel"]) for p in child.get("parents") or [] if f"e:{p['id']}" == parent),
                           relation)
                self.edges.setdefault((parent, doc_id), rel)
                if self.add(child, "descendant"):
                    nxt.append(child)
            found_all += nxt
            frontier = nxt
        return found_all


_REF_KINDS = frozenset({"household", "complaint", "case", "assessment", "referral", "round", "allocation",
                        "disbursement", "kk"})


async def trace(store: AuditStore, kind: TraceKind, value: str, index_key: bytes, *, max_nodes: int = 500,
                reveal: bool = False) -> TraceResult:
    started = time.perf_counter()
    walk = _Walk(store, max_nodes)
    if kind is TraceKind.EVENT:
        starts = [d for d in await walk.get(EVENTS, [f"e:{value.lower()}"]) if d is not None]
    else:
        starts = await store.listed(start_key(kind, value, index_key), limit=max_nodes)
        walk.lookups += 1
    starts = [d for d in starts if walk.add(d, "start")]
    await walk.up(starts)
    descendants = await walk.down(starts)
    await walk.up([d for d in descendants if d.get("event_type") in DECISIONS])
    nodes = sorted((_node(doc, walk.roles[i], reveal) for i, doc in walk.docs.items()), key=lambda n: n.seq)
    edges = [TraceEdge(parent=p, child=c, relation=r) for (p, c), r in walk.edges.items()]
    children = {e.child for e in edges if not e.parent.startswith("external:")}
    shown = value if reveal or kind not in (TraceKind.NIK, TraceKind.KK) else mask_value(
        "nik" if kind is TraceKind.NIK else "kk_number", value)
    return TraceResult(
        query={"kind": kind.value, "value": str(shown)}, start=[str(d["_id"]) for d in starts], nodes=nodes,
        edges=edges, roots=[n.id for n in nodes if n.id not in children],
        externals=sorted(walk.externals), decisions=[n.id for n in nodes if n.event_type in DECISIONS],
        truncated=walk.truncated, lookups=walk.lookups, ms=round((time.perf_counter() - started) * 1000, 2),
    )
