from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from faststream.nats import NatsBroker
from nats.js import JetStreamContext


@pytest_asyncio.fixture
async def broker(nats_url: str, jetstream: JetStreamContext) -> AsyncIterator[NatsBroker]:
    """A connected FastStream broker on the test's server (``jetstream``: its streams exist first)."""
    b = NatsBroker(nats_url)
    await b.connect()
    yield b
    await b.stop()
