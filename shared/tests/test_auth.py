"""Officer tokens: signed, scoped, expiring; refused when expired, tampered or forged."""

from __future__ import annotations

import datetime as dt

import jwt
import pytest
from puskesos_shared.auth import AuthError, Officer, issue_token, verify_token
from puskesos_shared.contracts.primitives import OfficerRole

SECRET = "s" * 40
OTHER_SECRET = "o" * 40
NOW = dt.datetime(2026, 11, 26, 8, 0, tzinfo=dt.UTC)
OFFICER = Officer(officer_id="fo-balearjosari", role=OfficerRole.FRONT_OFFICE, scope=("35.73.01.1001",))


def test_a_token_round_trips() -> None:
    token = issue_token(OFFICER, SECRET, now=NOW, ttl=dt.timedelta(hours=1))
    assert verify_token(token, SECRET, now=NOW + dt.timedelta(minutes=59)) == OFFICER


def test_an_expired_token_is_refused() -> None:
    token = issue_token(OFFICER, SECRET, now=NOW - dt.timedelta(hours=2), ttl=dt.timedelta(hours=1))
    with pytest.raises(AuthError, match="expired"):
        verify_token(token, SECRET)


def test_a_tampered_token_is_refused() -> None:
    token = issue_token(OFFICER, SECRET)
    header, _payload, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["scope"] = ["35.73"]  # try to widen the scope to the whole city
    forged_payload = jwt.encode(claims, "x" * 40, algorithm="HS256").split(".")[1]
    with pytest.raises(AuthError, match="invalid token"):
        verify_token(f"{header}.{forged_payload}.{signature}", SECRET)


def test_a_token_signed_with_another_secret_is_refused() -> None:
    with pytest.raises(AuthError, match="invalid token"):
        verify_token(issue_token(OFFICER, OTHER_SECRET), SECRET)


def test_an_unsigned_token_is_refused() -> None:
    claims = {"iss": "puskesos", "sub": "x", "role": "auditor", "scope": ["35"], "iat": 0, "exp": 4102444800}
    none_token = jwt.encode(claims, key=None, algorithm="none")
    with pytest.raises(AuthError):
        verify_token(none_token, SECRET)


def test_claims_that_are_not_an_officer_are_refused() -> None:
    token = jwt.encode({"iss": "puskesos", "sub": "x", "role": "mayor", "scope": ["35"], "iat": 0,
                        "exp": 4102444800}, SECRET, algorithm="HS256")
    with pytest.raises(AuthError, match="claims"):
        verify_token(token, SECRET)


def test_scope_covers_villages_by_village_kecamatan_or_regency() -> None:
    village = Officer(officer_id="a", role=OfficerRole.FRONT_OFFICE, scope=("35.73.01.1001",))
    kecamatan = Officer(officer_id="b", role=OfficerRole.COORDINATOR, scope=("35.73.01",))
    regency = Officer(officer_id="c", role=OfficerRole.OPERATOR, scope=("35.73",))
    assert village.covers("35.73.01.1001")
    assert not village.covers("35.73.01.1002")
    assert kecamatan.covers("35.73.01.1002")
    assert not kecamatan.covers("35.73.02.1001")
    assert regency.covers("35.73.05.1003")
    assert not regency.covers("35.09.01.2001")


def test_short_secrets_are_refused() -> None:
    with pytest.raises(ValueError, match="32"):
        issue_token(OFFICER, "short")
