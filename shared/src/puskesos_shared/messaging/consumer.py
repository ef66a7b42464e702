"""Consumer defaults that never drop a message silently.

Every event consumer goes through ``process_delivery``:

* explicit acknowledgement, only after the handler finished (FastStream's ack policy is
  MANUAL here: its default, REJECT_ON_ERROR, terminates a message on any error);
* ``InvalidMessage`` (malformed JSON, unknown event version, a payload that breaks the
  contract, or a handler that says the message can never succeed) goes to the dead-letter
  stream with the reason at once, then is terminated;
* any other error is retried with a delayed NAK (exponential backoff) up to
  ``max_attempts`` runs of the handler, then dead-lettered with the last error;
* a delivery beyond ``max_attempts`` (the process died while handling it) is
  dead-lettered without running the handler again;
* if the dead-letter publish itself fails, the message is NAKed and tried again later:
  it is acknowledged or terminated only once its copy is safely stored.

The server-side ``max_deliver`` is unlimited for this reason: bounding is done here,
where the last step can be "store it in the dead-letter stream", never "drop it".
While a handler runs, the delivery is kept alive with in-progress acks, so a slow effect
is not handed to another replica halfway through (handlers are idempotent regardless).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import structlog
from nats.js.api import AckPolicy as JsAckPolicy
from nats.js.api import ConsumerConfig, DeliverPolicy

from ..contracts.envelope import Event
from ..contracts.registry import InvalidMessage, decode_event
from ..metrics import MESSAGE_LATENCY, MESSAGES_PROCESSED
from . import headers as h
from .dead_letter import DeadLetters
from .redrive import REDRIVE_HEADER, original_headers

log = structlog.get_logger("puskesos.consumer")


class TransientError(Exception):
    """Raise from a handler for a failure worth retrying later (a dependency is down)."""


@dataclass(frozen=True, slots=True)
class ConsumerPolicy:
    max_attempts: int = 8
    ack_wait_seconds: float = 30.0
    backoff_initial_seconds: float = 0.5
    backoff_max_seconds: float = 60.0
    concurrency: int = 16
    fetch_timeout_seconds: float = 5.0  # a long poll: returns as soon as messages arrive; idle costs little
    heartbeat: bool = True

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.ack_wait_seconds <= 0 or self.backoff_initial_seconds <= 0:
            raise ValueError("ack_wait and backoff must be positive")

    def retry_delay(self, attempt: int) -> float:
        """Delay before the next delivery after ``attempt`` (1-based) failed."""
        return float(min(self.backoff_max_seconds, self.backoff_initial_seconds * 2 ** (attempt - 1)))

    def consumer_config(self, durable: str, filter_subjects: Sequence[str]) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=durable,
            name=durable,
            ack_policy=JsAckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.ack_wait_seconds,
            max_deliver=-1,  # bounded by max_attempts in process_delivery, see the module docstring
            max_ack_pending=max(1000, self.concurrency * 4),
            filter_subjects=list(filter_subjects),
        )


class RawDelivery(Protocol):
    """The part of ``nats.aio.msg.Msg`` a consumer needs (a Protocol so tests can drive it)."""

    @property
    def subject(self) -> str: ...
    @property
    def data(self) -> bytes: ...
    @property
    def headers(self) -> dict[str, str] | None: ...
    @property
    def metadata(self) -> Any: ...
    async def ack(self) -> None: ...
    async def nak(self, delay: float | None = None) -> None: ...
    async def term(self) -> None: ...
    async def in_progress(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Delivery:
    """What a handler may want to know about the message besides the event."""

    subject: str
    stream: str
    stream_sequence: int
    attempt: int
    headers: Mapping[str, str]


class Outcome(StrEnum):
    ACKED = "acked"
    RETRY = "retry"
    DEAD_LETTERED = "dead_lettered"


EventHandler = Callable[[Event, Delivery], Awaitable[None]]
Decoder = Callable[[bytes], Event]


async def _keep_alive(msg: RawDelivery, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        with suppress(Exception):
            await msg.in_progress()


async def process_delivery(
    msg: RawDelivery,
    *,
    consumer: str,
    handler: EventHandler,
    dead_letters: DeadLetters,
    policy: ConsumerPolicy,
    events: Sequence[type[Event]] | None = None,
    decoder: Decoder | None = None,
) -> Outcome:
    meta = msg.metadata
    attempt = int(meta.num_delivered)
    stream = str(meta.stream)
    seq = int(meta.sequence.stream)
    headers = dict(msg.headers or {})
    structlog.contextvars.bind_contextvars(
        consumer=consumer, subject=msg.subject, stream_seq=seq, attempt=attempt,
        event_id=headers.get("Nats-Msg-Id"), correlation_id=headers.get("Puskesos-Correlation-Id"),
    )
    started = time.perf_counter()
    try:
        outcome = await _process(msg, consumer, handler, dead_letters, policy, events, decoder,
                                 attempt, stream, seq, headers)
    finally:
        structlog.contextvars.unbind_contextvars(
            "consumer", "subject", "stream_seq", "attempt", "event_id", "correlation_id"
        )
    MESSAGES_PROCESSED.labels(consumer=consumer, outcome=outcome.value).inc()
    MESSAGE_LATENCY.labels(consumer=consumer).observe(time.perf_counter() - started)
    return outcome


async def _process(
    msg: RawDelivery,
    consumer: str,
    handler: EventHandler,
    dead_letters: DeadLetters,
    policy: ConsumerPolicy,
    events: Sequence[type[Event]] | None,
    decoder: Decoder | None,
    attempt: int,
    stream: str,
    seq: int,
    headers: dict[str, str],
) -> Outcome:
    async def to_dead_letters(reason: str) -> Outcome:
        try:
            await dead_letters.send(
                body=msg.data, original_headers=headers, original_subject=msg.subject,
                original_stream=stream, original_sequence=seq, consumer=consumer,
                deliveries=attempt, reason=reason,
            )
        except Exception as exc:
            log.error("dead_letter_publish_failed", error=repr(exc), reason=reason)
            await msg.nak(delay=policy.retry_delay(min(attempt, policy.max_attempts)))
            return Outcome.RETRY
        await msg.term()
        log.warning("message_dead_lettered", reason=reason)
        return Outcome.DEAD_LETTERED

    if attempt > policy.max_attempts:
        return await to_dead_letters(
            f"delivered {attempt} times without an outcome (the consumer stopped while handling it; "
            f"limit {policy.max_attempts} attempts)"
        )
    try:
        event = decoder(msg.data) if decoder else decode_event(msg.data, events)
    except InvalidMessage as exc:
        return await to_dead_letters(f"invalid message: {exc.reason}")

    structlog.contextvars.bind_contextvars(event_id=str(event.event_id), correlation_id=event.correlation_id)
    delivery = Delivery(subject=msg.subject, stream=stream, stream_sequence=seq, attempt=attempt, headers=headers)
    keeper = (
        asyncio.create_task(_keep_alive(msg, policy.ack_wait_seconds / 3)) if policy.heartbeat else None
    )
    try:
        await handler(event, delivery)
    except InvalidMessage as exc:
        return await to_dead_letters(f"rejected by handler: {exc.reason}")
    except Exception as exc:
        if attempt >= policy.max_attempts:
            return await to_dead_letters(f"gave up after {attempt} attempts: {type(exc).__name__}: {exc}")
        delay = policy.retry_delay(attempt)
        log.warning("handler_failed_will_retry", error=f"{type(exc).__name__}: {exc}", retry_in=delay,
                    transient=isinstance(exc, TransientError))
        await msg.nak(delay=delay)
        return Outcome.RETRY
    finally:
        if keeper is not None:
            keeper.cancel()
            with suppress(asyncio.CancelledError):
                await keeper
    await msg.ack()
    return Outcome.ACKED


async def redrive_delivery(
    body: bytes,
    headers: Mapping[str, str],
    *,
    consumer: str,
    handler: EventHandler,
    events: Sequence[type[Event]] | None = None,
    decoder: Decoder | None = None,
) -> None:
    """A dead letter's body through the decode and handler of a live delivery, once (``redrive``).

    ``headers`` are the dead letter's (``Puskesos-Dlq-*`` name the original subject, stream and sequence);
    the handler sees the original's, and the delivery counts as the attempt after those the dead letter
    records. Nothing is acknowledged: the message was terminated when it was dead-lettered. Raises what
    the decoder or the handler raised (``InvalidMessage`` when it can never succeed).
    """
    seq = int(headers.get(h.DLQ_ORIGINAL_SEQUENCE) or 0)
    attempt = int(headers.get(h.DLQ_DELIVERIES) or 0) + 1
    subject = headers.get(h.DLQ_ORIGINAL_SUBJECT, "")
    structlog.contextvars.bind_contextvars(
        consumer=consumer, subject=subject, stream_seq=seq, attempt=attempt,
        event_id=headers.get(h.MSG_ID), correlation_id=headers.get(h.CORRELATION_ID),
        redrive=headers.get(REDRIVE_HEADER),
    )
    started = time.perf_counter()
    outcome = "redrive_failed"
    try:
        event = decoder(body) if decoder else decode_event(body, events)
        structlog.contextvars.bind_contextvars(event_id=str(event.event_id), correlation_id=event.correlation_id)
        delivery = Delivery(subject=subject, stream=headers.get(h.DLQ_ORIGINAL_STREAM, ""), stream_sequence=seq,
                            attempt=attempt, headers=original_headers(headers))
        await handler(event, delivery)
        outcome = "redriven"
    finally:
        structlog.contextvars.unbind_contextvars(
            "consumer", "subject", "stream_seq", "attempt", "event_id", "correlation_id", "redrive"
        )
        MESSAGES_PROCESSED.labels(consumer=consumer, outcome=outcome).inc()
        MESSAGE_LATENCY.labels(consumer=consumer).observe(time.perf_counter() - started)
