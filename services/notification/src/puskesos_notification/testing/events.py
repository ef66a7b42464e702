"""Event factories for tests and benchmarks: valid v1 events with deterministic ids.

Built from the contract examples and validated again (``model_validate``), so a factory can
never produce an event the contracts would reject.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, TypeVar

from nats.js import JetStreamContext
from puskesos_shared.contracts import (
    AidAllocated,
    AidDisbursed,
    AidRoundOpened,
    CaseClosed,
    CaseEscalated,
    CaseOpened,
    ComplaintFiled,
    DisbursementFailed,
    Event,
    HouseholdRegistered,
    HouseholdUpdated,
    ReferralIssued,
    subject_for,
)
from puskesos_shared.contracts.examples import example
from puskesos_shared.messaging import encode_event, event_headers
from puskesos_shared.topology import Topology

VILLAGE = "35.73.01.1001"  # Balearjosari, Blimbing, Kota Malang
E = TypeVar("E", bound=Event)


def nik(n: int) -> str:
    """A valid NIK (Blimbing, born 1 January 1980), serial ``n`` (1..9999)."""
    return f"357301010180{n:04d}"


def kk(n: int) -> str:
    """A valid KK number (Blimbing, issued 5 February 2020), serial ``n`` (1..9999)."""
    return f"357301050220{n:04d}"


def phone(n: int) -> str:
    return f"+62812{n:08d}"


def event_uuid(kind: str, n: int) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"puskesos-notification-test/{kind}/{n}")


def _build(kind: str, n: int, model: type[E], data: dict[str, Any], **envelope: Any) -> E:
    base = example(model.__name__).model_dump(mode="json")
    raw = {**base, "event_id": str(event_uuid(kind, n)), **envelope, "data": {**base["data"], **data}}
    return model.model_validate(raw)


def household_registered(n: int, *, phone_number: str | None = None, members: int = 2,
                         revision: int = 1) -> HouseholdRegistered:
    household = example("HouseholdRegistered").model_dump(mode="json")["data"]["household"]
    people = household["members"][:members]
    for i, person in enumerate(people):
        person["nik"] = nik(n * 10 + i) if n * 10 + i < 10_000 else nik(n)
    household.update(kk_number=kk(n), members=people, phone=phone_number)
    return _build("household", n * 100 + revision, HouseholdRegistered,
                  {"household": household, "revision": revision})


def household_updated(n: int, *, phone_number: str | None, revision: int = 2) -> HouseholdUpdated:
    registered = household_registered(n, phone_number=phone_number)
    household = registered.data.household.model_dump(mode="json")
    return _build("household", n * 100 + revision, HouseholdUpdated,
                  {"household": household, "revision": revision, "changed_fields": ["phone"], "change": "update"})


def complaint_filed(n: int, *, nik_of: str | None = None, kk_of: str | None = None,
                    contact_phone: str | None = None) -> ComplaintFiled:
    complainant = {"nik": nik_of, "kk_number": kk_of, "contact_phone": contact_phone}
    return _build("complaint", n, ComplaintFiled, {
        "complaint_id": str(event_uuid("complaint-id", n)), "case_number": f"3573011001/2026/{n:05d}",
        "complainant": complainant}, correlation_id=f"complaint:{n}")


def case_opened(n: int, complaint: ComplaintFiled) -> CaseOpened:
    c = complaint.data
    return _build("case-opened", n, CaseOpened, {
        "case_id": str(event_uuid("case-id", n)), "complaint_id": str(c.complaint_id), "case_number": c.case_number,
        "subject_nik": c.complainant.nik, "kk_number": c.complainant.kk_number})


def case_id(n: int) -> uuid.UUID:
    return event_uuid("case-id", n)


def referral_issued(n: int) -> ReferralIssued:
    return _build("referral", n, ReferralIssued, {"case_id": str(case_id(n)),
                                                  "referral_id": str(event_uuid("referral-id", n))})


def case_closed(n: int) -> CaseClosed:
    return _build("case-closed", n, CaseClosed, {"case_id": str(case_id(n))})


def case_escalated(n: int, *, to_level: str = "kecamatan") -> CaseEscalated:
    return _build("case-escalated", n, CaseEscalated, {"case_id": str(case_id(n)), "to_level": to_level})


def round_opened(n: int = 1) -> AidRoundOpened:
    return _build("round", n, AidRoundOpened, {"round_id": str(event_uuid("round-id", n))})


def aid_allocated(n: int, *, round_n: int = 1, payout: dict[str, str] | None = None) -> AidAllocated:
    data: dict[str, Any] = {"allocation_id": str(event_uuid("allocation-id", n)),
                            "round_id": str(event_uuid("round-id", round_n)), "kk_number": kk(n),
                            "head_nik": nik(n * 10) if n * 10 < 10_000 else nik(n)}
    if payout is not None:
        data["payout"] = payout
    return _build("allocated", n, AidAllocated, data)


def aid_disbursed(n: int, *, round_n: int = 1, amount: int = 300_000) -> AidDisbursed:
    return _build("disbursed", n, AidDisbursed, {
        "allocation_id": str(event_uuid("allocation-id", n)), "round_id": str(event_uuid("round-id", round_n)),
        "kk_number": kk(n), "amount": amount, "disbursement_id": str(event_uuid("disbursement-id", n)),
        "disbursed_at": dt.datetime(2026, 12, 1, 3, 5, tzinfo=dt.UTC).isoformat()})


def disbursement_failed(n: int, *, final: bool = True, round_n: int = 1) -> DisbursementFailed:
    return _build("disbursement-failed", n, DisbursementFailed, {
        "allocation_id": str(event_uuid("allocation-id", n)), "round_id": str(event_uuid("round-id", round_n)),
        "kk_number": kk(n), "final": final})


async def publish(js: JetStreamContext, topology: Topology, event: Event) -> None:
    """Publishes like a producing service does (``Nats-Msg-Id`` = event id), with plain nats-py."""
    await js.publish(subject_for(event, topology), encode_event(event), headers=event_headers(event))
