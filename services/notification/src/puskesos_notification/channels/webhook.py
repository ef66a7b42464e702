"""The provider channel: HTTP POST to an SMS/WhatsApp provider, once per notification id.

Every request carries ``Idempotency-Key: <notification id>``: a provider that honours it (as the
usual SMS/WhatsApp gateways do) turns a resend after a crash into a no-op. Timeouts, connection
errors, 408/409/425/429 and 5xx answers are retried with exponential backoff (with jitter, and
at least the provider's ``Retry-After``) up to ``max_attempts``; then the notification fails with
``provider_error``. Other 4xx answers fail at once with ``rejected_by_provider``. Each attempt
takes a token from the channel's bucket (the provider's rate limit). Response bodies are never
logged or kept: they may echo the phone number.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import structlog
from lokal import parse_phone
from puskesos_shared.contracts.notification import FailureReason, NotificationChannel

from .base import ChannelUnavailable, DeliveryFailure, OutgoingMessage, SendReceipt
from .ratelimit import TokenBucket

log = structlog.get_logger("puskesos.notification.webhook")
RETRYABLE_STATUS = frozenset({408, 409, 425, 429})
IDEMPOTENCY_HEADER = "Idempotency-Key"


class WebhookChannel:
    def __init__(
        self,
        url: str,
        *,
        kind: NotificationChannel = NotificationChannel.WHATSAPP,
        token: str | None = None,
        timeout_seconds: float = 10.0,
        max_attempts: int = 5,
        backoff_initial_seconds: float = 0.5,
        backoff_max_seconds: float = 8.0,
        bucket: TokenBucket | None = None,
        client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.url, self._kind, self.max_attempts = url, kind, max_attempts
        self.timeout_seconds = timeout_seconds
        self.backoff_initial, self.backoff_max = backoff_initial_seconds, backoff_max_seconds
        self._bucket = bucket or TokenBucket(rate=20.0, burst=20)
        headers = {"User-Agent": "puskesos-notification/1"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = client or httpx.AsyncClient(timeout=httpx.Timeout(timeout_seconds), headers=headers)
        self._sleep, self._jitter = sleep, jitter
        self._closed = False

    @property
    def kind(self) -> NotificationChannel:
        return self._kind

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Delay after failed attempt ``attempt`` (1-based): half fixed, half random, at least Retry-After."""
        base = min(self.backoff_max, self.backoff_initial * 2.0 ** (attempt - 1))
        delay = base * (0.5 + 0.5 * float(self._jitter()))
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff_max))
        return delay

    def payload(self, message: OutgoingMessage) -> dict[str, Any]:
        to = message.to
        if self._kind is NotificationChannel.WHATSAPP:
            to = parse_phone(message.to).whatsapp or message.to.lstrip("+")  # "6281234567890"
        return {
            "reference": str(message.notification_id), "channel": self._kind.value, "to": to, "type": "text",
            "text": message.text, "template": {"id": message.template_id, "version": message.template_version},
        }

    async def send(self, message: OutgoingMessage) -> SendReceipt:
        body = self.payload(message)
        headers = {IDEMPOTENCY_HEADER: str(message.notification_id)}
        attempt = 0
        while True:
            attempt += 1
            await self._bucket.acquire()
            retry_after: float | None = None
            if self._closed:
                raise ChannelUnavailable("the webhook channel is closed")
            try:
                response = await self._client.post(self.url, json=body, headers=headers)
            except httpx.TimeoutException:
                problem = f"timeout after {self.timeout_seconds:g}s"
            except httpx.TransportError as exc:
                problem = f"connection error ({type(exc).__name__})"
            except RuntimeError as exc:  # the client was closed under us at shutdown
                raise ChannelUnavailable(f"the webhook channel is closed ({exc})") from None
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return SendReceipt(provider_message_id=_message_id(response, message), attempts=attempt,
                                       replayed=response.headers.get("Idempotent-Replayed", "").lower() == "true")
                if status < 500 and status not in RETRYABLE_STATUS:
                    raise DeliveryFailure(FailureReason.REJECTED_BY_PROVIDER, f"HTTP {status}", attempt)
                problem = f"HTTP {status}"
                retry_after = _retry_after(response)
            if attempt >= self.max_attempts:
                raise DeliveryFailure(FailureReason.PROVIDER_ERROR, f"{problem} after {attempt} attempts", attempt)
            delay = self.backoff(attempt, retry_after)
            log.warning("provider_retry", notification_id=str(message.notification_id), problem=problem,
                        attempt=attempt, retry_in=round(delay, 3))
            await self._sleep(delay)

    async def close(self) -> None:
        self._closed = True
        await self._client.aclose()


def _message_id(response: httpx.Response, message: OutgoingMessage) -> str:
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("message_id", "id"):
            value = data.get(key)
            if isinstance(value, (str, int)) and str(value):
                return str(value)[:200]
    return f"provider:{message.notification_id}"


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
