"""Settings of the referral service (``PUSKESOS_*`` environment variables)."""

from typing import ClassVar

from puskesos_shared.settings import ServiceSettings
from pydantic import Field


class ReferralSettings(ServiceSettings):
    SERVICE_NAME: ClassVar[str] = "referral"
    DEFAULT_HTTP_PORT: ClassVar[int] = 8102

    escalation_interval_seconds: float = Field(
        default=60.0, gt=0, le=3600, description="How often each replica looks for overdue cases")
    escalation_batch: int = Field(default=200, ge=1, le=5000, description="Cases examined per query")
    pending_sweep_seconds: float = Field(
        default=15.0, gt=0, le=600, description="How often unpublished changes (after a crash or outage) are finished")
    consumer_ack_wait_seconds: float = Field(
        default=30.0, ge=1, le=600, description="How long a delivery may stay unacknowledged before redelivery")
    escalation_enabled: bool = Field(default=True, description="Run the SLA escalation loop in this process")
