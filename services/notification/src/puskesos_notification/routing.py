"""Who must hear about an event, with which template, and how to reach them.

Residents (one per event):

* ComplaintFiled → ``complaint_receipt`` to the complainant: the contact phone given with the
  complaint, else the phone of the complainant's household (by KK, else by NIK);
* ReferralIssued → ``referral_issued`` and CaseClosed → ``case_closed`` to the complainant of the case
  (CaseOpened links the case to its complaint);
* AidAllocated → ``aid_allocated`` and AidDisbursed → ``aid_disbursed`` to the family (by KK).

Officers (from the directory, by role and scope):

* DisbursementFailed with ``final`` → ``disbursement_failed`` to coordinators and operators covering the
  village; non-final failures are retries in progress and say nothing;
* CaseEscalated → ``case_escalated`` to the level it went to: village officers, the kecamatan
  coordinator (TKSK) or the Dinas Sosial operators.

The recipient key (part of the notification id) comes from the event alone, never from what is
resolved later, so a retry after the contact arrived addresses the same notification: a NIK
hash, the hash of an anonymous complainant's phone, ``case:<id>`` (the complainant of a case), a
KK hash, or an officer id.
"""

from __future__ import annotations

from puskesos_shared.contracts import (
    AidAllocated,
    AidDisbursed,
    CaseClosed,
    CaseEscalated,
    ComplaintFiled,
    DisbursementFailed,
    Event,
    ReferralIssued,
)
from puskesos_shared.contracts.notification import RecipientKind
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.contracts.referral import EscalationLevel

from . import messages
from .contacts import ContactBook
from .domain import ContactKeys, Planned, Reach
from .formatting import whatsapp_number
from .store import Directory

NOTIFYING_EVENTS: tuple[type[Event], ...] = (
    ComplaintFiled, ReferralIssued, CaseClosed, AidAllocated, AidDisbursed, DisbursementFailed, CaseEscalated,
)
ROLES_BY_LEVEL = {
    EscalationLevel.VILLAGE: (OfficerRole.FRONT_OFFICE, OfficerRole.BACK_OFFICE, OfficerRole.ASSESSOR),
    EscalationLevel.KECAMATAN: (OfficerRole.COORDINATOR,),
    EscalationLevel.DINAS_SOSIAL: (OfficerRole.OPERATOR,),
}
DISBURSEMENT_ROLES = (OfficerRole.COORDINATOR, OfficerRole.OPERATOR)
NO_ROUND = "the aid round is not known here yet (no AidRoundOpened)"
NO_CASE = "the case is not known here yet (no CaseOpened)"


