"""Settings of the notification service (``PUSKESOS_*`` environment variables).

The channel is chosen with ``PUSKESOS_NOTIFY_CHANNEL``: ``local_file`` (development: messages are
appended to a JSON-lines file) or ``webhook`` (HTTP POST to an SMS/WhatsApp provider at
``PUSKESOS_NOTIFY_WEBHOOK_URL``).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal, Self

from puskesos_shared.contracts.notification import NotificationChannel
from puskesos_shared.settings import ServiceSettings
from pydantic import Field, SecretStr, model_validator

#: Used only when PUSKESOS_NOTIFY_HASH_SECRET is unset (development); the service logs a warning.
DEVELOPMENT_HASH_SECRET = "puskesos-notification-development-only-hash-secret"  # noqa: S105


class NotificationSettings(ServiceSettings):
    SERVICE_NAME: ClassVar[str] = "notification"
    DEFAULT_HTTP_PORT: ClassVar[int] = 8104

    notify_channel: Literal["webhook", "local_file"] = "local_file"
    notify_local_path: Path = Field(default=Path(".local/notifications/messages.jsonl"),
                                    description="Where the local channel appends what it would send")

    notify_webhook_url: str | None = Field(default=None, description="Provider endpoint (HTTP POST)")
    notify_webhook_token: SecretStr | None = Field(default=None, description="Bearer token of the provider")
    notify_webhook_kind: NotificationChannel = Field(default=NotificationChannel.WHATSAPP,
                                                     description="What the provider delivers (whatsapp or sms)")
    notify_webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    notify_webhook_max_attempts: int = Field(default=5, ge=1, le=20)
    notify_webhook_backoff_initial_seconds: float = Field(default=0.5, gt=0)
    notify_webhook_backoff_max_seconds: float = Field(default=8.0, gt=0)
    notify_rate_per_second: float = Field(default=20.0, gt=0, description="Token bucket refill rate")
    notify_rate_burst: int = Field(default=20, ge=1, description="Token bucket size")

    notify_hash_secret: SecretStr | None = Field(
        default=None, description="HMAC key of the NIK/KK/phone hashes (recipient ids, opt-outs); >= 32 chars"
    )
    #: Deliveries of an event whose recipient is not known yet (the household or the case has
    #: not reached this service) before the notification is recorded as failed (no_contact).
    notify_contact_wait_attempts: int = Field(default=6, ge=1)
    notify_consumer_max_attempts: int = Field(default=8, ge=2)
    notify_consumer_backoff_seconds: float = Field(default=0.5, gt=0)
    notify_consumer_concurrency: int = Field(default=16, ge=1, le=256)
    notify_consumer_ack_wait_seconds: float = Field(
        default=30.0, gt=0, description="Redelivery delay of a message whose handler died (kept alive while running)"
    )

    # external subscribers' feeds (``feeds``; ``puskesos subscribers`` edits the local stack's files)
    subscribers_file: Path | None = Field(default=None, description="Declared external subscribers (JSON)")
    subscriber_secrets_file: Path | None = Field(default=None, description="Their webhook signing secrets (0600)")
    feed_batch: int = Field(default=10000, ge=1, le=20000, description="Events relayed to a NATS feed per batch")
    feed_worker_process: bool = Field(
        default=True, description="NATS feed copies made safe and published by a worker process (false: in this one)")
    feed_webhook_batch: int = Field(default=50, ge=1, le=1000, description="Events per webhook batch (in order)")
    feed_ack_wait_seconds: float = Field(default=60.0, gt=0)
    feed_webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    feed_webhook_backoff_initial_seconds: float = Field(default=0.5, gt=0)
    feed_webhook_backoff_max_seconds: float = Field(default=10.0, gt=0)
    feed_webhook_give_up_seconds: float = Field(
        default=24 * 3600.0, gt=0, description="An event not accepted by then is dead-lettered and the feed goes on")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.notify_channel == "webhook" and not self.notify_webhook_url:
            raise ValueError("PUSKESOS_NOTIFY_WEBHOOK_URL is required when PUSKESOS_NOTIFY_CHANNEL=webhook")
        if self.notify_contact_wait_attempts >= self.notify_consumer_max_attempts:
            raise ValueError("notify_contact_wait_attempts must be below notify_consumer_max_attempts, so that "
                             "a missing contact is recorded (no_contact) before the message is dead-lettered")
        if self.notify_hash_secret is not None and len(self.notify_hash_secret.get_secret_value()) < 32:
            raise ValueError("PUSKESOS_NOTIFY_HASH_SECRET must be at least 32 characters")
        return self

    def hash_secret(self) -> bytes:
        secret = self.notify_hash_secret.get_secret_value() if self.notify_hash_secret else DEVELOPMENT_HASH_SECRET
        return secret.encode()
