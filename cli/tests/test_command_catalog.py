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
import puskesos_notification.feeds.commands
import puskesos_referral.commands
import puskesos_shared.resident_export
import puskesos_shared.service
import pytest
from puskesos_cli.command_catalog import COMMANDS, SERVICES
from puskesos_shared.messaging.redrive_service import REDRIVE_COMMAND, RedriveRequest
from puskesos_shared.topology import Topology

Registered = set[tuple[str, str, type[Any]]]


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> Registered:
    """Runs the services' ``register_commands`` with a recording ``subscribe_command``."""
    seen: Registered = set()
    scoped: set[tuple[str, str, type[Any], str]] = set()

    def record(broker: Any, topology: Topology, *, service: str, name: str, request: type[Any], handler: Any,
               version: int = 1, every_replica: bool = False) -> str:
        assert version == 1
        seen.add((service, name, request))
        return topology.command_subject(service, name, version)

    def record_scoped(broker: Any, topology: Topology, *, service: str, name: str, request: type[Any],
                      handler: Any, parameter: str, version: int = 1) -> str:
        assert version == 1
        scoped.add((service, name, request, parameter))
        return f"{topology.command_subject(service, name, version)}.*"

    for module in (puskesos_distribution.commands, puskesos_intake.commands, puskesos_notification.commands,
                   puskesos_notification.feeds.commands, puskesos_referral.commands, puskesos_shared.resident_export):
        monkeypatch.setattr(module, "subscribe_command", record)
    monkeypatch.setattr(puskesos_referral.commands, "subscribe_scoped_command", record_scoped)
    broker, topology = MagicMock(), Topology()
    puskesos_intake.commands.register_commands(broker, topology, MagicMock())
    puskesos_notification.commands.register_commands(broker, topology, MagicMock())
    puskesos_notification.feeds.commands.register_feed_commands(broker, topology, MagicMock())
    puskesos_distribution.commands.register_commands(broker, topology, MagicMock(), MagicMock(), MagicMock())
    puskesos_referral.commands.register_commands(SimpleNamespace(broker=broker, topology=topology),  # type: ignore[arg-type]
                                                 MagicMock(), MagicMock(), None)
    # a scoped command (a last token saying on whose behalf) must be declared with its parameter
    catalog_scoped = {(c.service, c.name, c.request, c.parameter) for c in COMMANDS if c.parameter}
    assert scoped == catalog_scoped
    return seen | {(service, name, request) for service, name, request, _ in scoped}


def test_catalog_matches_what_the_services_register(registered: Registered) -> None:
    catalog = {(c.service, c.name, c.request) for c in COMMANDS}
    assert len(catalog) == len(COMMANDS)
    # audit registers in its app's configure step (it needs a store) and the other services serve their
    # export from app.py: both are checked from the source in the next test; the shared runtime serves
    # redrive for every service (the test after it)
    expected = {c for c in catalog if c[0] != "audit" and (c[1] != "export_resident" or c[0] == "intake")
                and c[1] != REDRIVE_COMMAND}
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


def test_the_runtime_serves_redrive_for_every_service() -> None:
    source = inspect.getsource(puskesos_shared.service.create_service_app)
    assert "serve_redrive(runtime)" in source
    assert {(c.service, c.request) for c in COMMANDS if c.name == REDRIVE_COMMAND} == {
        (service, RedriveRequest) for service in SERVICES}
