"""A clock the scenario can move forward: "a few days later", without waiting a few days.

The referral service takes its clock as a parameter (``create_app(settings, clock=...)``); the
demo starts it through ``referral_clock``, whose clock is the real UTC time plus an offset
read from a small file. The scenario writes the offset (``advance``) to make open cases
overdue, so the service's own SLA escalation loop escalates them. Nothing else is changed.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

REREAD_SECONDS = 0.5


def write_offset(path: Path, offset: dt.timedelta) -> None:
    """Sets the clock's offset (atomically: the reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{offset.total_seconds():.3f}\n")
    os.replace(tmp, path)


def read_offset(path: Path) -> dt.timedelta:
    try:
        return dt.timedelta(seconds=float(path.read_text().strip() or 0))
    except (OSError, ValueError):
        return dt.timedelta(0)


class ShiftedClock:
    """``now()`` = UTC now + the file's offset (re-read at most every half second)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._offset = dt.timedelta(0)
        self._read_at = float("-inf")

    def __call__(self) -> dt.datetime:
        if self.path is not None and time.monotonic() - self._read_at > REREAD_SECONDS:
            self._offset = read_offset(self.path)
            self._read_at = time.monotonic()
        return dt.datetime.now(dt.UTC) + self._offset
