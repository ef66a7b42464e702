"""Settings shared by every service (pydantic-settings, ``PUSKESOS_`` prefix).

Values come from the environment, then from ``.local/stack/stack.env`` (written by
``puskesos stack up``) in the working directory, then the defaults below.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from .topology import Topology

STACK_ENV_FILE = ".local/stack/stack.env"


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PUSKESOS_", env_file=STACK_ENV_FILE, env_file_encoding="utf-8", extra="ignore"
    )

    #: The service's name: its database is ``puskesos_{name}`` and its consumers start with it.
    SERVICE_NAME: ClassVar[str] = "service"
    DEFAULT_HTTP_PORT: ClassVar[int] = 8000

    nats_url: str = "nats://127.0.0.1:4222"
    nats_user: str | None = None
    nats_password: str | None = Field(default=None, repr=False)
    mongo_url: str = "mongodb://127.0.0.1:27017/"
    mongo_db: str | None = Field(default=None, description="Defaults to puskesos_{service name}")
    namespace: str = Field(default="puskesos", description="Subject and stream namespace")
    stream_replicas: int = 1
    http_host: str = "127.0.0.1"
    http_port: int | None = None
    auth_secret: SecretStr | None = Field(default=None, description="HS256 secret of officer tokens (>= 32 chars)")
    connect_timeout_seconds: float = Field(default=20.0, description="Give up starting when NATS does not answer")
    max_body_bytes: int = Field(default=256 * 1024, description="Largest HTTP request body accepted")
    log_level: str = "info"
    log_json: bool | None = Field(default=None, description="JSON logs; default: when stderr is not a terminal")

    @property
    def database_name(self) -> str:
        return self.mongo_db or f"{self.namespace}_{self.SERVICE_NAME}"

    @property
    def port(self) -> int:
        return self.http_port if self.http_port is not None else self.DEFAULT_HTTP_PORT

    def topology(self) -> Topology:
        return Topology(namespace=self.namespace, replicas=self.stream_replicas)
