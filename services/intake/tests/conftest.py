"""Fixtures of the intake service's tests; helpers live in ``intake_testkit`` (importable from here)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from nats.js import JetStreamContext

sys.path.insert(0, str(Path(__file__).parent))

from intake_testkit import Replica, replica, settings_for
from puskesos_intake.settings import IntakeSettings


@pytest.fixture
def settings(nats_url: str, mongo_url: str, namespace: str, db_prefix: str, jetstream: JetStreamContext,
             mongo_client: Any) -> IntakeSettings:
    """Settings on the test's own namespace and database (streams and databases are removed afterwards)."""
    return settings_for(nats_url, mongo_url, namespace, db_prefix)


@pytest_asyncio.fixture
async def app(settings: IntakeSettings) -> AsyncIterator[Replica]:
    async with replica(settings) as running:
        yield running
