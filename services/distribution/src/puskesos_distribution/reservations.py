"""Reserving a round's budget and village quotas with unique inserts only.

Why not a guarded counter
-------------------------
The obvious protocol, ``find_one_and_update({"_id": round, "allocated": {"$lte": cap - amount}},
{"$inc": ...})``, is atomic on MongoDB but NOT on FerretDB 1.24 (SQLite backend): there an update
is a read, a change in Go and a write back, with no lock in between. Measured here: 8 concurrent
clients each running 50 guarded ``$inc`` with a limit of 100 all succeeded (400 "reservations"),
and the counter ended at 81 (lost updates). The only write FerretDB makes atomic across clients
is an insert that a unique index accepts or refuses. So every reservation here is an insert.

The protocol
------------
A round's budget is ``budget_cap // amount_per_family`` numbered *slots*; each village with a
quota has ``max_families`` slots of its own. Holding slot ``n`` means owning the document
``{"_id": "{round}:{n}", "allocation_id": ...}`` in ``budget_slots`` (``quota_slots`` for a
village). Two allocations can never hold the same slot (unique ``_id``), and there are no more
slots than the budget or the quota allows: overspending is impossible by construction, whatever
crashes, retries or races happen.

Finding a free slot cheaply: each replica *leases* a range of slot numbers by inserting
``{"_id": "{round}:{scope}:{k}"}`` into ``leases`` and hands its numbers out locally, so replicas
do not collide. When every range is leased, a replica reads which slots are taken (one scan) and
tries the holes (ranges of a replica that died, numbers whose insert failed), in random order;
a slot is declared exhausted only after a fresh read shows no hole. A taken slot is never freed
(see below), so "no hole" stays true: a rejection for an exhausted budget or quota is exact.

Crash safety (the allocation handler's order): claim the KK (unique ``claims`` document), take a
village slot, take a budget slot, insert the allocation (unique id per round and KK), publish,
acknowledge. A crash anywhere leaves documents that name the allocation; the redelivered work
item finds its own slots (``held``) and carries on with them, so nothing is reserved twice and
nothing leaks. Only if the same work item is processed twice *at the same time* (its ack wait
expired while the first run was still alive) can one run end with slots the winning run does not
use; it releases them (``release``). That is the one place a slot is freed, and the worst it can
do is leave a slot unused until the next hole scan, never overspend.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import deque
from dataclasses import dataclass

from .store import BUDGET_SLOTS, LEASES, QUOTA_SLOTS, MongoStore

BUDGET = "budget"


def village_scope(village_code: str) -> str:
    return f"v:{village_code}"


@dataclass(frozen=True, slots=True)
class Held:
    scope: str
    number: int
    slot_id: str


class SlotPool:
    """The slots of one scope (a round's budget, or one village's quota in a round)."""

    def __init__(self, store: MongoStore, round_id: uuid.UUID, scope: str, size: int) -> None:
        self._store, self.round_id, self.scope, self.size = store, round_id, scope, size
        self.collection = BUDGET_SLOTS if scope == BUDGET else QUOTA_SLOTS
        self.range_size = max(1, min(64, size // (64 if scope == BUDGET else 4)))
        self._free: deque[int] = deque()
        self._lease_hint: int | None = None
        self._ranges_left = True
        self._holes: list[int] = []
        self._holes_read_at = 0.0  # a confirming read must be newer than the last holes tried
        self._full = size == 0
        self._lock = asyncio.Lock()

    def slot_id(self, number: int) -> str:
        if self.scope == BUDGET:
            return f"{self.round_id}:{number}"
        return f"{self.round_id}:{self.scope[2:]}:{number}"

    @property
    def exhausted(self) -> bool:
        return self._full

    async def take(self, allocation_id: uuid.UUID, candidate_id: str) -> Held | None:
        """Takes a free slot for the allocation, or None when every slot is taken."""
        while True:
            number = await self._next_number()
            if number is None:
                return None
            slot_id = self.slot_id(number)
            doc = {"_id": slot_id, "round_id": str(self.round_id), "scope": self.scope, "number": number,
                   "allocation_id": str(allocation_id), "candidate_id": candidate_id}
            if await self._store.insert(self.collection, doc):
                return Held(self.scope, number, slot_id)
            # taken meanwhile (a replica filling holes got there first): try another number

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
        ranges = -(-self.size // self.range_size)
        if self._lease_hint is None:
            self._lease_hint = await self._lease_frontier(ranges)
        k = self._lease_hint
        while k < ranges:
            lease = {"_id": self._lease_id(k), "round_id": str(self.round_id), "scope": self.scope, "range": k}
            if await self._store.insert(LEASES, lease):
                self._lease_hint = k + 1
                return k * self.range_size
            k += 1
        self._lease_hint = k
        return None

    def _lease_id(self, k: int) -> str:
        return f"{self.round_id}:{self.scope}:{k}"

    async def _lease_frontier(self, ranges: int) -> int:
        """Where leasing starts: ranges are leased mostly in order, so binary-search the first free one.

        A free range below the answer is not lost: leasing falls back to the hole scan at the end.
        """
        low, high = 0, ranges
        while low < high:
            mid = (low + high) // 2
            if await self._store.exists(LEASES, self._lease_id(mid)):
                low = mid + 1
            else:
                high = mid
        return low

    async def _find_holes(self) -> list[int]:
        """Free numbers. A read may be a little old (shared by every scope of the round), which can only
        show a hole that is no longer free; once the holes it showed are all tried, the next read must
        be newer than the attempts, so "no hole" is always current."""
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

    async def held(self, allocation_id: uuid.UUID) -> dict[str, Held]:
        """Slots an earlier run of this allocation already holds, the lowest per scope.

        Extra slots (left by two runs at once) are not freed here: a twin still running may be
        about to record one of them. They are freed only against the allocation that won.
        """
        out: dict[str, Held] = {}
        for collection in (QUOTA_SLOTS, BUDGET_SLOTS):
            docs = await self._store.by_field(collection, "allocation_id", str(allocation_id))
            for doc in sorted(docs, key=lambda d: int(d["number"])):
                out.setdefault(doc["scope"], Held(doc["scope"], int(doc["number"]), doc["_id"]))
        return out

    async def release(self, slots: list[Held]) -> None:
        for slot in slots:
            await self._store.delete(BUDGET_SLOTS if slot.scope == BUDGET else QUOTA_SLOTS, slot.slot_id)
