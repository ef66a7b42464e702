"""The operators' HTTP edge: the same operations as the commands, behind bearer tokens."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from puskesos_distribution.app import create_app
from puskesos_distribution.gateway import InMemoryGateway
from puskesos_distribution.sample_data import recipient_rows
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.testing.app import running_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def bearer(helpers: Any, role: OfficerRole = OfficerRole.OPERATOR) -> dict[str, str]:
    return {"Authorization": f"Bearer {helpers.token_for(role)}"}


async def test_a_round_over_http(settings_for: Any, helpers: Any, round_body: Any) -> None:
    gateway = InMemoryGateway()
    body = round_body("http-round")
    rows = [{"row": i + 2, "fields": r} for i, r in enumerate(recipient_rows(5, seed=4))]
    async with running_app(create_app(settings_for(), gateway=gateway)) as client:
        assert (await client.post("/rounds", json=body)).status_code == 401
        auditor = await client.post("/rounds", json=body, headers=bearer(helpers, OfficerRole.AUDITOR))
        assert auditor.status_code == 403
        invalid = await client.post("/rounds", json={**body, "budget_cap": "lots"}, headers=bearer(helpers))
        assert invalid.status_code == 422 and "lots" not in invalid.text
        opened = await client.post("/rounds", json=body, headers=bearer(helpers))
        assert opened.status_code == 201 and opened.json()["created"] is True
        batch = str(uuid.uuid4())
        imported = await client.post("/rounds/http-round/candidates", json={"batch_id": batch, "rows": rows},
                                     headers=bearer(helpers))
        assert imported.status_code == 200 and imported.json()["accepted"] == 5
        finished = await client.post(f"/rounds/http-round/imports/{batch}/finish",
                                     json={"total_rows": 5, "rejected_rows": 0}, headers=bearer(helpers))
        assert finished.json()["accepted"] == 5

        async def paid() -> bool:
            return len(gateway.payments) == 5

        await helpers.wait_until(paid, timeout=60, what="five payouts")
        status = await client.get("/rounds/http-round", headers=bearer(helpers, OfficerRole.AUDITOR))
        assert status.status_code == 200 and status.json()["candidates"] == 5
        assert status.json()["replicas"] == 1 and len(status.json()["instances"]) == 1  # this app, by presence
        assert (await client.get("/rounds/nope-round", headers=bearer(helpers))).status_code == 404
        assert (await client.get("/rounds/x", headers=bearer(helpers))).status_code == 422
        closed = await client.post("/rounds/http-round/close", headers=bearer(helpers))
        assert closed.status_code == 200, closed.text
        again = await client.post("/rounds/http-round/close", headers=bearer(helpers))
        late = await client.post("/rounds/http-round/candidates", json={"batch_id": batch, "rows": rows},
                                 headers=bearer(helpers))
    assert closed.json()["reconciliation"]["matched"] is True and closed.json()["totals"]["disbursed_count"] == 5
    assert again.json()["already_closed"] is True and again.json()["event_id"] == closed.json()["event_id"]
    assert late.status_code == 409 and late.json()["code"] == "round_not_open"
    assert len([e for e in await helpers.events("AidRoundClosed")]) == 1
