"""The contact projection on the Mongo-compatible server: revisions, crashes between writes, transfers."""

from __future__ import annotations

from typing import Any

import pytest
from puskesos_notification.contacts import MongoContactBook
from puskesos_notification.domain import ContactKeys
from pymongo import AsyncMongoClient

pytestmark = pytest.mark.integration
KEYS = ContactKeys(b"c" * 32)
A, B = KEYS.kk("3573010502200001"), KEYS.kk("3573010502200002")
SITI, BUDI = KEYS.nik("3573015705850002"), KEYS.nik("3573010101800003")


async def test_household_revisions_crashes_and_transfers(mongo_client: AsyncMongoClient[dict[str, Any]],
                                                        db_prefix: str) -> None:
    book = MongoContactBook(mongo_client[f"{db_prefix}_contacts"])
    await book.create_indexes()
    assert await book.apply_household(A, "+6281200000001", 2, [SITI, BUDI])
    assert not await book.apply_household(A, "+6281299999999", 1, [SITI, BUDI])  # older: ignored
    household = await book.household(A)
    assert household is not None and (household.phone, household.revision) == ("+6281200000001", 2)

    # a crash after the household write and before the members: the redelivery completes it
    await book.apply_household(B, None, 1, [])
    assert await book.apply_household(B, None, 1, [KEYS.nik("3573010101800004")])
    assert await book.household_of_member(KEYS.nik("3573010101800004")) == B

    # Siti moves from A to B: B's transfer_in wins, A's later (stale-for-her) update does not take her back
    assert await book.apply_household(B, None, 2, [SITI], moved_in=SITI)
    assert await book.household_of_member(SITI) == B
    assert await book.apply_household(A, "+6281200000001", 3, [SITI, BUDI])
    assert await book.household_of_member(SITI) == B
    # A's transfer_out of Siti after she joined B leaves her in B; Budi stays in A
    assert await book.apply_household(A, "+6281200000001", 4, [BUDI], moved_out=SITI)
    assert await book.household_of_member(SITI) == B and await book.household_of_member(BUDI) == A
