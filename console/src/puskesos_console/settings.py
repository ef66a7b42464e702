"""Settings of the console (``PUSKESOS_*`` environment variables, then the local stack's ``stack.env``)."""

from __future__ import annotations

import secrets
from typing import ClassVar

from puskesos_shared.localstack import stack_dir
from puskesos_shared.settings import ServiceSettings
from pydantic import Field, SecretStr

#: The services the console calls, by name, with their local default base URLs (``services`` DEFAULT_PORTS).
SERVICE_URLS = {"intake": "http://127.0.0.1:8101", "referral": "http://127.0.0.1:8102",
                "distribution": "http://127.0.0.1:8103", "notification": "http://127.0.0.1:8104",
                "audit": "http://127.0.0.1:8105"}
SECRET_FILE = "console-secret"  # noqa: S105 (a file name)


class ConsoleSettings(ServiceSettings):
    """The console owns no database and no bus connection: of the shared settings it uses the HTTP host and
    port, the trusted proxies and the log settings."""

    SERVICE_NAME: ClassVar[str] = "console"
    DEFAULT_HTTP_PORT: ClassVar[int] = 8100

    console_intake_url: str = SERVICE_URLS["intake"]
    console_referral_url: str = SERVICE_URLS["referral"]
    console_distribution_url: str = SERVICE_URLS["distribution"]
    console_notification_url: str = SERVICE_URLS["notification"]
    console_audit_url: str = SERVICE_URLS["audit"]
    console_secret: SecretStr | None = Field(
        default=None, repr=False,
        description="Key of the CSRF tokens (PUSKESOS_CONSOLE_SECRET, >= 32 characters). Required where several "
                    "console replicas serve one site; locally generated once into the stack directory.")
    console_api_timeout_seconds: float = Field(default=15.0, gt=0, le=120,
                                               description="How long a page waits for a service")
    console_page_size: int = Field(default=20, ge=5, le=100, description="Rows per page of a list")

    def service_url(self, name: str) -> str:
        url: str = getattr(self, f"console_{name}_url")
        return url.rstrip("/")

    def secret(self) -> bytes:
        """The CSRF key: ``PUSKESOS_CONSOLE_SECRET``, else the stack's ``console-secret`` (made once, 0600)."""
        if self.console_secret is not None:
            value = self.console_secret.get_secret_value()
            if len(value) < 32:
                raise ValueError("PUSKESOS_CONSOLE_SECRET must be at least 32 characters")
            return value.encode()
        path = stack_dir() / SECRET_FILE
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip().encode()
