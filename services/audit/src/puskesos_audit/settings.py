"""Settings of the audit service (``PUSKESOS_*`` environment variables)."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import ClassVar

from puskesos_shared.settings import ServiceSettings
from pydantic import Field, SecretStr


class AuditKeyError(RuntimeError):
    """Neither the audit keys nor the auth secret they can be derived from are configured."""


class AuditSettings(ServiceSettings):
    SERVICE_NAME: ClassVar[str] = "audit"
    DEFAULT_HTTP_PORT: ClassVar[int] = 8105

    audit_index_key: SecretStr | None = Field(
        default=None, description="HMAC key of the NIK/KK index (>= 32 chars); derived from auth_secret if unset")
    audit_checkpoint_key: SecretStr | None = Field(
        default=None, description="HMAC key signing checkpoints (>= 32 chars); derived from auth_secret if unset")
    audit_appender: bool = Field(default=True, description="Append the stream to the log (False: query API only)")
    audit_chunk_max_records: int = Field(default=1024, ge=1, le=4096, description="Records per chunk at most")
    audit_chunk_max_bytes: int = Field(default=4 * 1024 * 1024, ge=64 * 1024, le=12 * 1024 * 1024)
    audit_fetch_timeout_seconds: float = Field(
        default=5.0, gt=0, description="Long poll of the events stream (returns as soon as events arrive)")
    audit_checkpoint_every_records: int = Field(default=10_000, ge=1)
    audit_checkpoint_every_seconds: float = Field(default=300.0, gt=0)
    audit_rules_dir: str = Field(
        default="", description="Directories (os.pathsep-separated) of assessment rule sets {name}@{version}.json")
    audit_distribution_url: str | None = Field(
        default=None, description="Base URL of the distribution service, for live round comparisons")

    def _key(self, explicit: SecretStr | None, purpose: str) -> bytes:
        if explicit is not None:
            value = explicit.get_secret_value()
            if len(value) < 32:
                raise AuditKeyError(f"the audit {purpose} key must be at least 32 characters")
            return value.encode()
        if self.auth_secret is None:
            raise AuditKeyError(f"set PUSKESOS_AUDIT_{purpose.upper()}_KEY (or PUSKESOS_AUTH_SECRET to derive it)")
        secret = self.auth_secret.get_secret_value().encode()
        return hmac.new(secret, f"puskesos-audit-{purpose}-key-v1".encode(), hashlib.sha256).digest()

    def index_key(self) -> bytes:
        return self._key(self.audit_index_key, "index")

    def checkpoint_key(self) -> bytes:
        return self._key(self.audit_checkpoint_key, "checkpoint")

    def rules_dirs(self) -> list[Path]:
        import os

        return [Path(p) for p in self.audit_rules_dir.split(os.pathsep) if p.strip()]
