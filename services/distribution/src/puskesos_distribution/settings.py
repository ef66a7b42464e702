"""Settings of the distribution service (``PUSKESOS_*`` environment variables)."""

from typing import ClassVar

from puskesos_shared.messaging import ConsumerPolicy
from puskesos_shared.settings import ServiceSettings
from pydantic import Field


class DistributionSettings(ServiceSettings):
    SERVICE_NAME: ClassVar[str] = "distribution"
    DEFAULT_HTTP_PORT: ClassVar[int] = 8103

    gateway_url: str | None = Field(
        default=None, description="Base URL of the payment gateway; without it no disbursement worker runs"
    )
    gateway_name: str = Field(default="simulated", min_length=1, max_length=50)
    gateway_timeout_seconds: float = Field(default=30.0, gt=0)
    gateway_batch_size: int = Field(
        default=1, ge=1, le=500, description="Payments per gateway request (1: one request per payment)"
    )
    disburse_max_attempts: int = Field(default=5, ge=1, description="Gateway tries before a final failure")
    disburse_in_flight: int = Field(default=64, ge=1, description="Disbursement work items handled at once")
    allocate_in_flight: int = Field(default=128, ge=1, description="Allocation work items handled at once")
    work_ack_wait_seconds: float = Field(default=30.0, gt=0)
    work_heartbeat: bool = Field(default=True, description="Keep slow work items alive with in-progress acks")
    work_max_attempts: int = Field(default=20, ge=2, description="Deliveries before a work item is dead-lettered")
    work_backoff_initial_seconds: float = Field(default=0.5, gt=0)
    work_backoff_max_seconds: float = Field(default=30.0, gt=0)
    batch_linger_seconds: float = Field(default=0.002, ge=0, description="How long bulk writes wait for company")
    close_wait_seconds: float = Field(default=60.0, gt=0, description="How long close waits for the work to drain")
    presence_window_seconds: float = Field(default=0.3, gt=0, le=5,
                                           description="How long round status gathers the replicas' answers")

    def work_policy(self, in_flight: int) -> ConsumerPolicy:
        return ConsumerPolicy(
            max_attempts=self.work_max_attempts,
            ack_wait_seconds=self.work_ack_wait_seconds,
            backoff_initial_seconds=self.work_backoff_initial_seconds,
            backoff_max_seconds=self.work_backoff_max_seconds,
            concurrency=in_flight,
            heartbeat=self.work_heartbeat,
        )
