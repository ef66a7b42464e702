"""Bad commands and bad work items: a clear reason, nothing lost, the round goes on."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from puskesos_distribution.app import create_app
from puskesos_distribution.gateway import InMemoryGateway
from puskesos_distribution.sample_data import BAD_KINDS, recipient_rows
from puskesos_distribution.workqueue import work_stream, work_subject
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.testing.app import running_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def test_bad_commands_get_reasons_and_change_nothing(settings_for: Any, helpers: Any,
                                                           round_body: Any) -> None:
    key = "jember-apbd-2022"
    async with running_app(create_app(settings_for(), gateway=InMemoryGateway())):
        malformed = await helpers.command("open_round", b"{not json")
        assert (malformed.ok, malformed.error["code"]) == (False, "malformed_json")
        anonymous = await helpers.command("open_round", round_body(key), token="")
        assert anonymous.error["code"] == "unauthenticated"
        forged = await helpers.command("open_round", round_body(key), token=helpers.token_for()[:-4] + "AAAA")
        assert forged.error["code"] == "invalid_token"
        front_office = await helpers.command("open_round", round_body(key),
                                             token=helpers.token_for(OfficerRole.FRONT_OFFICE))
        assert front_office.error["code"] == "forbidden"
        inconsistent = await helpers.command("open_round", round_body(key, budget_cap=1000))
        assert inconsistent.error["code"] == "invalid_request"
        assert any(f["loc"] == ["budget_cap"] for f in inconsistent.error["fields"])  # the field is named
        wrong_types = await helpers.command("open_round", round_body(key, amount_per_family="banyak"))
        assert [f["loc"] for f in wrong_types.error["fields"]] == [["amount_per_family"]]
        assert "banyak" not in json.dumps(wrong_types.error)  # input is never echoed
        nowhere = await helpers.command("open_round", round_body(key, village_quotas=[
            {"village_code": "35.09.01.9999", "max_families": 3}]))
        assert nowhere.error["code"] == "invalid_request"
        unknown = await helpers.command("import_rows", {"round": "no-such-round", "batch_id": str(uuid.uuid4()),
                                                        "rows": [{"row": 2, "fields": {}}]})
        assert unknown.error["code"] == "unknown_round"
        status = await helpers.command("round_status", {"round": key})
        assert status.error["code"] == "unknown_round"  # none of the above opened it

        await helpers.ok("open_round", round_body(key))
        conflict = await helpers.command("open_round", round_body(key, amount_per_family=250_000))
        assert conflict.error["code"] == "conflict"
        too_many = await helpers.command("import_rows", {"round": key, "batch_id": str(uuid.uuid4()), "rows": [
            {"row": i, "fields": {}} for i in range(2, 1100)]})
        assert too_many.error["code"] in ("invalid_request", "payload_too_large")


async def test_every_bad_row_is_reported_with_its_column(settings_for: Any, helpers: Any, round_body: Any) -> None:
    rows = list(recipient_rows(60, seed=11, bad_every=5))  # 12 bad rows, two of each kind
    async with running_app(create_app(settings_for(), gateway=InMemoryGateway())):
        await helpers.ok("open_round", round_body("rows", budget_cap=300_000 * 100))
        result = await helpers.ok("import_rows", {"round": "rows", "batch_id": str(uuid.uuid4()),
                                                  "rows": [{"row": i + 2, "fields": r} for i, r in enumerate(rows)]})
        outside = await helpers.ok("import_rows", {"round": "rows", "batch_id": str(uuid.uuid4()),
                                                   "rows": [{"row": 2, "fields": rows[0]}]},
                                   token=helpers.token_for(scope=("35.10",)))
    assert result["accepted"] == 48
    columns = {kind: column for kind, column in BAD_KINDS}
    expected = [(5 * (i + 1) + 1, columns[BAD_KINDS[i % len(BAD_KINDS)][0]]) for i in range(12)]
    assert [(r["row"], r["column"]) for r in result["rejected"]] == expected
    reasons = " ".join(r["reason"] for r in result["rejected"])
    assert "issue_date" in reasons and "duplicate KK" in reasons and "Kemendagri" in reasons
    for row in rows:  # reasons never carry the values
        assert row["kk_number"] not in reasons and row["head_nik"] not in reasons
    assert outside["rejected"][0]["reason"] == "outside the scope of the importing officer"


async def test_a_poison_work_item_is_dead_lettered_and_the_round_goes_on(settings_for: Any, helpers: Any,
                                                                         round_body: Any, topology: Any) -> None:
    gateway = InMemoryGateway()
    async with running_app(create_app(settings_for(), gateway=gateway)):
        opened = await helpers.ok("open_round", round_body("poison"))
        js = helpers.nc.jetstream()
        subject = work_subject(topology, "allocate", uuid.UUID(opened["round_id"]))
        for n, body in enumerate([b"\xff\xfe not json", b'{"event_type": "AllocateCandidate", "schema_version": 9}',
                                  b'{"event_type": "AllocateCandidate", "schema_version": 1, "data": {}}']):
            await js.publish(subject, body, headers={"Nats-Msg-Id": f"poison-{n}"}, stream=work_stream(topology))
        rows = [{"row": i + 2, "fields": r} for i, r in enumerate(recipient_rows(5, seed=5))]
        await helpers.ok("import_rows", {"round": "poison", "batch_id": str(uuid.uuid4()), "rows": rows})

        async def paid() -> bool:
            return len(gateway.payments) == 5

        await helpers.wait_until(paid, timeout=60, what="five payouts")
        dead = await helpers.dead_letters()
    reasons = sorted(m.headers["Puskesos-Dlq-Reason"] for m in dead)
    assert len(reasons) == 3
    assert reasons[0].startswith("invalid message: AllocateCandidate v1 does not match its schema")
    assert "malformed JSON" in reasons[1] and "unknown schema_version 9" in reasons[2]
    assert {m.headers["Puskesos-Dlq-Consumer"] for m in dead} == {"distribution_allocate"}
    assert dead[0].data in (b"\xff\xfe not json",) or any(m.data == b"\xff\xfe not json" for m in dead)
