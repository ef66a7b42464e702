"""``python -m puskesos_intake`` / ``puskesos-intake``: runs the intake service until SIGTERM."""

from puskesos_shared.service import run_service

from .app import create_app
from .settings import IntakeSettings


def main() -> None:
    run_service(create_app, IntakeSettings())  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
