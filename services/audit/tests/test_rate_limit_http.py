"""The shared HTTP rate limit, as a real service app applies it (settings -> create_service_app)."""

from __future__ import annotations

import pytest
from audit_testkit import auth, settings_for
from nats.js import JetStreamContext
from puskesos_audit.app import create_app
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.testing.app import running_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


async def test_the_service_limits_each_officer_and_anonymous_callers(
    nats_url: str, mongo_url: str, namespace: str, db_prefix: str, jetstream: JetStreamContext,
) -> None:
    settings = settings_for(nats_url, mongo_url, namespace, db_prefix, rate_limit_per_minute=0.01, rate_limit_burst=3,
                            rate_limit_anonymous_per_minute=0.01, rate_limit_anonymous_burst=2)
    async with running_app(create_app(settings)) as http:
        auditor = auth()
        assert [(await http.get("/audit/status", headers=auditor)).status_code for _ in range(3)] == [200] * 3
        refused = await http.get("/audit/status", headers=auditor)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 5000  # 1 per 100 min
        assert refused.json()["code"] == "rate_limited"
        assert refused.headers["x-content-type-options"] == "nosniff"
        # another officer has a bucket of its own
        assert (await http.get("/audit/status", headers=auth(OfficerRole.OPERATOR))).status_code == 403
        # no token: the client address pays
        assert [(await http.get("/audit/status")).status_code for _ in range(3)] == [401, 401, 429]
        for _ in range(10):  # probes and scrapes are never limited
            assert (await http.get("/health/live")).status_code == 200
        metrics = (await http.get("/metrics")).text
        assert 'puskesos_http_rate_limited_total{kind="officer"}' in metrics
        assert 'puskesos_http_rate_limited_total{kind="ip"}' in metrics
