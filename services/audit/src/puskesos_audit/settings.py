"""Settings of the audit service (``PUSKESOS_*`` environment variables)."""

from typing import ClassVar

from puskesos_shared.settings import ServiceSettings


class AuditSettings(ServiceSettings):
    SERVICE_NAME: ClassVar[str] = "audit"
    DEFAULT_HTTP_PORT: ClassVar[int] = 8105
