"""Settings of the intake service (``PUSKESOS_*`` environment variables)."""

from __future__ import annotations

import hashlib
from typing import ClassVar

from puskesos_shared.settings import ServiceSettings
from pydantic import Field, SecretStr

#: Fault points a test may arm through ``PUSKESOS_INTAKE_FAULT`` (see ``faults``).
FAULT_POINTS = ("crash_after_write", "crash_after_transfer_out")


class IntakeSettings(ServiceSettings):
    SERVICE_NAME: ClassVar[str] = "intake"
    DEFAULT_HTTP_PORT: ClassVar[int] = 8101

    intake_nik_hash_key: SecretStr | None = Field(
        default=None, repr=False,
        description="HMAC-SHA256 key of the NIK lookup collections (PUSKESOS_INTAKE_NIK_HASH_KEY). "
                    "Required in production; development derives one from the auth secret.",
    )
    intake_claim_grace_seconds: float = Field(
        default=60.0, gt=0,
        description="Age after which a claim (NIK ownership, open complaint) whose write never landed is "
                    "considered abandoned by a crashed request and may be taken over.",
    )
    intake_recovery_interval_seconds: float = Field(
        default=15.0, gt=0, description="How often interrupted transfers are resumed."
    )
    intake_export_timeout_seconds: float = Field(
        default=10.0, gt=0, le=120,
        description="How long a resident's data export waits for each service's part before it names the "
                    "service as unavailable.",
    )
    intake_import_publish_in_flight: int = Field(
        default=512, ge=1, le=4000,
        description="JetStream publishes a registry import batch keeps in flight (async, each with Nats-Msg-Id).",
    )
    intake_fault: str | None = Field(
        default=None,
        description=f"Test-only fault injection (PUSKESOS_INTAKE_FAULT), one of {', '.join(FAULT_POINTS)}.",
    )

    def nik_hash_key(self) -> bytes:
        """The HMAC key of NIK lookups; a stable development key when none is configured."""
        if self.intake_nik_hash_key is not None:
            return self.intake_nik_hash_key.get_secret_value().encode()
        seed = self.auth_secret.get_secret_value() if self.auth_secret is not None else "puskesos-dev"
        return hashlib.sha256(f"puskesos-intake-nik-index:{seed}".encode()).digest()

    @property
    def nik_hash_key_configured(self) -> bool:
        return self.intake_nik_hash_key is not None
