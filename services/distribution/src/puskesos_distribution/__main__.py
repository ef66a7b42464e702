"""``python -m puskesos_distribution`` / ``puskesos-distribution``: runs the distribution service until SIGTERM."""

from puskesos_shared.service import run_service

from .app import create_app
from .settings import DistributionSettings


def main() -> None:
    run_service(create_app, DistributionSettings())  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
