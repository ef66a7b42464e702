"""Thin event handlers: the contact projection and the notifications.

Two durable consumers, so that slow provider calls never hold back the projection:

* ``notification_contacts``: HouseholdRegistered/Updated, ComplaintFiled, CaseOpened, AidRoundOpened,
  AidAllocated → the contact projection (idempotent upserts);
* ``notification``: the events people must hear about → plan, render, deliver once.

A recipient that is not known yet (the household or the case has not reached the projection),
or context the text needs (the aid round, the case number) that has not arrived, is a transient
condition: the event is retried with the consumer's backoff for ``contact_wait_attempts``
deliveries (by default 6: about 15 s of delays), the other recipients being served meanwhile.
After that the message goes out with what is known (a text without the collection period), or,
with no phone number, is recorded as failed with ``no_contact`` and the detail; the event is
acknowledged. Waiting is bounded by deliveries, not by the event's age, so replaying old events
does not skip anyone.
"""

from __future__ import annotations

import structlog
from puskesos_shared.contracts import (
    AidAllocated,
    AidRoundOpened,
    CaseOpened,
    ComplaintFiled,
    Event,
    HouseholdRegistered,
    HouseholdUpdated,
)
from puskesos_shared.contracts.intake import Household, HouseholdChangeKind
from puskesos_shared.messaging import Delivery, TransientError

from .contacts import ComplaintContact, MongoContactBook
from .delivery import Deliverer
from .domain import ContactKeys, build_notification
from .formatting import whatsapp_number
from .messages import CaseInfo, RoundInfo
from .routing import Router
from .templates import render

log = structlog.get_logger("puskesos.notification.handlers")

CONTACT_EVENTS: tuple[type[Event], ...] = (
    HouseholdRegistered, HouseholdUpdated, ComplaintFiled, CaseOpened, AidRoundOpened, AidAllocated,
)


class ContactProjection:
    def __init__(self, book: MongoContactBook, keys: ContactKeys) -> None:
        self._book, self._keys = book, keys

    async def handle(self, event: Event, delivery: Delivery) -> None:
        match event:
            case HouseholdRegistered():
                await self._household(event.data.household, event.data.revision)
            case HouseholdUpdated():
                await self._household_updated(event)
            case ComplaintFiled():
                await self._complaint(event)
            case CaseOpened():
                await self._case(event)
            case AidRoundOpened():
                r = event.data
                await self._book.save_round(RoundInfo(round_id=str(r.round_id), name=r.name, program=r.program,
                                                      period_start=r.period_start, period_end=r.period_end))
            case AidAllocated():
                a = event.data
                await self._book.save_allocation(str(a.allocation_id), a.village_code, self._keys.kk(a.kk_number))

    async def _household_updated(self, event: HouseholdUpdated) -> None:
        data = event.data
        moved = self._keys.nik(data.transferred_nik) if data.transferred_nik else None
        await self._household(
            data.household, data.revision,
            moved_in=moved if data.change is HouseholdChangeKind.TRANSFER_IN else None,
            moved_out=moved if data.change is HouseholdChangeKind.TRANSFER_OUT else None,
        )

    async def _complaint(self, event: ComplaintFiled) -> None:
        keys, data = self._keys, event.data
        person = data.complainant
        phone = whatsapp_number(person.contact_phone) if person.contact_phone else None
        await self._book.save_complaint(ComplaintContact(
            complaint_id=str(data.complaint_id), phone=phone,
            nik_hash=keys.nik(person.nik) if person.nik else None,
            kk_hash=keys.kk(person.kk_number) if person.kk_number else None,
            case_number=data.case_number, village_code=data.village_code))

    async def _case(self, event: CaseOpened) -> None:
        keys, data = self._keys, event.data
        await self._book.save_case(CaseInfo(
            case_id=str(data.case_id), case_number=data.case_number, complaint_id=str(data.complaint_id),
            village_code=data.village_code, nik_hash=keys.nik(data.subject_nik) if data.subject_nik else None,
            kk_hash=keys.kk(data.kk_number) if data.kk_number else None))

    async def _household(self, household: Household, revision: int, *, moved_in: str | None = None,
                         moved_out: str | None = None) -> None:
        phone = whatsapp_number(household.phone) if household.phone else None
        members = [self._keys.nik(m.nik) for m in household.members]
        applied = await self._book.apply_household(self._keys.kk(household.kk_number), phone, revision, members,
                                                   moved_in=moved_in, moved_out=moved_out)
        if not applied:
            log.info("household_revision_stale", revision=revision)


class Notifier:
    def __init__(self, router: Router, deliverer: Deliverer, contact_wait_attempts: int) -> None:
        self._router, self._deliverer, self._wait = router, deliverer, contact_wait_attempts

    async def handle(self, event: Event, delivery: Delivery) -> None:
        planned = await self._router.plan(event)
        keep_waiting = delivery.attempt < self._wait
        waiting = [p for p in planned if p.waiting_for]
        for p in planned:
            if p.waiting_for and keep_waiting:
                continue
            notification = build_notification(event, p, render(p.template_id, p.values))
            await self._deliverer.deliver(notification)
        if waiting and keep_waiting:
            raise TransientError(f"{len(waiting)} message(s) waiting: {waiting[0].waiting_for}")
