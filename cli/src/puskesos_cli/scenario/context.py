"""What every step of the scenario shares: options, the services' edges, officers, and what happened so far."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from rich.console import Console

from .bus import Bus
from .env import ScenarioEnv
from .http import Api
from .officers import Officers
from .population import Family

FULL_SCALE_RECIPIENTS = 63_335  # Kabupaten Jember's BLT DBHCHT recipients, November-December 2022
AMOUNT_PER_FAMILY = 300_000


@dataclass(frozen=True)
class ScenarioOptions:
    size: int = 600
    regency: str = "35.73"
    seed: int = 2022
    #: Families in the BLT round's recipient list: by default the poor families among the
    #: registered households; ``--full`` makes it 63,335.
    recipients: int | None = None
    complaint_share: float = 0.10
    concurrency: int = 12
    #: Working days the referral service's clock moves forward after the case work (escalations).
    days_later: int = 3
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])


@dataclass
class ComplaintWork:
    """One complaint the front office files, and what becomes of its case."""

    index: int
    village_code: str
    category: str
    urgency: str
    channel: str
    body: dict[str, Any]
    family: Family | None
    complaint_id: str = ""
    case_number: str = ""
    #: False when intake answered with an existing complaint (the resident's open complaint of the
    #: same category, from an earlier run on a reused stack): its case is not ours to work.
    created: bool = True
    case_id: str = ""
    assessment: dict[str, Any] | None = None
    referrals: list[dict[str, Any]] = field(default_factory=list)
    plan: str = ""
    closed: bool = False
    outcome: str = ""


@dataclass
class Scenario:
    env: ScenarioEnv
    options: ScenarioOptions
    console: Console
    client: httpx.AsyncClient
    bus: Bus
    villages: tuple[str, ...]
    families: list[Family]
    recipients: list[Family]
    officers: Officers
    complaints: list[ComplaintWork] = field(default_factory=list)
    round_id: str = ""
    round_key: str = ""
    round_config: dict[str, Any] = field(default_factory=dict)
    round_closed: dict[str, Any] = field(default_factory=dict)
    budget_slots: int = 0
    quotas: dict[str, int] = field(default_factory=dict)
    import_summary: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)

    def api(self, service: str) -> Api:
        return Api(self.client, getattr(self.env.endpoints, service))

    @property
    def intake(self) -> Api:
        return self.api("intake")

    @property
    def referral(self) -> Api:
        return self.api("referral")

    @property
    def distribution(self) -> Api:
        return self.api("distribution")

    @property
    def notification(self) -> Api:
        return self.api("notification")

    @property
    def audit(self) -> Api:
        return self.api("audit")

    def say(self, text: str) -> None:
        self.console.print(text)

    @contextmanager
    def phase(self, name: str, title: str) -> Iterator[None]:
        self.console.rule(f"[bold]{title}")
        started = time.monotonic()
        try:
            yield
        finally:
            self.timings[name] = round(time.monotonic() - started, 2)
