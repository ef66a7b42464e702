"""A round end to end in-process (real NATS and the Mongo server, the real lifespan, a fake gateway)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections import Counter
from typing import Any

import pytest
from puskesos_distribution.app import create_app
from puskesos_distribution.domain import allocation_id_for, round_id_for
from puskesos_distribution.gateway import InMemoryGateway
from puskesos_distribution.sample_data import recipient_rows
from puskesos_distribution.workqueue import CONSUMERS, work_stream
from puskesos_shared.testing.app import running_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def chunk(rows: list[dict[str, str]], first_line: int = 2) -> list[dict[str, Any]]:
    return [{"row": first_line + i, "fields": r} for i, r in enumerate(rows)]


async def settle(helpers: Any, round_key: str, *, allocated_plus_rejected: int, outcomes: int) -> None:
    """Waits until the round's decisions and payout outcomes are recorded and its queue is empty."""
    async def done() -> bool:
        status = await helpers.ok("round_status", {"round": round_key, "exact": True})
        exact, pending = status["exact"], status["pending"]
        return (exact["allocated"] + exact["rejected"] == allocated_plus_rejected
                and exact["disbursement_outcomes"] == outcomes and not any(pending.values()))

    await helpers.wait_until(done, timeout=90, what="the round to settle")


async def test_round_pays_within_budget_and_reconciles(settings_for: Any, helpers: Any, round_body: Any) -> None:
    gateway = InMemoryGateway()
    key = "jember-dbhcht-2022-11"
    round_id = round_id_for(key)
    rows = list(recipient_rows(40, seed=7, bad_every=10))  # rows 10, 20, 30, 40 are bad
    good = [r for i, r in enumerate(rows, 1) if i % 10]
    busy, closed = allocation_id_for(round_id, good[0]["kk_number"]), allocation_id_for(round_id, good[1]["kk_number"])
    gateway.unavailable[str(busy)] = 2  # answers "unavailable" twice, then pays
    gateway.declined.add(str(closed))  # the account is closed: a final failure
    async with running_app(create_app(settings_for(), gateway=gateway)):
        opened = await helpers.ok("open_round", round_body(key, budget_cap=300_000 * 30 + 299_999))
        assert opened == {"round_id": str(round_id), "key": key, "created": True, "budget_slots": 30}
        again = await helpers.ok("open_round", round_body(key, budget_cap=300_000 * 30 + 299_999))
        assert again["created"] is False

        # the first 33 lines hold 30 good rows, exactly the budget; the 6 good rows after them find it spent
        batch = str(uuid.uuid4())
        result = await helpers.ok("import_rows", {"round": key, "batch_id": batch, "rows": chunk(rows[:33])})
        assert result["accepted"] == 30
        await settle(helpers, key, allocated_plus_rejected=30, outcomes=30)
        later = await helpers.ok("import_rows", {"round": key, "batch_id": batch,
                                                 "rows": chunk(rows[33:], first_line=35)})
        assert later["accepted"] == 6
        rejected = result["rejected"] + later["rejected"]
        assert [(r["row"], r["column"]) for r in rejected] == [
            (11, "kk_number"), (21, "head_nik"), (31, "village_code"), (41, "account_number")]
        await helpers.ok("finish_import", {"round": key, "batch_id": batch, "total_rows": 40, "rejected_rows": 4})
        await settle(helpers, key, allocated_plus_rejected=36, outcomes=30)
        closing = await helpers.ok("close_round", {"round": key})

    totals, rec = closing["totals"], closing["reconciliation"]
    assert totals["allocated_count"] == 30 and totals["allocated_amount"] == 9_000_000
    assert totals["rejected_by_reason"] == {"budget_exhausted": 6}
    assert (totals["disbursed_count"], totals["failed_count"]) == (29, 1)
    assert totals["budget_remaining"] == 299_999
    assert rec == {"gateway_executed_count": 29, "gateway_executed_amount": 29 * 300_000, "matched": True,
                   "mismatches": []}
    assert len(gateway.payments) == 29 and str(closed) not in gateway.payments
    assert len({p.kk_number for p in gateway.payments.values()}) == 29

    events = Counter(e["event_type"] for e in await helpers.events())
    assert events == {"AidRoundOpened": 1, "AidAllocated": 30, "AidAllocationRejected": 6, "AidDisbursed": 29,
                      "DisbursementFailed": 3, "AidRoundClosed": 1}
    failures = [e["data"] for e in await helpers.events("DisbursementFailed")]
    assert sorted((f["attempts"], f["final"]) for f in failures) == [(1, False), (1, True), (2, False)]
    disbursed = {e["data"]["allocation_id"]: e["data"] for e in await helpers.events("AidDisbursed")}
    assert disbursed[str(busy)]["attempts"] == 3


