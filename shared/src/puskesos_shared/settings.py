"""Settings shared by every service (pydantic-settings, ``PUSKESOS_`` prefix).

Values come from the environment, then from the local stack's ``stack.env`` (written by
``puskesos stack up`` into ``.local/stack/``, or ``PUSKESOS_STACK_DIR``), then the defaults below.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .http import RateLimits, parse_networks
from .localstack import stack_dir
from .topology import Topology


def nats_servers(urls: str) -> list[str]:
    """``nats://a:4222,nats://b:4222`` as a list of URLs (NATS clients take the list)."""
    return [url.strip() for url in urls.split(",") if url.strip()]


#: Every NATS connection of a service process: through a cluster's leader elections and restarts, never
#: give up; a dead server is left for the next one at once (the wait applies to trying the same server
#: again); a frozen server (no TCP reset) is noticed by two unanswered pings.
CONNECTION_OPTIONS: dict[str, Any] = {
    "max_reconnect_attempts": -1, "reconnect_time_wait": 1, "ping_interval": 10, "max_outstanding_pings": 2,
}


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PUSKESOS_", env_file_encoding="utf-8", extra="ignore")

    def __init__(self, **values: Any) -> None:
        # the stack's file is found when the settings are read (``_env_file=None`` reads none)
        values.setdefault("_env_file", stack_dir() / "stack.env")
        super().__init__(**values)

    #: The service's name: its database is ``puskesos_{name}`` and its consumers start with it.
    SERVICE_NAME: ClassVar[str] = "service"
    DEFAULT_HTTP_PORT: ClassVar[int] = 8000

    nats_url: str = Field(default="nats://127.0.0.1:4222",
                          description="A NATS server's URL, or several comma-separated (the servers of a cluster)")
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
    jetstream_timeout_seconds: float = Field(
        default=15.0, gt=0, description="JetStream API calls and publish acks (a cluster waits for its quorum)")
    max_body_bytes: int = Field(default=256 * 1024, description="Largest HTTP request body accepted")
    # Rate limits per process (each replica enforces its own; a global limit belongs at the ingress).
    # A rate of 0 turns that limit off. See docs/conventions.md "Rate limits".
    rate_limit_per_minute: float = Field(default=600.0, ge=0, description="Sustained requests per officer")
    rate_limit_burst: int = Field(default=300, ge=1, description="Requests an officer may make at once")
    rate_limit_anonymous_per_minute: float = Field(
        default=120.0, ge=0, description="Sustained requests per client IP without a verifiable token")
    rate_limit_anonymous_burst: int = Field(default=60, ge=1)
    trusted_proxies: str = Field(
        default="", description="Comma-separated IPs/CIDRs whose X-Forwarded-For is believed (default: none)")
    log_level: str = "info"
    log_json: bool | None = Field(default=None, description="JSON logs; default: when stderr is not a terminal")

    @field_validator("nats_url")
    @classmethod
    def _nats_urls(cls, value: str) -> str:
        if not nats_servers(value):
            raise ValueError("at least one NATS URL is needed")
        return value

    @property
    def nats_servers(self) -> list[str]:
        """Every NATS server to connect to (``nats_url`` split at commas): clients move among them."""
        return nats_servers(self.nats_url)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        parse_networks(value.split(","))  # ValueError names the bad entry
        return value

    def rate_limits(self) -> RateLimits:
        return RateLimits(per_minute=self.rate_limit_per_minute, burst=self.rate_limit_burst,
                          anonymous_per_minute=self.rate_limit_anonymous_per_minute,
                          anonymous_burst=self.rate_limit_anonymous_burst,
                          trusted_proxies=parse_networks(self.trusted_proxies.split(",")))

    @property
    def database_name(self) -> str:
        return self.mongo_db or f"{self.namespace}_{self.SERVICE_NAME}"

    @property
    def port(self) -> int:
        return self.http_port if self.http_port is not None else self.DEFAULT_HTTP_PORT

    def topology(self) -> Topology:
        return Topology(namespace=self.namespace, replicas=self.stream_replicas)
