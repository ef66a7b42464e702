"""Reserving a round's budget and village quotas: slots held by unique inserts.

Why not a guarded counter
-------------------------
``find_one_and_update({"_id": scope, "used": {"$lt": cap}}, {"$inc": {"used": 1}})`` never
overspends on MongoDB, but it is one write and recording which allocation holds the place is
another: a replica killed between the two leaks a place for good (the counter says taken,
nobody holds it), and a retried work item cannot tell whether its earlier run counted itself.
Without multi-document transactions the reservation and its holder must be one document, so
each reservation here is an insert that names both.

The protocol
------------
A round's budget is ``budget_cap // amount_per_family`` numbered *slots*; each village with a
quota has ``max_families`` slots of its own. An allocation holds slot ``n`` of a scope by owning
the document ``{"_id": "{allocation}:{scope}", "number": n}`` in ``budget_slots`` (``quota_slots``
for a village), under a unique index on (round, scope, number). So:

* two allocations never hold the same slot (unique number), and there are no more slots than
  the budget or the quota allows: overspending is impossible, whatever crashes, retries or
  races happen;
* one allocation never holds two slots of a scope (unique ``_id``), even when the same work item
  runs twice at once (its ack wait expired while the first run was alive): the second run finds
  the first run's slot and uses it;
* a retried work item finds what an earlier run reserved with point reads by ``_id`` (``held``).

Finding a free slot cheaply, and knowing for sure when none is left:

* a small scope (a village quota, up to ``DIRECT_LIMIT`` slots) is probed number by number: a
  process starts from the numbers its first read of the round's slots shows free (one query,
  shared by every village) and moves past a number only after its insert succeeded or was refused
  because another allocation holds it. So when its list runs out, every number has been seen
  taken, and the quota is exhausted, exactly. No leases, no hole hunting;
* a large scope (the budget of 63,335 families) would make a restarted process probe for long,
  so each process *leases* small ranges of numbers (an atomic ``$inc`` of the scope's counter in
  ``leases`` hands range ``k`` to exactly one caller) and hands them out locally. A process
  killed mid-range leaves a few numbers unused; once every range is leased, a process reads which
  numbers are taken (one query for the round, shared) and tries the holes. A slot is never freed,
  so a read can only show a hole that has been filled since, never hide one; the budget is
  declared exhausted only when a read made after the last failed attempt shows no hole.

Either way a rejection for an exhausted budget or quota is exact.

Crash safety (the allocation handler's order): claim the KK (unique ``claims`` document), take a
village slot, take a budget slot, insert the allocation (unique id per round and KK), publish,
acknowledge. A crash anywhere leaves documents keyed by the allocation; the redelivered work
item finds them and carries on with them, so nothing is reserved twice and nothing leaks.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import deque
from dataclasses import dataclass

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from .store import BUDGET_SLOTS, LEASES, QUOTA_SLOTS, MongoStore

BUDGET = "budget"
#: Scopes up to this many slots are probed directly (no leases, no scans).
DIRECT_LIMIT = 512


def village_scope(village_code: str) -> str:
    return f"v:{village_code}"


def slot_collection(scope: str) -> str:
    return BUDGET_SLOTS if scope == BUDGET else QUOTA_SLOTS


def slot_id(allocation_id: uuid.UUID, scope: str) -> str:
    return f"{allocation_id}:{scope}"


@dataclass(frozen=True, slots=True)
class Held:
    scope: str
    number: int


class SlotPool:
    """The slots of one scope (a round's budget, or one village's quota in a round)."""

    def __init__(self, store: MongoStore, round_id: uuid.UUID, scope: str, size: int) -> None:
        self._store, self.round_id, self.scope, self.size = store, round_id, scope, size
        self.collection = slot_collection(scope)
        self.direct = size <= DIRECT_LIMIT
        self.range_size = max(2, min(64, size // 512))  # a dead process leaves fewer than 64 holes
        self._untried: deque[int] | None = None  # direct mode: numbers this process has not tried yet
        self._in_flight = 0  # direct mode: numbers handed out whose insert has not finished
        self._settled = asyncio.Condition()
        self._free: deque[int] = deque()
        self._ranges_left = True
        self._holes: list[int] = []
        self._holes_read_at = 0.0  # a confirming read must be newer than the last holes tried
        self._full = size == 0
        self._lock = asyncio.Lock()

    async def take(self, allocation_id: uuid.UUID, candidate_id: str) -> Held | None:
        """The allocation's slot in this scope (taken now or before), or None when all are taken.

        A refused insert normally means another allocation holds that number. It can also mean this
        allocation holds a slot already (the same work item running twice at once); after two
        refusals in a row the slot document of this allocation is read to tell, and numbers it
        skipped for that reason are handed back.
        """
        doc_id = slot_id(allocation_id, self.scope)
        refused: list[int] = []
        while True:
            number = await (self._next_direct() if self.direct else self._next_number())
            if number is None:
                return None
            doc = {"_id": doc_id, "round_id": str(self.round_id), "scope": self.scope, "number": number,
                   "allocation_id": str(allocation_id), "candidate_id": candidate_id}
            try:
                inserted = await self._store.insert(self.collection, doc)
                mine = None
                if not inserted and len(refused) >= 1:
                    mine = await self._store.get(self.collection, doc_id)
            except BaseException:
                await self._settle([number], returned=True)  # not known to be taken: someone tries it again
                raise
            if inserted:
                await self._settle([number], returned=False)
                return Held(self.scope, number)
            if mine is not None:  # an earlier or concurrent run of this allocation holds one already
                await self._settle([number], returned=True)
                await self._settle(refused, returned=True, in_flight=False)
                return Held(self.scope, int(mine["number"]))
            refused.append(number)
            await self._settle([number], returned=False)

    async def _next_direct(self) -> int | None:
        async with self._settled:
            if self._untried is None:  # first use in this process: skip what is known to be taken
                taken = await self._store.slot_numbers(self.collection, self.round_id, self.scope)
                self._untried = deque(n for n in range(self.size) if n not in taken)
            while True:
                if self._free:  # numbers handed back: not known to be taken
                    number = self._free.popleft()
                elif self._untried:
                    number = self._untried.popleft()
                elif self._in_flight:  # the last numbers are being tried: wait for their outcome
                    await self._settled.wait()
                    continue
                else:
                    self._full = True
                    return None
                self._in_flight += 1
                return number

    async def _settle(self, numbers: list[int], *, returned: bool, in_flight: bool = True) -> None:
        if not self.direct:
            if returned:
                self._free.extend(numbers)
            return
        async with self._settled:
            if in_flight:
                self._in_flight -= len(numbers)
            if returned:
                self._free.extend(numbers)
            self._settled.notify_all()

    async def _next_number(self) -> int | None:
        if self._free:
            return self._free.popleft()
        async with self._lock:
            if self._free:
                return self._free.popleft()
            if self._full:
                return None
            if self._ranges_left:
                first = await self._lease_range()
                if first is not None:
                    self._free.extend(range(first, min(first + self.range_size, self.size)))
                    return self._free.popleft()
                self._ranges_left = False
            if not self._holes:
                self._holes = await self._find_holes()
                if not self._holes:
                    self._full = True
                    return None
            return self._holes.pop()

    async def _lease_range(self) -> int | None:
        """The first number of a range no other caller gets, or None once every range is leased."""
        counter = f"{self.round_id}:{self.scope}"
        while True:
            try:
                doc = await self._store.db[LEASES].find_one_and_update(
                    {"_id": counter}, {"$inc": {"leased": 1},
                                       "$setOnInsert": {"round_id": str(self.round_id), "scope": self.scope}},
                    upsert=True, return_document=ReturnDocument.AFTER)
            except DuplicateKeyError:  # two first leases raced to create the counter: the other one did
                continue
            assert doc is not None, "an upsert returning the document after the update always has one"
            first = (int(doc["leased"]) - 1) * self.range_size
            return first if first < self.size else None

    async def _find_holes(self) -> list[int]:
        not_before, self._holes_read_at = self._holes_read_at, time.monotonic()
        taken = await self._store.slot_numbers(self.collection, self.round_id, self.scope, not_before=not_before)
        holes = [n for n in range(self.size) if n not in taken]
        random.shuffle(holes)  # replicas filling holes at once rarely pick the same one
        return holes


class Reservations:
    """Every slot pool this process uses, by round and scope."""

    def __init__(self, store: MongoStore) -> None:
        self._store = store
        self._pools: dict[tuple[uuid.UUID, str], SlotPool] = {}

    def pool(self, round_id: uuid.UUID, scope: str, size: int) -> SlotPool:
        key = (round_id, scope)
        pool = self._pools.get(key)
        if pool is None or pool.size != size:
            pool = self._pools[key] = SlotPool(self._store, round_id, scope, size)
        return pool

    async def held(self, allocation_id: uuid.UUID, scopes: list[str]) -> dict[str, Held]:
        """The slots an earlier run of this allocation reserved, by scope (point reads only)."""
        docs = await asyncio.gather(*(self._store.get(slot_collection(s), slot_id(allocation_id, s))
                                      for s in scopes))
        return {s: Held(s, int(d["number"])) for s, d in zip(scopes, docs, strict=True) if d is not None}
