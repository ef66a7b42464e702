"""NATS request-reply commands for operators (what ``puskesos_distribution.cli`` sends).

Subjects: ``{ns}.commands.distribution.{name}.v1``. Every request carries an officer token;
changing a round needs the operator role, reading its status operator, coordinator or auditor.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from faststream.nats import NatsBroker
from puskesos_shared.auth import Officer, forbidden_role, officer_of
from puskesos_shared.commands import subscribe_command
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.topology import Topology

from .imports import Imports
from .requests import CloseRound, FinishImport, ImportChunk, OpenRound, Request, RoundRef, RoundStatusQuery
from .rounds import RoundOperations
from .settings import DistributionSettings

SERVICE = "distribution"
OPERATORS = (OfficerRole.OPERATOR,)
READERS = (OfficerRole.OPERATOR, OfficerRole.COORDINATOR, OfficerRole.AUDITOR)
Req = TypeVar("Req", bound=Request)


def authorize(token: str | None, settings: DistributionSettings, roles: tuple[OfficerRole, ...]) -> Officer:
    officer = officer_of(token, settings.auth_secret)
    if officer.role not in roles:
        raise forbidden_role(roles)
    return officer


def register_commands(broker: NatsBroker, topology: Topology, settings: DistributionSettings,
                      rounds: RoundOperations, imports: Imports) -> None:
    def serve(name: str, model: type[Req], roles: tuple[OfficerRole, ...],
              run: Callable[[Req, Officer], Awaitable[dict[str, Any]]]) -> None:
        async def handler(req: Req) -> dict[str, Any]:
            return await run(req, authorize(req.token, settings, roles))

        subscribe_command(broker, topology, service=SERVICE, name=name, request=model, handler=handler)

    serve("open_round", OpenRound, OPERATORS, rounds.open)
    serve("import_rows", ImportChunk, OPERATORS, imports.import_chunk)
    serve("finish_import", FinishImport, OPERATORS, imports.finish_import)
    serve("enqueue_assessed", RoundRef, OPERATORS, imports.enqueue_assessed)
    serve("close_round", CloseRound, OPERATORS, rounds.close)
    serve("round_status", RoundStatusQuery, READERS, lambda req, _: rounds.status(req))
