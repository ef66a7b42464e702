"""Fixtures of the notification service tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from puskesos_notification.testing import ProviderSink


@pytest.fixture
def sink() -> Iterator[ProviderSink]:
    """A provider on a free local port that creates one message per Idempotency-Key."""
    provider = ProviderSink().start()
    yield provider
    provider.stop()
