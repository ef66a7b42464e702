"""App factory of the referral service: the composition root. Nothing connects at import."""

from fastapi import FastAPI
from puskesos_shared.service import ServiceRuntime, create_service_app

from .settings import ReferralSettings


async def configure(runtime: ServiceRuntime) -> None:
    """Indexes, subscribers and outbox collections of the service (none yet)."""


def create_app(settings: ReferralSettings | None = None) -> FastAPI:
    return create_service_app("referral", settings or ReferralSettings(), configure=configure)
