"""Delivering one notification exactly once (see ``domain`` for the argument).

``deliver`` may run any number of times for the same notification, concurrently or after a
crash at any line:

1. ``begin``: the record is inserted ``pending`` (or the stored one is read back: a resend uses
   the stored phone and text, so the provider sees the same message under the same key);
2. a record already ``sent``/``failed`` is not sent again (its outcome event is republished if
   the crash came before the relay removed it);
3. no phone → ``failed(no_contact)``; opted out → ``failed(opted_out)``; nothing is sent;
4. the channel sends with the notification id as idempotency key;
5. ``finish``: ``pending → sent|failed`` plus the outcome event, in one guarded update; the relay
   publishes the event (``Nats-Msg-Id`` = its derived id) and removes it from the record.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from prometheus_client import Counter
from puskesos_shared.contracts import Event
from puskesos_shared.contracts.notification import FailureReason
from puskesos_shared.messaging import PublishError
from puskesos_shared.outbox import outbox_entries
from puskesos_shared.topology import Topology

from .channels import Channel, DeliveryFailure, OutgoingMessage
from .domain import ContactKeys, DeliveryRecord, DeliveryState, Notification, failed_event, sent_event
from .store import DeliveryStore, Directory

log = structlog.get_logger("puskesos.notification.delivery")
NOTIFICATIONS = Counter("puskesos_notifications_total", "Notifications finished, by template and outcome",
                        ["template", "outcome"])

#: Publishes a record's outbox entries and removes them from the record.
Flush = Callable[[DeliveryRecord], Awaitable[None]]
Clock = Callable[[], dt.datetime]


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Deliverer:
    def __init__(self, store: DeliveryStore, directory: Directory, channel: Channel, keys: ContactKeys,
                 topology: Topology, flush: Flush, clock: Clock = _utc_now) -> None:
        self._store, self._directory, self._channel = store, directory, channel
        self._keys, self._topology, self._flush, self._clock = keys, topology, flush, clock

    async def deliver(self, notification: Notification) -> DeliveryRecord:
        record = await self._store.begin(notification, self._channel.kind)
        if record.done:
            await self._publish(record)
            return record
        n = record.notification  # as first stored
        if n.phone is None:
            return await self._fail(record, FailureReason.NO_CONTACT, n.no_contact_detail or "no phone number", 0)
        if await self._directory.is_opted_out(self._keys.phone(n.phone)):
            return await self._fail(record, FailureReason.OPTED_OUT, "the recipient opted out of messages", 0)
        message = OutgoingMessage(notification_id=n.notification_id, to=n.phone, text=n.text,
                                  template_id=n.template_id, template_version=n.template_version)
        try:
            receipt = await self._channel.send(message)
        except DeliveryFailure as failure:
            return await self._fail(record, failure.reason, failure.detail, failure.attempts)
        at = self._clock()
        event = sent_event(n, record.channel, provider_message_id=receipt.provider_message_id,
                           attempts=receipt.attempts, at=at)
        outcome = {"attempts": receipt.attempts, "provider_message_id": receipt.provider_message_id,
                   "sent_at": at, "replayed": receipt.replayed}
        return await self._finish(record, DeliveryState.SENT, outcome, event)

    async def _fail(self, record: DeliveryRecord, reason: FailureReason, detail: str,
                    attempts: int) -> DeliveryRecord:
        at = self._clock()
        event = failed_event(record.notification, record.channel, reason=reason, detail=detail,
                             attempts=attempts, at=at)
        outcome = {"attempts": attempts, "reason": reason.value, "detail": detail[:500], "failed_at": at}
        return await self._finish(record, DeliveryState.FAILED, outcome, event)

    async def _finish(self, record: DeliveryRecord, state: DeliveryState, outcome: dict[str, Any],
                      event: Event) -> DeliveryRecord:
        n = record.notification
        entries = outbox_entries([event], self._topology)
        finished = await self._store.finish(n.notification_id, state, outcome, entries)
        if finished is None:  # another run finished it first: its outcome stands
            finished = await self._store.get(n.notification_id)
            assert finished is not None
        else:
            NOTIFICATIONS.labels(template=n.template_id, outcome=outcome.get("reason", state.value)).inc()
            log.info("notification_finished", notification_id=str(n.notification_id), template=n.template_id,
                     state=state.value, reason=outcome.get("reason"), attempts=outcome.get("attempts"))
        await self._publish(finished)
        return finished

    async def _publish(self, record: DeliveryRecord) -> None:
        if not record.outbox:
            return
        try:
            await self._flush(record)
        except PublishError as exc:  # the entry stays in the record; the relay's sweep publishes it
            log.warning("notification_event_publish_deferred", notification_id=str(record.notification.notification_id),
                        error=str(exc))
