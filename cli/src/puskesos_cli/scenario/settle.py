"""Waiting until every service has caught up with the stream: consumers drained, work done, audit appended.

"Caught up" is measured, not assumed: every durable consumer on the events stream has nothing
pending and nothing unacknowledged (notifications still waiting for a contact are
unacknowledged), the distribution work queue is empty, and the audit log's head is the
stream's last sequence with the trace index at the head's chunk. Two polls in a row must agree.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from .context import Scenario
from .http import progress_bar

SETTLE_TIMEOUT = 600.0


async def audit_status(s: Scenario) -> dict[str, Any]:
    return dict(await s.audit.get("/audit/status", headers=s.officers.auditor()))


async def settle(s: Scenario, *, timeout: float = SETTLE_TIMEOUT) -> dict[str, Any]:
    """Waits until everything has caught up, with a bar for the audit log and one for the consumers' backlog."""
    started = time.monotonic()
    quiet, peak = 0, 0
    with progress_bar(s.console) as progress:
        appended = progress.add_task("audit log appended (events)", total=None)
        consumed = progress.add_task("events waiting for consumers", total=None)
        while True:
            lag = await s.bus.lag()
            work = await s.bus.work_queued()
            audit = await audit_status(s)
            head = audit.get("head") or {}
            head_seq = int(head.get("seq") or 0)
            audit_behind = lag.stream_last_seq - head_seq
            index_behind = int(head.get("chunk", -1)) > int((audit.get("index") or {}).get("chunk", -1))
            busy = {name: n for name, n in lag.consumers.items() if n}
            backlog = sum(busy.values()) + work
            peak = max(peak, backlog)
            progress.update(appended, total=max(lag.stream_last_seq, head_seq, 1), completed=head_seq)
            progress.update(consumed, total=max(peak, 1), completed=peak - backlog,
                            description=_waiting(busy, work))
            if not busy and not work and audit_behind <= 0 and not index_behind:
                quiet += 1
                if quiet >= 2:
                    waited = round(time.monotonic() - started, 2)
                    return {"stream_last_seq": lag.stream_last_seq, "audit_head_seq": head.get("seq"),
                            "waited_seconds": waited}
            else:
                quiet = 0
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"not caught up after {timeout:.0f}s: consumers {busy}, work queue {work}, "
                                   f"audit {audit_behind} behind, index behind: {index_behind}")
            await asyncio.sleep(0.5)  # a refresh period; the loop ends on the state above


def _waiting(busy: dict[str, int], work: int) -> str:
    """Who still has events (or distribution work) to handle, the largest backlog first."""
    if not busy and not work:
        return "every consumer caught up"
    parts = [f"{name} {n:,}" for name, n in sorted(busy.items(), key=lambda item: -item[1])[:2]]
    if work:
        parts.append(f"distribution work {work:,}")
    return "waiting: " + ", ".join(parts)
