"""Event handlers: thin adapters from consumed events to the service (decoding is done by the kit)."""

from __future__ import annotations

from puskesos_shared.contracts.envelope import Event
from puskesos_shared.contracts.intake import ComplaintFiled, HouseholdRegistered, HouseholdUpdated
from puskesos_shared.contracts.registry import InvalidMessage
from puskesos_shared.messaging import Delivery
from puskesos_shared.messaging.consumer import EventHandler

from .service import ReferralService

CONSUMED: tuple[type[Event], ...] = (ComplaintFiled, HouseholdRegistered, HouseholdUpdated)
CONSUMER = "referral_intake"


def intake_events_handler(service: ReferralService) -> EventHandler:
    async def handle(event: Event, delivery: Delivery) -> None:
        if isinstance(event, ComplaintFiled):
            await service.on_complaint_filed(event)
        elif isinstance(event, HouseholdRegistered | HouseholdUpdated):
            await service.on_household(event)
        else:  # pragma: no cover - the consumer's filter lets only CONSUMED through
            raise InvalidMessage(f"{event.event_type} is not consumed by the referral service")

    return handle
