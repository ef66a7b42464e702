"""Villages without a quota: the operator's explicit choice (rule blt-eligibility@2), and rule @1 kept for replays.

Three rounds over the same list, in-process against real NATS and the Mongo engine: 3 families in a
village with a quota of 2 and 3 in villages without one.
- excluded: 2 allocated, 1 ``quota_exhausted``, 3 ``no_village_quota`` (the true reason, counted per
  reason in the status and the closing totals; the import warns about the 3 rows);
- unlimited: the 3 share the budget: 5 allocated, 1 ``quota_exhausted``;
- rule @1 (rounds opened before the choice existed): the 3 are ``not_eligible``, as they were then.
Opening a round with quotas and no choice, a choice without quotas, or an unknown rule is refused.
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import pytest
from puskesos_distribution.app import create_app
from puskesos_distribution.gateway import InMemoryGateway
from puskesos_distribution.sample_data import recipient_rows
from puskesos_distribution.status_view import quota_choice
from puskesos_shared.testing.app import running_app

from services.distribution.tests.test_round_flow import chunk, settle

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

WITH_QUOTA = "35.09.01.2001"
OTHERS = ("35.73.01.1001", "35.73.02.1001")
QUOTAS = [{"village_code": WITH_QUOTA, "max_families": 2}]


def rows() -> list[dict[str, str]]:
    listed = list(recipient_rows(6, seed=11, village_codes=(WITH_QUOTA,)))
    for row, village in zip(listed[3:], (*OTHERS, OTHERS[0]), strict=True):
        row["village_code"] = village
    return listed


async def test_villages_without_quota_follow_the_rounds_choice(settings_for: Any, helpers: Any,
                                                               round_body: Any) -> None:
    rounds = {
        "excluded": round_body("blt-excluded", village_quotas=QUOTAS, villages_without_quota="excluded",
                               eligibility_rule_version="blt-eligibility@2"),
        "unlimited": round_body("blt-unlimited", village_quotas=QUOTAS, villages_without_quota="unlimited",
                                eligibility_rule_version="blt-eligibility@2"),
        "rule@1": round_body("blt-rule-one", village_quotas=QUOTAS, eligibility_rule_version="blt-eligibility@1"),
    }
    closed: dict[str, dict[str, Any]] = {}
    status: dict[str, dict[str, Any]] = {}
    imported: dict[str, dict[str, Any]] = {}
    async with running_app(create_app(settings_for(), gateway=InMemoryGateway())):
        for name, body in rounds.items():
            await helpers.ok("open_round", body)
            imported[name] = await helpers.ok("import_rows", {"round": body["key"], "batch_id": str(uuid.uuid4()),
                                                              "rows": chunk(rows())})
        for name, body in rounds.items():
            allocated = {"excluded": 2, "unlimited": 5, "rule@1": 2}[name]
            await settle(helpers, body["key"], allocated_plus_rejected=6, outcomes=allocated)

            async def counted(key: str = body["key"], name: str = name, rejected: int = 6 - allocated) -> bool:
                status[name] = await helpers.ok("round_status", {"round": key})  # live counters are flushed often
                return sum(v for k, v in status[name]["live"].items() if k.startswith("rejected_")) == rejected

            await helpers.wait_until(counted, timeout=30, what="the live counters")
            closed[name] = await helpers.ok("close_round", {"round": body["key"]})

        refusals = [
            round_body("no-choice", village_quotas=QUOTAS, eligibility_rule_version="blt-eligibility@2"),
            round_body("choice-no-quota", villages_without_quota="unlimited",
                       eligibility_rule_version="blt-eligibility@2"),
            round_body("rule-one-choice", village_quotas=QUOTAS, villages_without_quota="unlimited",
                       eligibility_rule_version="blt-eligibility@1"),
            round_body("unknown-rule", eligibility_rule_version="blt-eligibility@9"),
        ]
        replies = [await helpers.command("open_round", body) for body in refusals]

    by_reason = {name: c["totals"]["rejected_by_reason"] for name, c in closed.items()}
    assert by_reason == {"excluded": {"quota_exhausted": 1, "no_village_quota": 3},
                         "unlimited": {"quota_exhausted": 1},
                         "rule@1": {"quota_exhausted": 1, "not_eligible": 3}}
    assert {name: c["totals"]["allocated_count"] for name, c in closed.items()} == {
        "excluded": 2, "unlimited": 5, "rule@1": 2}
    assert all(c["reconciliation"]["matched"] for c in closed.values())
    # counted per reason while the round runs, and the choice is shown
    assert status["excluded"]["live"]["rejected_no_village_quota"] == 3
    # and per village: the quota village decided 2 allocated and 1 over its quota, the others rejected
    by_village = {row["village_code"]: row for row in status["excluded"]["by_village"]}
    assert {code: (row["allocated"], row["rejected"]) for code, row in by_village.items()} == {
        WITH_QUOTA: (2, 1), **{code: (0, 2 if code == OTHERS[0] else 1) for code in OTHERS}}
    assert status["excluded"]["config"]["villages_without_quota"] == "excluded"
    assert "every other village excluded (rejected as no_village_quota)" in quota_choice(status["excluded"]["config"])
    assert "unlimited" in quota_choice(status["unlimited"]["config"])
    assert "not_eligible" in quota_choice(status["rule@1"]["config"])
    assert quota_choice({"village_quotas": []}).startswith("none")
    # the import says which accepted rows the round will reject for want of a quota
    assert {name: r["without_quota"] for name, r in imported.items()} == {"excluded": 3, "unlimited": 0,
                                                                            "rule@1": 3}

    rejected = [e["data"] for e in await helpers.events("AidAllocationRejected")]
    reasons = Counter((r["basis"]["rule_set_version"], r["reason"]) for r in rejected)
    assert reasons[("blt-eligibility@2", "no_village_quota")] == 3
    assert reasons[("blt-eligibility@1", "not_eligible")] == 3
    no_quota = next(r for r in rejected if r["reason"] == "no_village_quota")
    assert "has no quota in this round" in no_quota["detail"] and no_quota["village_code"] in OTHERS

    assert all(not r.ok and r.error is not None and r.error["code"] == "invalid_request" for r in replies), replies
    said = [r.error["fields"][0]["msg"] for r in replies if r.error]
    assert "say what happens to every other village" in said[0]
    assert "needs at least one village quota" in said[1]
    assert "always excludes villages without a quota" in said[2]
    assert "unknown allocation rule" in said[3]
