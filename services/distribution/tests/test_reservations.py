"""Slot reservations against the real Mongo-compatible server, with several "replicas" racing.

Each replica here has its own client and its own pools, as separate processes would.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from puskesos_distribution.reservations import BUDGET, Reservations, village_scope
from puskesos_distribution.store import BUDGET_SLOTS, LEASES, QUOTA_SLOTS, MongoStore
from pymongo import AsyncMongoClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def replicas(mongo_url: str, db_name: str, n: int) -> list[tuple[AsyncMongoClient[Any], Reservations]]:
    out = []
    for _ in range(n):
        client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url, uuidRepresentation="standard")
        store = MongoStore(client[db_name])
        await store.ensure_indexes()
        out.append((client, Reservations(store)))
    return out


@pytest.mark.parametrize(("scope", "size"), [(BUDGET, 700), (village_scope("35.09.01.2001"), 150)],
                         ids=["leased-ranges", "direct-probing"])
async def test_racing_replicas_fill_a_scope_exactly_once(mongo_url: str, db_prefix: str, scope: str,
                                                         size: int) -> None:
    round_id = uuid.uuid4()
    group = await replicas(mongo_url, f"{db_prefix}_distribution", 4)
    takers = size // 4 + 40

    async def replica(reservations: Reservations) -> list[int | None]:
        async def one() -> int | None:
            held = await reservations.pool(round_id, scope, size).take(uuid.uuid4(), "c")
            return None if held is None else held.number
        return list(await asyncio.gather(*(one() for _ in range(takers))))

    try:
        results = await asyncio.gather(*(replica(r) for _, r in group))
        numbers = [n for result in results for n in result if n is not None]
        assert sorted(numbers) == list(range(size))  # every slot once, no slot twice, none beyond the limit
        assert sum(n is None for result in results for n in result) == 4 * takers - size
        stored = group[0][0][f"{db_prefix}_distribution"][BUDGET_SLOTS if scope == BUDGET else QUOTA_SLOTS]
        assert await stored.count_documents({"round_id": str(round_id)}) == size
    finally:
        for client, _ in group:
            await client.close()


async def test_a_dead_replicas_leased_range_is_not_lost(mongo_url: str, db_prefix: str) -> None:
    round_id, size = uuid.uuid4(), 600
    (c1, dead), (c2, alive) = await replicas(mongo_url, f"{db_prefix}_distribution", 2)
    try:
        first = await dead.pool(round_id, BUDGET, size).take(uuid.uuid4(), "c")
        assert first is not None  # it leased a range, used one number of it, and then "died"
        pool = alive.pool(round_id, BUDGET, size)
        taken = await asyncio.gather(*(pool.take(uuid.uuid4(), "c") for _ in range(size)))
        numbers = sorted(h.number for h in taken if h is not None)
        assert sorted([first.number, *numbers]) == list(range(size))
        assert sum(h is None for h in taken) == 1  # exhausted only once no hole is left
        counter = await c2[f"{db_prefix}_distribution"][LEASES].find_one({"_id": f"{round_id}:{BUDGET}"})
        assert counter is not None  # every range leased once, plus the one lease past the end that said so
        assert counter["leased"] == size // pool.range_size + 1
    finally:
        await c1.close()
        await c2.close()


async def test_an_allocation_never_holds_two_slots_of_a_scope(mongo_url: str, db_prefix: str) -> None:
    round_id, allocation, size = uuid.uuid4(), uuid.uuid4(), 10
    (c1, first), (c2, second) = await replicas(mongo_url, f"{db_prefix}_distribution", 2)
    village = village_scope("35.73.01.1001")
    try:
        # the same work item running twice at once (on two replicas) ends with one slot per scope
        budget = await asyncio.gather(first.pool(round_id, BUDGET, size).take(allocation, "c"),
                                      second.pool(round_id, BUDGET, size).take(allocation, "c"))
        quota = await second.pool(round_id, village, 3).take(allocation, "c")
        assert budget[0] == budget[1] and budget[0] is not None
        assert await first.held(allocation, [BUDGET, village]) == {BUDGET: budget[0], village: quota}
        assert await first.held(uuid.uuid4(), [BUDGET, village]) == {}
        db = c1[f"{db_prefix}_distribution"]
        assert await db[BUDGET_SLOTS].count_documents({"allocation_id": str(allocation)}) == 1
    finally:
        await c1.close()
        await c2.close()
