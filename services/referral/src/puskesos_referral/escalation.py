"""Background loops of every replica: SLA escalation (each escalation claimed once) and finishing pending changes."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from .metrics import ESCALATION_SWEEPS
from .service import ReferralService

log = structlog.get_logger("puskesos.referral.escalation")


async def run_escalation_loop(service: ReferralService, interval_seconds: float, batch: int,
                              stats: dict[str, Any]) -> None:
    """Runs until cancelled; ``stats`` counts sweeps and escalations won by this replica."""
    while True:
        try:
            stats["escalated"] = stats.get("escalated", 0) + await service.escalate_overdue(batch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the loop must outlive a database hiccup
            log.warning("escalation_sweep_failed", error=f"{type(exc).__name__}: {exc}")
        stats["sweeps"] = stats.get("sweeps", 0) + 1
        ESCALATION_SWEEPS.inc()
        await asyncio.sleep(interval_seconds)


async def run_pending_loop(service: ReferralService, interval_seconds: float) -> None:
    """Runs until cancelled: at start and every ``interval_seconds``, finishes unpublished changes."""
    while True:
        try:
            finished = await service.finish_pending()
            if finished:
                log.info("pending_changes_finished", changes=finished)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("pending_sweep_failed", error=f"{type(exc).__name__}: {exc}")
        await asyncio.sleep(interval_seconds)
