"""The officers of the scenario and their tokens.

Every kelurahan/desa has a front office, a back office and an assessor (scope: the village);
every kecamatan a TKSK coordinator; the regency's Dinas Sosial an operator (runs the BLT round)
and an auditor. Tokens are signed with the stack's secret, as the services expect.
"""

from __future__ import annotations

import datetime as dt
import random
from functools import cache
from typing import Any

from puskesos_shared.auth import Officer, issue_token
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.regions import district_of, village_digits

TOKEN_TTL = dt.timedelta(hours=12)


class Officers:
    def __init__(self, secret: str, regency: str) -> None:
        self.secret, self.regency = secret, regency

    @cache  # noqa: B019 - one Officers per run; tokens are reused for its whole length
    def token(self, role: OfficerRole, scope: str) -> str:
        officer = Officer(officer_id=officer_id(role, scope), role=role, scope=(scope,))
        return issue_token(officer, self.secret, ttl=TOKEN_TTL)

    def headers(self, role: OfficerRole, scope: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, scope)}"}

    def back_office(self, village: str) -> dict[str, str]:
        return self.headers(OfficerRole.BACK_OFFICE, village)

    def front_office(self, village: str) -> dict[str, str]:
        return self.headers(OfficerRole.FRONT_OFFICE, village)

    def assessor(self, village: str) -> dict[str, str]:
        return self.headers(OfficerRole.ASSESSOR, village)

    def coordinator(self, village: str) -> dict[str, str]:
        return self.headers(OfficerRole.COORDINATOR, district_of(village))

    def operator(self) -> dict[str, str]:
        return self.headers(OfficerRole.OPERATOR, self.regency)

    def auditor(self) -> dict[str, str]:
        return self.headers(OfficerRole.AUDITOR, self.regency)


def officer_id(role: OfficerRole, scope: str) -> str:
    short = {OfficerRole.FRONT_OFFICE: "fo", OfficerRole.BACK_OFFICE: "bo", OfficerRole.ASSESSOR: "as",
             OfficerRole.COORDINATOR: "tksk", OfficerRole.OPERATOR: "dinsos-op", OfficerRole.AUDITOR: "auditor"}
    return f"{short[role]}-{village_digits(scope)}"


def directory_entries(villages: tuple[str, ...], regency: str, seed: int) -> list[tuple[str, dict[str, Any]]]:
    """(officer id, directory entry) for every officer who must hear about escalations and failed payouts."""
    rng = random.Random(f"{seed}:officers")  # noqa: S311 - synthetic phone numbers
    entries: list[tuple[str, dict[str, Any]]] = []

    def add(role: OfficerRole, scope: str) -> None:
        phone = f"+62812{rng.randint(10_000_000, 99_999_999)}"
        entries.append((officer_id(role, scope), {"phone": phone, "role": role.value, "scope": [scope]}))

    for village in villages:
        for role in (OfficerRole.FRONT_OFFICE, OfficerRole.BACK_OFFICE, OfficerRole.ASSESSOR):
            add(role, village)
    for district in sorted({district_of(v) for v in villages}):
        add(OfficerRole.COORDINATOR, district)
    add(OfficerRole.OPERATOR, regency)
    return entries
