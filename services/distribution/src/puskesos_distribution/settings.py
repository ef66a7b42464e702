"""Settings of the distribution service (``PUSKESOS_*`` environment variables)."""

from typing import ClassVar

from puskesos_shared.settings import ServiceSettings


class DistributionSettings(ServiceSettings):
    SERVICE_NAME: ClassVar[str] = "distribution"
    DEFAULT_HTTP_PORT: ClassVar[int] = 8103
