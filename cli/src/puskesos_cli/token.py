"""``puskesos token``: issue an officer token for the local stack (development and demos)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from puskesos_shared.auth import Officer, issue_token
from puskesos_shared.contracts.primitives import OfficerRole

from .stack import auth_secret


def token(
    officer_id: Annotated[str, typer.Option("--officer", help="Officer id")],
    role: Annotated[OfficerRole, typer.Option(help="Role")],
    scope: Annotated[list[str], typer.Option(help="Village, kecamatan or regency code; repeat for more")],
    hours: Annotated[float, typer.Option(help="Validity in hours")] = 8.0,
) -> None:
    """Print a signed token for an officer, valid against the local stack's services."""
    officer = Officer(officer_id=officer_id, role=role, scope=tuple(scope))
    print(issue_token(officer, auth_secret(), ttl=dt.timedelta(hours=hours)))
