"""Test-only fault injection: a process armed with ``PUSKESOS_INTAKE_FAULT=<point>`` dies at that point.

It exists to prove crash safety with real processes (SIGKILL-like exit, no cleanup, no flush):
``crash_after_write`` ends the process right after the first write that stored events in an
outbox and before anything is published; ``crash_after_transfer_out`` right after a transfer
took the member out of the first household. Unset in every real deployment.
"""

from __future__ import annotations

import os

import structlog

log = structlog.get_logger("puskesos.intake.faults")


class Faults:
    def __init__(self, armed: str | None) -> None:
        self.armed = armed or None
        if self.armed:
            log.warning("fault_injection_armed", point=self.armed)

    def point(self, name: str) -> None:
        """Exits the process at once (status 137, like SIGKILL) when ``name`` is the armed point."""
        if self.armed == name:
            log.warning("fault_injected", point=name)
            os._exit(137)
