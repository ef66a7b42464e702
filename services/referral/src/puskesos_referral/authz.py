"""Who may do what: roles per action, scopes by village, kecamatan or regency (``puskesos_shared.auth``)."""

from __future__ import annotations

from puskesos_shared.auth import AuthError, Officer, verify_token
from puskesos_shared.commands import CommandError
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.regions import regency_of
from pydantic import SecretStr

R = OfficerRole
ASSESS = frozenset({R.ASSESSOR})
REFER = frozenset({R.ASSESSOR})
CLOSE = frozenset({R.ASSESSOR, R.COORDINATOR})
RECORD_RESPONSE = frozenset({R.ASSESSOR, R.BACK_OFFICE, R.COORDINATOR})
READ = frozenset(OfficerRole)
PUBLISH_RULES = frozenset({R.OPERATOR})


def require_role(officer: Officer, roles: frozenset[OfficerRole]) -> None:
    if officer.role not in roles:
        allowed = ", ".join(sorted(r.value for r in roles))
        raise CommandError("forbidden", f"role {officer.role.value} may not do this (needs {allowed})", status=403)


def require_scope(officer: Officer, code: str) -> None:
    """The officer's scope covers a village (dotted level-4 code) or a kecamatan (level-3 code)."""
    if code.count(".") == 3:
        covered = officer.covers(code)
    else:
        covered = code in officer.scope or regency_of(code) in officer.scope
    if not covered:
        raise CommandError("forbidden", f"{code} is outside this officer's scope", status=403)


def officer_from_token(token: str, secret: SecretStr | None) -> Officer:
    """The officer of a token sent in a NATS command body."""
    if secret is None:
        raise CommandError("auth_not_configured", "authentication is not configured on this service", status=503)
    try:
        return verify_token(token, secret.get_secret_value())
    except AuthError as exc:
        raise CommandError("unauthorized", str(exc), status=401) from None
