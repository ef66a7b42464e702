"""Fixtures of the audit service's tests; helpers live in ``audit_testkit`` and ``audit_flow``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _drop_test_databases(request: pytest.FixtureRequest) -> None:
    """Tests on real servers get their databases dropped afterwards (the plugin's ``mongo_client`` does it)."""
    if "db_prefix" in request.fixturenames:
        request.getfixturevalue("mongo_client")
