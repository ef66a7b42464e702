"""``python -m puskesos_cli.scenario.referral_clock``: the referral service on a movable clock.

Exactly ``python -m puskesos_referral`` except for the clock (see ``clock``); the offset file
is ``PUSKESOS_DEMO_CLOCK_FILE`` (without it the clock is the real one).
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

from puskesos_referral.app import create_app
from puskesos_referral.settings import ReferralSettings
from puskesos_shared.service import run_service

from .clock import ShiftedClock
from .env import CLOCK_FILE_ENV


def main() -> None:
    path = os.environ.get(CLOCK_FILE_ENV)
    clock = ShiftedClock(Path(path) if path else None)
    run_service(partial(create_app, clock=clock), ReferralSettings())


if __name__ == "__main__":
    main()
