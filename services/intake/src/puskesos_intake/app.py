"""App factory of the intake service: the composition root. Nothing connects at import."""

from fastapi import FastAPI
from puskesos_shared.service import ServiceRuntime, create_service_app

from .settings import IntakeSettings


async def configure(runtime: ServiceRuntime) -> None:
    """Indexes, subscribers and outbox collections of the service (none yet)."""


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    return create_service_app("intake", settings or IntakeSettings(), configure=configure)
