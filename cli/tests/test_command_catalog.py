"""The command catalog of the contract registry lists exactly the commands the services subscribe."""

from __future__ import annotations

import inspect
import re
from types import SimpleNamespace
from typing import Any
from unittest.mock import MagicMock

import puskesos_audit.app
import puskesos_distribution.commands
import puskesos_intake.commands
import puskesos_notification.commands
import puskesos_referral.commands
import puskesos_shared.resident_export
import pytest
from puskesos_cli.command_catalog import COMMANDS, SERVICES
from puskesos_shared.topology import Topology

Registered = set[tuple[str, str, type[Any]]]


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> Registered:
    """Runs the services' ``register_commands`` with a recording ``subscribe_command``."""
    seen: Registered = set()

    def record(broker: Any, topology: Topology, *, service: str, name: str, request: type[Any], handler: Any,
               version: int = 1) -> str:
        assert version == 1
        seen.add((service, name, request))
        return topology.command_subject(service, name, version)

    for module in (puskesos_distribution.commands, puskesos_intake.commands, puskesos_notification.commands,
                   puskesos_referral.commands, puskesos_shared.resident_export):
        monkeypatch.setattr(module, "subscribe_command", record)
    broker, topology = MagicMock(), Topology()
    puskesos_intake.commands.register_commands(broker, topology, MagicMock())
    puskesos_notification.commands.register_commands(broker, topology, MagicMock())
    puskesos_distribution.commands.register_commands(broker, topology, MagicMock(), MagicMock(), MagicMock())
    puskesos_referral.commands.register_commands(SimpleNamespace(broker=broker, topology=topology),  # type: ignore[arg-type]
                                                 MagicMock(), MagicMock(), None)
    return seen


def test_catalog_matches_what_the_services_register(registered: Registered) -> None:
    catalog = {(c.service, c.name, c.request) for c in COMMANDS}
    assert len(catalog) == len(COMMANDS)
    # audit registers in its app's configure step (it needs a store) and the other services serve their
    # export from app.py: both are checked from the source in the next test
    expected = {c for c in catalog if c[0] != "audit" and (c[1] != "export_resident" or c[0] == "intake")}
    assert registered == expected


def test_every_service_serves_its_export_and_audit_its_replay() -> None:
    for service in SERVICES:
        module = {"intake": puskesos_intake.commands}.get(service) or __import__(f"puskesos_{service}.app",
                                                                                  fromlist=["app"])
        assert re.search(rf'serve_export\([^)]*service="{service}"', inspect.getsource(module)), service
    source = inspect.getsource(puskesos_audit.app)
    assert re.search(r'service="audit", name="replay", request=ReplayCommand', source)
    assert ("audit", "replay") in {(c.service, c.name) for c in COMMANDS}
    assert {c.service for c in COMMANDS if c.name == "export_resident"} == set(SERVICES)