async def test_village_quotas_hold_and_duplicates_are_rejected(settings_for: Any, helpers: Any,
                                                               round_body: Any) -> None:
    gateway = InMemoryGateway()
    small, large = "35.09.01.2001", "35.73.01.1001"
    key = "malang-jember-did-2022"
    rows = list(recipient_rows(12, seed=3, village_codes=(small, large)))
    async with running_app(create_app(settings_for(), gateway=gateway)):
        quotas = [{"village_code": small, "max_families": 2}, {"village_code": large, "max_families": 100}]
        await helpers.ok("open_round", round_body(key, funding_source="DID", village_quotas=quotas))
        first = await helpers.ok("import_rows", {"round": key, "batch_id": str(uuid.uuid4()), "rows": chunk(rows)})
        assert first["accepted"] == 12
        # the same list sent again: nothing new; a second list naming a family again: a duplicate KK
        batch = str(uuid.uuid4())
        resend = [{"row": 2, "fields": rows[0]}, {"row": 3, "fields": rows[0]}]
        twice = await helpers.ok("import_rows", {"round": key, "batch_id": batch, "rows": resend})
        assert twice["accepted"] == 1 and twice["rejected"] == [
            {"row": 3, "column": "kk_number", "code": "duplicate_kk",
             "reason": "duplicate KK in this list (first on row 2)"}]
        again = await helpers.ok("import_rows", {"round": key, "batch_id": batch, "rows": resend[:1]})
        assert (again["accepted"], again["resent"]) == (0, 1)
        await settle(helpers, key, allocated_plus_rejected=13, outcomes=8)
        closing = await helpers.ok("close_round", {"round": key})

    totals = closing["totals"]
    assert totals["allocated_count"] == 2 + 6
    assert totals["rejected_by_reason"] == {"quota_exhausted": 4, "duplicate_kk": 1}
    allocated = [e["data"] for e in await helpers.events("AidAllocated")]
    assert Counter(a["village_code"] for a in allocated) == {small: 2, large: 6}
    assert closing["reconciliation"]["matched"] is True
    rejected = [e["data"] for e in await helpers.events("AidAllocationRejected")]
    duplicate = next(r for r in rejected if r["reason"] == "duplicate_kk")
    assert duplicate["kk_number"] == rows[0]["kk_number"] and duplicate["basis"]["import_row"] == 2
    assert duplicate["basis"]["import_batch_id"] == batch


async def test_closing_with_force_rejects_what_is_still_queued(settings_for: Any, helpers: Any, round_body: Any,
                                                                topology: Any) -> None:
    gateway = InMemoryGateway()
    key = "closing-early"
    rows = list(recipient_rows(6, seed=13))
    stream = work_stream(topology)
    async with running_app(create_app(settings_for(), gateway=gateway)):
        await helpers.ok("open_round", round_body(key))
        js = helpers.nc.jetstream()
        until = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
        await js.pause_consumer(stream, CONSUMERS["allocate"], until)  # the candidates stay queued
        await helpers.ok("import_rows", {"round": key, "batch_id": str(uuid.uuid4()), "rows": chunk(rows)})
        refused = await helpers.command("close_round", {"round": key})
        assert refused.error["code"] == "work_pending" and "6 candidates" in refused.error["message"]
        closing = asyncio.create_task(helpers.ok("close_round", {"round": key, "force": True}))

        async def marked_closing() -> bool:
            return (await helpers.ok("round_status", {"round": key}))["status"] == "closing"

        await helpers.wait_until(marked_closing, timeout=30, what="the round to be closing")
        late = await helpers.command("import_rows", {"round": key, "batch_id": str(uuid.uuid4()),
                                                     "rows": chunk(rows[:1])})
        await js.resume_consumer(stream, CONSUMERS["allocate"])
        closed = await closing

    assert late.error["code"] == "round_not_open"
    assert closed["totals"]["allocated_count"] == 0 and closed["totals"]["rejected_by_reason"] == {"round_closed": 6}
    assert closed["reconciliation"]["matched"] is True and gateway.payments == {}
