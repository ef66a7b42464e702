"""``python -m puskesos_audit`` / ``puskesos-audit``: runs the audit service until SIGTERM."""

from puskesos_shared.service import run_service

from .app import create_app
from .settings import AuditSettings


def main() -> None:
    run_service(create_app, AuditSettings())  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
