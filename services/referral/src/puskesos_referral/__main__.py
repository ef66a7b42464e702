"""``python -m puskesos_referral`` / ``puskesos-referral``: runs the referral service until SIGTERM."""

from puskesos_shared.service import run_service

from .app import create_app
from .settings import ReferralSettings


def main() -> None:
    run_service(create_app, ReferralSettings())  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
