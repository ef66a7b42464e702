"""The Mongo adapter on the real Mongo-compatible server: projections, read model, referral numbers."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from puskesos_referral.domain.decisions import open_case
from puskesos_referral.store import MongoCaseStore
from puskesos_shared.contracts.intake import Household, Member, Relationship
from puskesos_shared.contracts.primitives import Sex
from puskesos_shared.mongo import Mongo
from puskesos_shared.topology import Topology
from referral_testkit import CHILD_NIK, KK, complaint_filed, household

pytestmark = pytest.mark.integration
OTHER_KK = "3509011508200002"
NOW = dt.datetime(2026, 11, 23, 2, tzinfo=dt.UTC)


@pytest_asyncio.fixture
async def store(mongo_url: str, db_prefix: str, topology: Topology) -> AsyncIterator[MongoCaseStore]:
    mongo = Mongo(mongo_url, f"{db_prefix}_store")
    s = MongoCaseStore(mongo.db, topology)
    await s.create_indexes()
    yield s
    await mongo.close()


async def add(store: MongoCaseStore, hh: Household, revision: int) -> bool:
    stored = await store.add_household_revision(kk_number=hh.kk_number, household_id=uuid.uuid4(), household=hh,
                                                revision=revision, event_id=uuid.uuid4())
    return stored


async def test_member_lookup_follows_the_latest_revision_after_a_transfer(store: MongoCaseStore) -> None:
    original = household()
    await add(store, original, 1)
    assert await store.kk_of_member(CHILD_NIK) == KK
    without_child = original.model_copy(update={"members": original.members[:2]})
    await add(store, without_child, 2)
    assert await store.kk_of_member(CHILD_NIK) is None  # moved out, not yet anywhere else
    grandparent = Member(nik="3509011201500005", name="Sutrisno", birth_date=dt.date(1950, 1, 12), sex=Sex.MALE,
                         relationship=Relationship.HEAD)
    child = original.members[2].model_copy(update={"relationship": Relationship.GRANDCHILD})
    new_home = original.model_copy(update={"kk_number": OTHER_KK, "members": (grandparent, child)})
    await add(store, new_home, 1)
    assert await store.kk_of_member(CHILD_NIK) == OTHER_KK
    assert not await add(store, original, 1)  # a late copy of revision 1 changes nothing
    found = await store.household(KK)
    assert found is not None and found[1] == 2


async def test_a_late_older_revision_does_not_replace_a_newer_one(store: MongoCaseStore) -> None:
    await add(store, household(income=1), 1)
    await add(store, household(income=3), 3)  # revision 2 is late
    await add(store, household(income=2), 2)
    found = await store.household(KK)
    assert found is not None and found[1] == 3 and found[0].socio_economic.monthly_income == 3


async def test_latest_probes_past_a_read_model_that_lags(store: MongoCaseStore) -> None:
    first = open_case(complaint_filed(), NOW).case
    await store.append(first, [])
    assert await store.latest(first.case_id) == first  # no read model yet: found from version 1
    await store.sync_case(first)
    later = [first.model_copy(update={"version": v}) for v in (2, 3, 4)]
    for case in later:
        await store.append(case, [])
    latest = await store.latest(first.case_id)
    assert latest is not None and latest.version == 4


async def test_read_model_rolls_forward_past_a_slower_writer(store: MongoCaseStore) -> None:
    first = open_case(complaint_filed(), NOW).case
    second = first.model_copy(update={"version": 2, "kk_number": None})
    assert await store.append(first, []) is not None
    assert await store.append(second, []) is not None
    assert await store.append(second, []) is None  # version 2 is taken
    await store.sync_case(second)  # the writer of version 2 finishes first
    await store.sync_case(first)  # a slow writer of version 1 finishes last: it must not win
    doc = await store.cases.find_one({"_id": str(first.case_id)})
    assert doc is not None and doc["version"] == 2


async def test_referral_numbers_are_per_village_and_year_and_kept_per_referral(store: MongoCaseStore) -> None:
    case_id, village = uuid.uuid4(), "35.09.01.2001"
    first, second = uuid.uuid4(), uuid.uuid4()
    assert await store.reserve_referral_number(first, case_id, village, 2026) == "RJK/3509012001/2026/00001"
    assert await store.reserve_referral_number(first, case_id, village, 2026) == "RJK/3509012001/2026/00001"
    assert await store.reserve_referral_number(second, case_id, village, 2026) == "RJK/3509012001/2026/00002"
    assert await store.reserve_referral_number(uuid.uuid4(), case_id, village, 2027) == "RJK/3509012001/2027/00001"
    assert await store.reserve_referral_number(uuid.uuid4(), case_id, "35.09.01.2002", 2026) == (
        "RJK/3509012002/2026/00001")
    assert await store.referral_owner(referral_id=None, number="RJK/3509012001/2026/00002") == (second, case_id)
