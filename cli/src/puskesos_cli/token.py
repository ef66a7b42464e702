"""``puskesos token``: issue an officer token for the local stack (development and demos)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from puskesos_shared.auth import Officer, issue_token
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.regions import check_scope_code

from .stack import auth_secret

#: Longest validity of a local token: a working week.
MAX_HOURS = 24 * 7


def scope_codes(codes: list[str] | None) -> list[str] | None:
    """``--scope`` values checked against the Kemendagri codes (typer callback: names the option)."""
    try:
        return [check_scope_code(code) for code in codes] if codes is not None else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def officer_id_option(value: str | None) -> str | None:
    if value is not None and not 1 <= len(value.strip()) <= 100:
        raise typer.BadParameter("an officer id has 1 to 100 characters")
    return value.strip() if value is not None else None


def token(
    officer_id: Annotated[str, typer.Option("--officer", help="Officer id", callback=officer_id_option)],
    role: Annotated[OfficerRole, typer.Option(help="Role")],
    scope: Annotated[list[str], typer.Option(help="Village, kecamatan or regency code; repeat for more",
                                             callback=scope_codes)],
    hours: Annotated[float, typer.Option(min=0.01, max=MAX_HOURS, help="Validity in hours")] = 8.0,
) -> None:
    """Print a signed token for an officer, valid against the local stack's services."""
    officer = Officer(officer_id=officer_id, role=role, scope=tuple(scope))
    print(issue_token(officer, auth_secret(), ttl=dt.timedelta(hours=hours)))
