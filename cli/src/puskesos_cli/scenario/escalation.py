"""A few working days later: the referral service's SLA loop escalates the cases left open past their deadline.

The referral service's clock moves forward (``clock.write_offset``); the scenario then waits
until every open case whose deadline has passed on the new date went up to the kecamatan
coordinator (TKSK). Nothing here escalates anything itself: the service does, on its own loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import Counter
from typing import Any

import lokal

from .casework import case_details
from .clock import write_offset
from .context import Scenario

WIB = dt.timezone(dt.timedelta(hours=7))
ESCALATION_TIMEOUT = 120.0


def _escalated_or_not_due(detail: dict[str, Any], today: dt.date) -> bool:
    if not detail or detail.get("status") == "closed":
        return True
    level_due = dt.date.fromisoformat(str(detail["level_due_on"]))
    return detail.get("level") != "village" or level_due >= today


async def days_later(s: Scenario) -> None:
    today = dt.datetime.now(WIB).date()
    later = lokal.add_working_days(today, s.options.days_later)
    write_offset(s.env.clock_file, later - today)
    s.facts["days_later"] = {"from": today.isoformat(), "to": later.isoformat(), "working_days": s.options.days_later}
    s.say(f"  the referral service's clock moves from {today:%a %d %b} to {later:%a %d %b %Y} "
          f"({s.options.days_later} working days later)")
    open_cases = [w for w in s.complaints if not w.closed]
    deadline = time.monotonic() + ESCALATION_TIMEOUT
    while True:
        details = await case_details(s, open_cases)
        waiting = [d for d in details if not _escalated_or_not_due(d, later)]
        if not waiting:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(waiting)} overdue cases were not escalated within {ESCALATION_TIMEOUT:.0f}s")
        await asyncio.sleep(0.5)
    levels = Counter(str(d.get("level")) for d in details if d and d.get("status") != "closed")
    escalations = sum(len(d.get("escalations") or ()) for d in details if d)
    s.facts["escalations"] = escalations
    s.facts["open_cases_by_level"] = dict(levels)
    s.say(f"  {len(open_cases)} cases still open: " + ", ".join(f"{n} at {lvl}" for lvl, n in levels.most_common())
          + f"; {escalations} escalations (SLA breaches and referrals rejected twice)")
