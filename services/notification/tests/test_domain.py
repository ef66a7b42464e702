"""Pure parts: keyed hashes, notification ids, outcome events, and who hears about what (routing)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field

import pytest
from puskesos_notification.contacts import ComplaintContact, HouseholdContact
from puskesos_notification.domain import (
    ContactKeys,
    Planned,
    Reach,
    build_notification,
    failed_event,
    notification_id,
    sent_event,
)
from puskesos_notification.messages import CaseInfo, RoundInfo
from puskesos_notification.routing import Router
from puskesos_notification.store import OfficerContact
from puskesos_notification.templates import render
from puskesos_notification.testing import events as ev
from puskesos_shared.contracts import NotificationFailed, NotificationSent
from puskesos_shared.contracts.notification import FailureReason, NotificationChannel, RecipientKind
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.ids import derived_event_id

KEYS = ContactKeys(b"k" * 32)
AT = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)


def test_keyed_hashes_are_stable_typed_and_depend_on_the_key() -> None:
    nik = ev.nik(10)
    assert KEYS.nik(nik) == KEYS.nik(nik) and KEYS.nik(nik).startswith("nik:")
    assert nik not in KEYS.nik(nik) and KEYS.kk(nik) != KEYS.nik(nik)
    assert ContactKeys(b"x" * 32).nik(nik) != KEYS.nik(nik)
    with pytest.raises(ValueError, match="32"):
        ContactKeys(b"short")


def test_notification_id_is_one_per_event_recipient_and_template() -> None:
    event_id = uuid.uuid4()
    assert notification_id(event_id, "nik:a", "case_closed") == notification_id(event_id, "nik:a", "case_closed")
    others = {notification_id(event_id, "nik:b", "case_closed"), notification_id(event_id, "nik:a", "x"),
              notification_id(uuid.uuid4(), "nik:a", "case_closed")}
    assert notification_id(event_id, "nik:a", "case_closed") not in others and len(others) == 3


def test_outcome_events_have_ids_derived_from_the_notification() -> None:
    source = ev.complaint_filed(1, contact_phone=ev.phone(1))
    planned = Planned(RecipientKind.RESIDENT, KEYS.phone(ev.phone(1)), "complaint_receipt", {},
                      Reach(phone=ev.phone(1)))
    from puskesos_notification import messages

    n = build_notification(source, planned, render("complaint_receipt", messages.complaint_receipt(source)))
    assert n.recipient.address_masked == "0812****0001" and n.phone == ev.phone(1)
    sent = sent_event(n, NotificationChannel.WHATSAPP, provider_message_id="m1", attempts=2, at=AT)
    again = sent_event(n, NotificationChannel.WHATSAPP, provider_message_id="m1", attempts=2,
                       at=AT + dt.timedelta(hours=1))
    assert isinstance(sent, NotificationSent) and sent.event_id == again.event_id
    assert sent.event_id == derived_event_id(n.notification_id, "notification-sent")
    assert (sent.causation_id, sent.correlation_id) == (str(source.event_id), source.correlation_id)
    failed = failed_event(n, NotificationChannel.WHATSAPP, reason=FailureReason.OPTED_OUT, detail="x" * 900,
                          attempts=0, at=AT)
    assert isinstance(failed, NotificationFailed) and len(failed.data.detail) == 500
    assert failed.event_id != sent.event_id


@dataclass
class FakeBook:
    households: dict[str, HouseholdContact] = field(default_factory=dict)
    members: dict[str, str] = field(default_factory=dict)
    complaints: dict[str, ComplaintContact] = field(default_factory=dict)
    cases: dict[str, CaseInfo] = field(default_factory=dict)
    rounds: dict[str, RoundInfo] = field(default_factory=dict)

    async def household(self, kk_hash: str) -> HouseholdContact | None:
        return self.households.get(kk_hash)

    async def household_of_member(self, nik_hash: str) -> str | None:
        return self.members.get(nik_hash)

    async def complaint(self, complaint_id: str) -> ComplaintContact | None:
        return self.complaints.get(complaint_id)

    async def case(self, case_id: str) -> CaseInfo | None:
        return self.cases.get(case_id)

    async def round(self, round_id: str) -> RoundInfo | None:
        return self.rounds.get(round_id)

    async def allocation_village(self, allocation_id: str) -> str | None:
        return None


@dataclass
class FakeDirectory:
    officers: list[OfficerContact] = field(default_factory=list)

    async def officers_covering(self, village_code: str, roles: tuple[OfficerRole, ...]) -> list[OfficerContact]:
        return [o for o in self.officers if o.role in roles and any(village_code.startswith(c) for c in o.scope)]

    async def is_opted_out(self, phone_hash: str) -> bool:
        return False


async def test_complaint_receipt_goes_to_the_contact_phone_else_the_household() -> None:
    book = FakeBook()
    router = Router(book, FakeDirectory(), KEYS)
    anonymous = (await router.plan(ev.complaint_filed(1, contact_phone="+6281200000001")))[0]
    assert anonymous.reach == Reach(phone="+6281200000001")
    assert anonymous.recipient_id == KEYS.phone("+6281200000001")

    resident = ev.complaint_filed(2, nik_of=ev.nik(20))
    planned = (await router.plan(resident))[0]
    assert planned.recipient_id == KEYS.nik(ev.nik(20)) and planned.reach.unknown  # household not known yet
    book.members[KEYS.nik(ev.nik(20))] = KEYS.kk(ev.kk(2))
    book.households[KEYS.kk(ev.kk(2))] = HouseholdContact(KEYS.kk(ev.kk(2)), None, 1)
    planned = (await router.plan(resident))[0]
    assert planned.reach == Reach(detail="the household has no mobile phone number")  # known: final
    book.households[KEYS.kk(ev.kk(2))] = HouseholdContact(KEYS.kk(ev.kk(2)), "+6281200000002", 2)
    planned = (await router.plan(resident))[0]
    assert planned.reach.phone == "+6281200000002" and planned.recipient_id == KEYS.nik(ev.nik(20))


async def test_case_events_reach_the_complainant_through_the_case() -> None:
    book = FakeBook()
    router = Router(book, FakeDirectory(), KEYS)
    referral = ev.referral_issued(3)
    first = (await router.plan(referral))[0]
    assert first.reach.unknown and first.recipient_id == f"case:{ev.case_id(3)}"
    complaint = ev.complaint_filed(3, contact_phone=ev.phone(3))
    book.cases[str(ev.case_id(3))] = CaseInfo(case_id=str(ev.case_id(3)), case_number="3573011001/2026/00003",
                                              complaint_id=str(complaint.data.complaint_id))
    book.complaints[str(complaint.data.complaint_id)] = ComplaintContact(
        str(complaint.data.complaint_id), ev.phone(3), None, None,
        complaint.data.case_number, complaint.data.village_code)
    later = (await router.plan(referral))[0]
    assert later.reach.phone == ev.phone(3) and later.recipient_id == first.recipient_id  # same notification
    assert "nomor kasus 3573011001/2026/00003" in render(later.template_id, later.values).text
    closed = (await router.plan(ev.case_closed(3)))[0]
    assert closed.template_id == "case_closed" and closed.reach.phone == ev.phone(3)


async def test_officers_hear_of_final_failures_and_escalations_by_role_and_scope() -> None:
    directory = FakeDirectory([
        OfficerContact("tksk-blimbing", "+6281300000001", OfficerRole.COORDINATOR, ("35.73.01",)),
        OfficerContact("dinsos-op", "+6281300000002", OfficerRole.OPERATOR, ("35.73",)),
        OfficerContact("fo-balearjosari", "+6281300000003", OfficerRole.FRONT_OFFICE, ("35.73.01.1001",)),
        OfficerContact("tksk-elsewhere", "+6281300000004", OfficerRole.COORDINATOR, ("35.09.01",)),
    ])
    router = Router(FakeBook(), directory, KEYS)
    assert await router.plan(ev.disbursement_failed(1, final=False)) == []
    final = await router.plan(ev.disbursement_failed(1, final=True))
    assert sorted(p.recipient_id for p in final) == ["dinsos-op", "tksk-blimbing"]
    assert {p.kind for p in final} == {RecipientKind.COORDINATOR, RecipientKind.OFFICER}
    to_kecamatan = await router.plan(ev.case_escalated(1, to_level="kecamatan"))
    assert [p.recipient_id for p in to_kecamatan] == ["tksk-blimbing"]
    to_village = await router.plan(ev.case_escalated(1, to_level="village"))
    assert [p.recipient_id for p in to_village] == ["fo-balearjosari"]
    nobody = await Router(FakeBook(), FakeDirectory(), KEYS).plan(ev.case_escalated(1))
    assert len(nobody) == 1 and nobody[0].reach.phone is None and not nobody[0].reach.unknown
    assert nobody[0].recipient_id == "unassigned:coordinator:35.73.01.1001"


async def test_aid_messages_wait_for_the_round_then_go_without_it() -> None:
    book = FakeBook()
    kk_hash = KEYS.kk(ev.kk(7))
    book.households[kk_hash] = HouseholdContact(kk_hash, "+6281200000007", 1)
    router = Router(book, FakeDirectory(), KEYS)
    planned = (await router.plan(ev.aid_allocated(7)))[0]
    assert planned.reach.phone == "+6281200000007" and "aid round is not known" in planned.waiting_for
    assert "jadwal pengambilan diumumkan" in render(planned.template_id, planned.values).text  # if it must go
    round_opened = ev.round_opened(1)
    book.rounds[str(round_opened.data.round_id)] = RoundInfo(
        round_id=str(round_opened.data.round_id), name=round_opened.data.name, program=round_opened.data.program,
        period_start=round_opened.data.period_start, period_end=round_opened.data.period_end)
    ready = (await router.plan(ev.aid_allocated(7)))[0]
    assert ready.waiting_for == "" and ready.recipient_id == planned.recipient_id
    assert "mulai 1 November 2026 sampai 31 Desember 2026" in render(ready.template_id, ready.values).text
