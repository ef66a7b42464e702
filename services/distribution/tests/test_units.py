"""Pure parts: eligibility re-check, events, row validation, reconciliation, batching, work items, files."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import pytest
from puskesos_distribution.batching import Coalescer
from puskesos_distribution.csv_import import InvalidFile, digest_and_count, read_rows
from puskesos_distribution.domain import (
    AssessmentView,
    HouseholdView,
    RoundStatus,
    RoundView,
    allocated_event,
    check_candidate,
    stored_time,
    village_of,
)
from puskesos_distribution.gateway import LedgerEntry
from puskesos_distribution.reconciliation import reconcile, round_totals
from puskesos_distribution.rows import RowError, validate_row
from puskesos_distribution.sample_data import BAD_KINDS, recipient_rows, write_csv
from puskesos_distribution.status_view import render_close, status_table
from puskesos_distribution.workitems import Candidate, allocate_item, decode_work_item
from puskesos_shared.contracts.distribution import (
    AllocationBasis,
    CandidateSource,
    RejectionReason,
    VillagesWithoutQuota,
)
from puskesos_shared.contracts.envelope import Actor
from puskesos_shared.contracts.registry import InvalidMessage
from rich.console import Console

ROUND, BATCH = uuid.uuid4(), uuid.uuid4()
NOW = dt.datetime(2022, 11, 20, 8, 0, 0, 123456, tzinfo=dt.UTC)
ROW = next(recipient_rows(1, seed=1, village_codes=("35.73.01.1001",)))


def candidate(source: CandidateSource = CandidateSource.IMPORT) -> Candidate:
    result = validate_row(2, ROW, round_id=ROUND, batch_id=BATCH, rule_version="blt-eligibility@1")
    assert isinstance(result, Candidate)
    if source is CandidateSource.ASSESSMENT:
        basis = AllocationBasis(source=source, assessment_event_id=uuid.uuid4(), rule_set_version="blt-eligibility@1")
        return result.model_copy(update={"basis": basis, "candidate_id": "assess:x"})
    return result


def round_view(status: RoundStatus = RoundStatus.OPEN, quotas: dict[str, int] | None = None,
               without_quota: VillagesWithoutQuota | None = None) -> RoundView:
    """A round of rule @1 (villages without a quota excluded), or of rule @2 when ``without_quota`` is chosen."""
    return RoundView(round_id=ROUND, status=status, amount_per_family=300_000, budget_slots=10, quotas=quotas or {},
                     rule_version="blt-eligibility@1" if without_quota is None else "blt-eligibility@2", program="BLT",
                     without_quota=without_quota or (VillagesWithoutQuota.EXCLUDED if quotas
                                                     else VillagesWithoutQuota.UNLIMITED))


def assessment(eligible: bool | None) -> AssessmentView:
    return AssessmentView(event_id=uuid.uuid4(), kk_number=ROW["kk_number"],
                          eligibility={} if eligible is None else {"BLT": eligible}, rule_set_version="assessment@1",
                          occurred_at=NOW)


HOUSEHOLD = HouseholdView(kk_number=ROW["kk_number"], revision=2, village_code="35.73.02.1001", head_nik="x",
                          head_name="y")


def item(source: CandidateSource = CandidateSource.IMPORT) -> Any:
    return allocate_item(candidate(source), actor=Actor.system("test"), causation_id=None, now=NOW)


@pytest.mark.parametrize(("source", "round_", "household", "latest", "reason"), [
    (CandidateSource.IMPORT, round_view(RoundStatus.CLOSING), None, None, RejectionReason.ROUND_CLOSED),
    (CandidateSource.IMPORT, round_view(), None, assessment(False), RejectionReason.NOT_ELIGIBLE),
    (CandidateSource.IMPORT, round_view(), None, assessment(None), None),
    (CandidateSource.IMPORT, round_view(), None, None, None),
    (CandidateSource.IMPORT, round_view(quotas={"35.09.01.2001": 3}), None, None, RejectionReason.NOT_ELIGIBLE),
    (CandidateSource.IMPORT, round_view(quotas={"35.09.01.2001": 3}, without_quota=VillagesWithoutQuota.EXCLUDED),
     None, None, RejectionReason.NO_VILLAGE_QUOTA),
    (CandidateSource.IMPORT, round_view(quotas={"35.09.01.2001": 3}, without_quota=VillagesWithoutQuota.UNLIMITED),
     None, None, None),
    (CandidateSource.ASSESSMENT, round_view(), HOUSEHOLD, assessment(None), RejectionReason.NOT_ELIGIBLE),
    (CandidateSource.ASSESSMENT, round_view(), None, assessment(True), RejectionReason.NOT_ELIGIBLE),
    (CandidateSource.ASSESSMENT, round_view(quotas={"35.73.02.1001": 1}), HOUSEHOLD, assessment(True), None),
])
def test_the_eligibility_recheck(source: CandidateSource, round_: RoundView, household: HouseholdView | None,
                                 latest: AssessmentView | None, reason: RejectionReason | None) -> None:
    rejection = check_candidate(item(source), round_, household, latest)
    assert (rejection.reason if rejection else None) == reason


def test_an_assessed_family_is_allocated_where_the_registry_says_it_lives_now() -> None:
    assert village_of(item(CandidateSource.ASSESSMENT), HOUSEHOLD) == "35.73.02.1001"
    assert village_of(item(CandidateSource.IMPORT), HOUSEHOLD) == ROW["village_code"]


def test_events_rebuilt_from_a_stored_decision_are_byte_identical() -> None:
    decided = stored_time(NOW)
    assert decided.microsecond == 123000
    stored = decided.replace(tzinfo=None)  # as some clients hand a stored time back
    first = allocated_event(item(), ROW["village_code"], 300_000, decided).model_dump_json()
    again = allocated_event(item(), ROW["village_code"], 300_000, stored_time(stored)).model_dump_json()
    assert first == again


@pytest.mark.parametrize(("kind", "column"), BAD_KINDS)
def test_each_kind_of_bad_row_names_its_column(kind: str, column: str) -> None:
    rows = list(recipient_rows(6 * len(BAD_KINDS), seed=3, bad_every=6))
    bad = rows[5::6][[k for k, _ in BAD_KINDS].index(kind)]
    result = validate_row(7, bad, round_id=ROUND, batch_id=BATCH, rule_version="r@1")
    if kind == "duplicate":  # a duplicate is a valid row; the service finds the clash across rows
        assert isinstance(result, Candidate)
        return
    assert isinstance(result, RowError) and (result.row, result.column) == (7, column)
    for value in bad.values():
        assert not value or value not in result.reason


def test_rows_are_normalised() -> None:
    row = {**ROW, "village_code": ROW["village_code"].replace(".", ""), "head_name": "  Siti   Aminah ",
           "account_number": "", "collection_point": "pos-3573010"}
    result = validate_row(2, row, round_id=ROUND, batch_id=BATCH, rule_version="r@1")
    assert isinstance(result, Candidate)
    assert (result.village_code, result.recipient_name, result.payout.reference) == (
        ROW["village_code"], "Siti Aminah", "POS-3573010")
    both = validate_row(2, {**ROW, "account_number": "1234567", "collection_point": "POS-1"}, round_id=ROUND,
                        batch_id=BATCH, rule_version="r@1")
    assert isinstance(both, RowError) and "not both" in both.reason


def test_sample_lists_are_valid_and_distinct() -> None:
    rows = list(recipient_rows(3000, seed=9))
    results = [validate_row(i, r, round_id=ROUND, batch_id=BATCH, rule_version="r@1") for i, r in enumerate(rows, 2)]
    assert all(isinstance(r, Candidate) for r in results)
    assert len({r["kk_number"] for r in rows}) == 3000
    assert rows == list(recipient_rows(3000, seed=9))  # deterministic


def ledger(key: str, amount: int = 300_000, payment: str = "P1", kk: str = "k1") -> LedgerEntry:
    return LedgerEntry(idempotency_key=key, payment_id=payment, amount=amount, round_id=ROUND, kk_number=kk,
                       executed_at=NOW)


def test_reconciliation_matches_only_when_every_payment_is_accounted_for() -> None:
    allocations = [{"_id": "a1", "amount": 300_000}, {"_id": "a2", "amount": 300_000}]
    outcomes = [{"_id": "a1", "outcome": "disbursed", "amount": 300_000, "payment_id": "P1"},
                {"_id": "a2", "outcome": "failed", "amount": 300_000}]
    assert reconcile(allocations, outcomes, [ledger("a1")]).matched
    cases = {
        "no payment at the gateway": [],
        "yet paid at the gateway": [ledger("a1"), ledger("a2", payment="P2", kk="k2")],
        "no disbursement record": [ledger("a1"), ledger("zz", payment="P3", kk="k3")],
        "the gateway paid 1": [ledger("a1", amount=1)],
        "paid 2 times": [ledger("a1"), ledger("a3", payment="P4")],
    }
    for why, entries in cases.items():
        result = reconcile(allocations, outcomes, entries)
        assert not result.matched and any(why in m for m in result.mismatches), why
    undecided = reconcile(allocations, outcomes[:1], [ledger("a1")])
    assert undecided.mismatches == ("a2: allocated, no disbursement outcome",)


def test_round_totals() -> None:
    totals = round_totals(1_000_000, [{"amount": 300_000}] * 3, [{"reason": "budget_exhausted"}] * 2,
                          [{"outcome": "disbursed", "amount": 300_000}] * 2 + [{"outcome": "failed", "amount": 1}])
    assert (totals.allocated_amount, totals.budget_remaining, totals.disbursed_count, totals.failed_count) == (
        900_000, 100_000, 2, 1)
    assert totals.rejected_by_reason == {RejectionReason.BUDGET_EXHAUSTED: 2}


async def test_the_coalescer_gathers_concurrent_calls_and_keeps_errors_apart() -> None:
    batches: list[list[int]] = []

    async def bulk(items: list[int]) -> list[int | BaseException]:
        batches.append(items)
        return [ValueError(f"bad {i}") if i == 3 else i * 10 for i in items]

    coalescer = Coalescer[int, int](bulk, max_batch=4, linger=0.01)
    results = await asyncio.gather(*(coalescer(i) for i in range(6)), return_exceptions=True)
    assert results[:3] == [0, 10, 20] and isinstance(results[3], ValueError) and results[4:] == [40, 50]
    assert batches == [[0, 1, 2, 3], [4, 5]]

    async def broken(items: list[int]) -> list[int | BaseException]:
        raise ConnectionError("database down")

    failing = Coalescer[int, int](broken)
    outcome = await asyncio.gather(failing(1), failing(2), return_exceptions=True)
    assert all(isinstance(o, ConnectionError) for o in outcome)


@pytest.mark.parametrize(("body", "reason"), [
    (b"\xff not json", "malformed JSON"),
    (b"[1]", "a work item is a JSON object"),
    (b'{"event_type": "PayEveryone", "schema_version": 1}', "unknown work item type"),
    (b'{"event_type": "AllocateCandidate", "schema_version": 2}', "unknown schema_version 2"),
    (b'{"event_type": "AllocateCandidate", "schema_version": 1, "data": {}}', "does not match its schema"),
])
def test_bad_work_items_are_refused_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(InvalidMessage, match=reason):
        decode_work_item(body)


def test_work_items_round_trip() -> None:
    original = item()
    assert decode_work_item(original.model_dump_json().encode()) == original


def test_csv_files_that_cannot_be_imported_say_why(tmp_path: Path) -> None:
    no_payout = tmp_path / "a.csv"
    no_payout.write_text("kk_number,head_nik,head_name,village_code\n1,2,3,4\n")
    with pytest.raises(InvalidFile, match="account_number or collection_point"):
        list(read_rows(no_payout))
    latin = tmp_path / "b.csv"
    latin.write_bytes("kk_number\nJos\xe9\n".encode("latin-1"))
    with pytest.raises(InvalidFile, match="not UTF-8"):
        digest_and_count(latin)
    ragged = write_csv(tmp_path / "c.csv", 3, seed=1)
    ragged.write_text(ragged.read_text() + "1,2\n")
    rows = list(read_rows(ragged))
    assert digest_and_count(ragged)[1] == 4 and rows[-1][0] == 5 and "2 fields" in str(rows[-1][2])


def test_the_operator_views_render() -> None:
    status = {"key": "r", "status": "open", "candidates": 10, "config": {"program": "BLT", "funding_source": "DID",
              "budget_cap": 3_000_000, "amount_per_family": 300_000},
              "live": {"allocated": 4, "rejected_budget_exhausted": 1, "disbursed": 3, "disbursed_amount": 900_000},
              "pending": {"allocate": 5, "disburse": 1},
              "consumers": {"allocate": {"pending": 5, "ack_pending": 0, "redelivered": 0}},
              "replicas": 2, "instances": ["a1b2c3", "d4e5f6"]}
    console = Console(record=True, width=140)
    console.print(status_table(status, (2.0, 1.0)))
    render_close({"round_id": "r", "closed_by": "op", "totals": {
        "allocated_count": 4, "allocated_amount": 1_200_000, "rejected_count": 1,
        "rejected_by_reason": {"budget_exhausted": 1}, "disbursed_count": 4, "disbursed_amount": 1_200_000,
        "failed_count": 0, "budget_cap": 3_000_000, "budget_remaining": 1_800_000},
        "reconciliation": {"gateway_executed_count": 4, "gateway_executed_amount": 1_200_000, "matched": False,
                           "mismatches": ["a1: why"]}}, console)
    text = console.export_text()
    assert "replicas running" in text and "2 (a1b2c3, d4e5f6)" in text
    assert "budget_exhausted 1" in text and "ETA" in text and "Rp900.000" in text and "a1: why" in text
