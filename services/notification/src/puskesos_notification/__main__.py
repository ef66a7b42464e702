"""``python -m puskesos_notification`` / ``puskesos-notification``: runs the notification service until SIGTERM."""

from puskesos_shared.service import run_service

from .app import create_app
from .settings import NotificationSettings


def main() -> None:
    run_service(create_app, NotificationSettings())  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
