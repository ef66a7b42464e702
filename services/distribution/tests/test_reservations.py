"""Slot reservations against the real Mongo-compatible server, with several "replicas" racing.

Each replica here has its own client and its own pools, as separate processes would.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from puskesos_distribution.reservations import BUDGET, Reservations, village_scope
from puskesos_distribution.store import BUDGET_SLOTS, LEASES, MongoStore
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


async def test_racing_replicas_fill_the_budget_exactly_once(mongo_url: str, db_prefix: str) -> None:
    round_id, size = uuid.uuid4(), 150
    group = await replicas(mongo_url, f"{db_prefix}_distribution", 4)

    async def replica(reservations: Reservations, takers: int) -> list[int | None]:
        async def one() -> int | None:
            held = await reservations.pool(round_id, BUDGET, size).take(uuid.uuid4(), "c")
            return None if held is None else held.number
        return list(await asyncio.gather(*(one() for _ in range(takers))))

    try:
        results = await asyncio.gather(*(replica(r, 60) for _, r in group))
        numbers = [n for result in results for n in result if n is not None]
        assert sorted(numbers) == list(range(size))  # every slot once, no slot twice, none beyond the budget
        assert sum(n is None for result in results for n in result) == 4 * 60 - size
        stored = group[0][0][f"{db_prefix}_distribution"][BUDGET_SLOTS]
        assert await stored.count_documents({"round_id": str(round_id)}) == size
    finally:
        for client, _ in group:
            await client.close()


async def test_a_dead_replicas_leased_range_is_not_lost(mongo_url: str, db_prefix: str) -> None:
    round_id, size = uuid.uuid4(), 40
    (c1, dead), (c2, alive) = await replicas(mongo_url, f"{db_prefix}_distribution", 2)
    try:
        first = await dead.pool(round_id, village_scope("35.09.01.2001"), size).take(uuid.uuid4(), "c")
        assert first is not None  # it leased a range, used one number of it, and then "died"
        taken = [await alive.pool(round_id, village_scope("35.09.01.2001"), size).take(uuid.uuid4(), "c")
                 for _ in range(size)]
        numbers = sorted(h.number for h in taken if h is not None)
        assert sorted([first.number, *numbers]) == list(range(size))
        assert taken[-1] is None  # exhausted only once no hole is left
        assert await c2[f"{db_prefix}_distribution"][LEASES].count_documents({}) >= 2
    finally:
        await c1.close()
        await c2.close()


async def test_a_retried_allocation_finds_its_own_slots(mongo_url: str, db_prefix: str) -> None:
    round_id, allocation = uuid.uuid4(), uuid.uuid4()
    ((client, reservations),) = await replicas(mongo_url, f"{db_prefix}_distribution", 1)
    try:
        budget = await reservations.pool(round_id, BUDGET, 10).take(allocation, "c")
        quota = await reservations.pool(round_id, village_scope("35.73.01.1001"), 3).take(allocation, "c")
        held = await reservations.held(allocation)
        assert held == {BUDGET: budget, village_scope("35.73.01.1001"): quota}
        assert await reservations.held(uuid.uuid4()) == {}
    finally:
        await client.close()
