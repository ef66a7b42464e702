"""Settings of the intake service (``PUSKESOS_*`` environment variables)."""

from typing import ClassVar

from puskesos_shared.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    SERVICE_NAME: ClassVar[str] = "intake"
    DEFAULT_HTTP_PORT: ClassVar[int] = 8101
