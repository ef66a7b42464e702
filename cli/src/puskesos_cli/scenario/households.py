"""Pendataan: the back office of every kelurahan registers its households; the officers' directory."""

from __future__ import annotations

from collections import Counter

from .context import Scenario
from .http import run_pool
from .officers import directory_entries
from .population import Family


async def register_households(s: Scenario) -> None:
    """Every family through ``POST /households`` with its own kelurahan's back-office token."""

    async def register(family: Family) -> str:
        result = await s.intake.post("/households", family.registration(),
                                     headers=s.officers.back_office(family.village_code))
        return str(result["outcome"])

    outcomes, seconds = await run_pool(s.families, register, concurrency=s.options.concurrency, console=s.console,
                                       label="households registered")
    counts = Counter(outcomes)
    rate = len(outcomes) / seconds if seconds else 0.0
    s.facts["households"] = len(outcomes)
    s.facts["members"] = sum(len(f.members) for f in s.families)
    s.facts["registration_rate"] = round(rate, 1)
    detail = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    s.say(f"  {len(outcomes):,} households ({s.facts['members']:,} people with valid NIKs) in {len(s.villages)} "
          f"kelurahan/desa: {detail}; {rate:,.0f} registrations/s over HTTP")


async def publish_directory(s: Scenario) -> None:
    """Officers' mobile numbers (notification service directory): escalations and failed payouts reach them."""
    entries = directory_entries(s.villages, s.options.regency, s.options.seed)
    headers = s.officers.operator()

    async def put(entry: tuple[str, dict[str, object]]) -> None:
        officer_id, body = entry
        await s.notification.call("PUT", f"/notifications/officers/{officer_id}", headers=headers, json=body)

    await run_pool(entries, put, concurrency=s.options.concurrency, console=s.console, label="officers in directory")
    s.facts["officers"] = len(entries)
