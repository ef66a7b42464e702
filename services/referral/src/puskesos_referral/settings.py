"""Settings of the referral service (``PUSKESOS_*`` environment variables)."""

from typing import ClassVar

from puskesos_shared.settings import ServiceSettings


class ReferralSettings(ServiceSettings):
    SERVICE_NAME: ClassVar[str] = "referral"
    DEFAULT_HTTP_PORT: ClassVar[int] = 8102
