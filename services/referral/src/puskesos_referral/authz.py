"""Who may do what: roles per action, scopes by village, kecamatan or regency (``puskesos_shared.auth``)."""

from __future__ import annotations

from puskesos_shared.auth import Officer, forbidden_role, officer_of, outside_scope
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.contracts.referral import EscalationLevel
from puskesos_shared.regions import regency_of
from pydantic import SecretStr

R = OfficerRole
ASSESS = frozenset({R.ASSESSOR})
REFER = frozenset({R.ASSESSOR})
CLOSE = frozenset({R.ASSESSOR, R.COORDINATOR})
RECORD_RESPONSE = frozenset({R.ASSESSOR, R.BACK_OFFICE, R.COORDINATOR})
READ = frozenset(OfficerRole)
PUBLISH_RULES = frozenset({R.OPERATOR})
#: Who acts on an escalation (acknowledge, resolve), by the level it reached: the kecamatan's TKSK
#: coordinator, the Dinas Sosial's operators. Their scope must cover the case's village.
ACT_ON_ESCALATION = {EscalationLevel.KECAMATAN: frozenset({R.COORDINATOR}),
                     EscalationLevel.DINAS_SOSIAL: frozenset({R.OPERATOR})}
ESCALATION_ACTORS = frozenset(role for roles in ACT_ON_ESCALATION.values() for role in roles)
#: The escalation level an officer's list shows by default (any other officer: every level).
ESCALATION_LEVEL_OF = {R.COORDINATOR: EscalationLevel.KECAMATAN, R.OPERATOR: EscalationLevel.DINAS_SOSIAL}


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


def require_escalation_role(officer: Officer, level: EscalationLevel) -> None:
    """The officer's role acts on escalations that reached ``level``."""
    roles = ACT_ON_ESCALATION.get(level, frozenset())
    if officer.role not in roles:
        raise forbidden_role(roles or ESCALATION_ACTORS)


def officer_from_token(token: str, secret: SecretStr | None) -> Officer:
    """The officer of a token sent in a NATS command body."""
    return officer_of(token, secret)
