"""App factory of the notification service: the composition root. Nothing connects at import."""

from fastapi import FastAPI
from puskesos_shared.service import ServiceRuntime, create_service_app

from .settings import NotificationSettings


async def configure(runtime: ServiceRuntime) -> None:
    """Indexes, subscribers and outbox collections of the service (none yet)."""


def create_app(settings: NotificationSettings | None = None) -> FastAPI:
    return create_service_app("notification", settings or NotificationSettings(), configure=configure)