class Router:
    def __init__(self, contacts: ContactBook, directory: Directory, keys: ContactKeys) -> None:
        self._contacts, self._directory, self._keys = contacts, directory, keys

    async def plan(self, event: Event) -> list[Planned]:
        match event:
            case ComplaintFiled():
                return [await self._complaint_receipt(event)]
            case ReferralIssued():
                case, reach = await self._case_complainant(str(event.data.case_id))
                return [self._resident(f"case:{event.data.case_id}", "referral_issued",
                                       messages.referral_issued(event, case), reach)]
            case CaseClosed():
                case, reach = await self._case_complainant(str(event.data.case_id))
                return [self._resident(f"case:{event.data.case_id}", "case_closed",
                                       messages.case_closed(event, case), reach)]
            case AidAllocated():
                kk = self._keys.kk(event.data.kk_number)
                info = await self._contacts.round(str(event.data.round_id))
                return [self._resident(kk, "aid_allocated", messages.aid_allocated(event, info),
                                       await self._household_reach(kk), "" if info else NO_ROUND)]
            case AidDisbursed():
                kk = self._keys.kk(event.data.kk_number)
                info = await self._contacts.round(str(event.data.round_id))
                village = event.village_code or await self._contacts.allocation_village(str(event.data.allocation_id))
                return [self._resident(kk, "aid_disbursed", messages.aid_disbursed(event, info, village),
                                       await self._household_reach(kk), "" if info else NO_ROUND)]
            case DisbursementFailed():
                if not event.data.final:
                    return []
                info = await self._contacts.round(str(event.data.round_id))
                village = event.village_code or await self._contacts.allocation_village(str(event.data.allocation_id))
                return await self._officers("disbursement_failed", messages.disbursement_failed(event, info),
                                            village, DISBURSEMENT_ROLES, "" if info else NO_ROUND)
            case CaseEscalated():
                case = await self._contacts.case(str(event.data.case_id))
                village = event.village_code or (case.village_code if case else None)
                return await self._officers("case_escalated", messages.case_escalated(event, case, village),
                                            village, ROLES_BY_LEVEL[event.data.to_level], "" if case else NO_CASE)
        return []

    @staticmethod
    def _resident(key: str, template_id: str, values: dict[str, str], reach: Reach, missing: str = "") -> Planned:
        return Planned(RecipientKind.RESIDENT, key, template_id, values, reach, missing)

    async def _complaint_receipt(self, event: ComplaintFiled) -> Planned:
        person = event.data.complainant
        contact = whatsapp_number(person.contact_phone) if person.contact_phone else None
        # anonymous complainants are known by their contact phone (the contract requires one)
        key = self._keys.nik(person.nik) if person.nik else self._keys.phone(contact or person.contact_phone or "")
        reach = await self._person_reach(
            contact,
            self._keys.kk(person.kk_number) if person.kk_number else None,
            self._keys.nik(person.nik) if person.nik else None,
        )
        return self._resident(key, "complaint_receipt", messages.complaint_receipt(event), reach)

    async def _case_complainant(self, case_id: str) -> tuple[messages.CaseInfo | None, Reach]:
        case = await self._contacts.case(case_id)
        if case is None:
            return None, Reach(unknown=True, detail=NO_CASE)
        complaint = await self._contacts.complaint(case.complaint_id) if case.complaint_id else None
        if complaint is not None:
            return case, await self._person_reach(complaint.phone, complaint.kk_hash, complaint.nik_hash)
        if case.kk_hash or case.nik_hash:
            return case, await self._person_reach(None, case.kk_hash, case.nik_hash)
        return case, Reach(unknown=True, detail="the case's complaint is not known here yet")

    async def _person_reach(self, phone: str | None, kk_hash: str | None, nik_hash: str | None) -> Reach:
        if phone:
            return Reach(phone=phone)
        if kk_hash is None and nik_hash is not None:
            kk_hash = await self._contacts.household_of_member(nik_hash)
            if kk_hash is None:
                return Reach(unknown=True, detail="the resident's household is not registered here (yet)")
        if kk_hash is None:
            return Reach(detail="no mobile phone number given and no household to look one up")
        return await self._household_reach(kk_hash)

    async def _household_reach(self, kk_hash: str) -> Reach:
        household = await self._contacts.household(kk_hash)
        if household is None:
            return Reach(unknown=True, detail="the household is not registered here (yet)")
        if household.phone is None:
            return Reach(detail="the household has no mobile phone number")
        return Reach(phone=household.phone)

    async def _officers(self, template_id: str, values: dict[str, str], village: str | None,
                        roles: tuple[OfficerRole, ...], missing: str) -> list[Planned]:
        role_names = "/".join(r.value for r in roles)
        if village is None:
            return [Planned(RecipientKind.OFFICER, f"unassigned:{role_names}", template_id, values,
                            Reach(unknown=True, detail="the village of the event is not known here yet"), missing)]
        officers = await self._directory.officers_covering(village, roles)
        if not officers:
            return [Planned(RecipientKind.OFFICER, f"unassigned:{role_names}:{village}", template_id, values,
                            Reach(detail=f"no {role_names} in the directory covers {village}"), missing)]
        return [
            Planned(RecipientKind.COORDINATOR if o.role is OfficerRole.COORDINATOR else RecipientKind.OFFICER,
                    o.officer_id, template_id, values, Reach(phone=o.phone), missing)
            for o in officers
        ]
