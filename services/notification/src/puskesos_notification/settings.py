"""Settings of the notification service (``PUSKESOS_*`` environment variables)."""

from typing import ClassVar

from puskesos_shared.settings import ServiceSettings


class NotificationSettings(ServiceSettings):
    SERVICE_NAME: ClassVar[str] = "notification"
    DEFAULT_HTTP_PORT: ClassVar[int] = 8104
