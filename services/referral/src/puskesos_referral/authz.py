"""Who may do what: roles per action, scopes by village, kecamatan or regency (``puskesos_shared.auth``)."""

from __future__ import annotations

from puskesos_shared.auth import Officer, forbidden_role, officer_of, outside_scope
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
        raise forbidden_role(roles)


def require_scope(officer: Officer, code: str) -> None:
    """The officer's scope covers a village (dotted level-4 code) or a kecamatan (level-3 code)."""
    if code.count(".") == 3:
        covered = officer.covers(code)
    else:
        covered = code in officer.scope or regency_of(code) in officer.scope
    if not covered:
        raise outside_scope("the village or kecamatan")


def officer_from_token(token: str, secret: SecretStr | None) -> Officer:
    """The officer of a token sent in a NATS command body."""
    return officer_of(token, secret)
