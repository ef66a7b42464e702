"""Markers of the deploy tests (registered here: the root pyproject belongs to the lead)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "runbook: runs the runbook's non-cluster commands (--help of each); run it late, once every "
        "service's CLI exists: `pytest -m runbook tests/deploy`",
    )
