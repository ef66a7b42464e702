"""A resident's data export across real service processes (UU PDP right of access).

intake, referral and distribution run as processes on one namespace; notification and audit are
deliberately not started, so the export must name them as unavailable instead of coming back
silently incomplete. The resident's data is made through the services' public edges: the
household and a complaint at intake (HTTP), the case opened by referral from the complaint, an
allocation by distribution from an imported recipient list (NATS commands). The CLI writes the
export to a 0600 file. Every wait polls a condition; nothing sleeps for correctness.
"""

from __future__ import annotations

import asyncio
import json
import stat
import uuid
from collections.abc import AsyncIterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
import pytest_asyncio
from puskesos_cli.main import app as cli
from puskesos_distribution.workqueue import work_stream
from puskesos_shared.auth import Officer, issue_token
from puskesos_shared.commands import send_command
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.testing.processes import TEST_AUTH_SECRET, ServiceProcess
from puskesos_shared.testing.servers import ServerHandle
from puskesos_shared.topology import Topology
from pymongo import AsyncMongoClient
from typer.testing import CliRunner

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

RUNNING = ("intake", "referral", "distribution")
READY_TIMEOUT = 120.0  # three interpreters importing FastAPI, FastStream and PyMongo on two shared cores
VILLAGE = "35.73.01.1001"  # Balearjosari, Blimbing, Kota Malang
OTHER_VILLAGE = "35.73.02.1001"  # another kecamatan
HEAD, SPOUSE = "3573010505800007", "3573014101850008"
KK = "3573010502200077"


def bearer(role: OfficerRole, *scope: str, officer_id: str) -> dict[str, str]:
    token = issue_token(Officer(officer_id=officer_id, role=role, scope=scope), TEST_AUTH_SECRET)
    return {"Authorization": f"Bearer {token}"}


BACK = bearer(OfficerRole.BACK_OFFICE, VILLAGE, officer_id="bo-balearjosari")
FRONT = bearer(OfficerRole.FRONT_OFFICE, VILLAGE, officer_id="fo-balearjosari")
ELSEWHERE = bearer(OfficerRole.BACK_OFFICE, OTHER_VILLAGE, officer_id="bo-elsewhere")
OPERATOR = issue_token(Officer(officer_id="op-malang", role=OfficerRole.OPERATOR, scope=("35.73",)), TEST_AUTH_SECRET)

HOUSEHOLD = {
    "kk_number": KK,
    "address": {"village_code": VILLAGE, "street": "Jl. Raya Balearjosari", "rt": "003", "rw": "002"},
    "members": [
        {"nik": HEAD, "name": "Slamet Riyadi", "birth_date": "1980-05-05", "sex": "L",
         "relationship": "kepala_keluarga"},
        {"nik": SPOUSE, "name": "Siti Aminah", "birth_date": "1985-01-01", "sex": "P", "relationship": "pasangan"},
    ],
    "socio_economic": {"monthly_income": 900_000, "floor": "tanah", "wall": "bambu", "roof": "seng",
                       "water": "sumur_tidak_terlindungi", "electricity": "450VA", "assets": [], "dependants": 2},
    "phone": "+6281234567001",
}


class Stack:
    def __init__(self, namespace: str, processes: dict[str, ServiceProcess], nats_url: str) -> None:
        self.namespace, self.processes, self.nats_url = namespace, processes, nats_url

    @property
    def intake(self) -> ServiceProcess:
        return self.processes["intake"]

    @property
    def topology(self) -> Topology:
        return Topology(namespace=self.namespace)


@pytest_asyncio.fixture(scope="module")
async def stack(nats_server: ServerHandle, mongo_server: ServerHandle,
                tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    namespace = f"t{uuid.uuid4().hex[:12]}"
    log_dir = tmp_path_factory.mktemp("export-logs")
    # the other services' parts get a generous wait: five processes share two cores
    extra = {"intake": {"PUSKESOS_INTAKE_EXPORT_TIMEOUT_SECONDS": "30"}}
    processes = {name: ServiceProcess.for_service(name, nats_url=nats_server.url, mongo_url=mongo_server.url,
                                                  namespace=namespace, db_prefix=namespace, log_dir=log_dir,
                                                  extra_env=extra.get(name))
                 for name in RUNNING}
    try:
        for process in processes.values():
            process.start()
        await asyncio.gather(*(asyncio.to_thread(p.wait_ready, READY_TIMEOUT) for p in processes.values()))
        yield Stack(namespace, processes, nats_server.url)
    finally:
        for process in processes.values():
            process.stop()
        nc = await nats.connect(nats_server.url, name="pytest-cleanup")
        try:
            for config in Topology(namespace=namespace).stream_configs():
                with suppress(Exception):
                    await nc.jetstream().delete_stream(config.name or "")
            with suppress(Exception):
                await nc.jetstream().delete_stream(work_stream(Topology(namespace=namespace)))
        finally:
            await nc.close()
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_server.url)
        try:
            for name in await client.list_database_names():
                if name.startswith(namespace):
                    await client.drop_database(name)
        finally:
            await client.close()


async def wait_until(check: Any, *, timeout: float, what: str) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.2)


async def make_the_residents_data(stack: Stack, http: httpx.AsyncClient) -> None:
    registered = await http.post("/households", json=HOUSEHOLD, headers=BACK)
    assert registered.status_code in (200, 201), registered.text
    complaint = {"category": "aid_not_received", "channel": "walk_in", "urgency": "normal",
                 "description": "Belum menerima bantuan BLT tahun ini.", "village_code": VILLAGE,
                 "complainant": {"nik": HEAD}}
    filed = await http.post("/complaints", json=complaint, headers={**FRONT, "Idempotency-Key": "e2e-export-1"})
    assert filed.status_code in (200, 201), filed.text
    nc = await nats.connect(stack.nats_url, name="pytest-export-operator")
    try:
        async def call(name: str, body: dict[str, Any]) -> dict[str, Any]:
            subject = stack.topology.command_subject("distribution", name)
            reply = await send_command(nc, subject, {**body, "token": OPERATOR}, timeout=60)
            assert reply.ok, reply.error
            return reply.result or {}

        await call("open_round", {"key": "malang-blt-export", "name": "BLT Kota Malang", "program": "BLT",
                                  "funding_source": "DBHCHT", "amount_per_family": 300_000, "budget_cap": 3_000_000,
                                  "eligibility_rule_version": "blt-eligibility@1", "period_start": "2026-11-01",
                                  "period_end": "2026-12-31"})
        row = {"kk_number": KK, "head_nik": HEAD, "head_name": "Slamet Riyadi", "village_code": VILLAGE,
               "account_number": "", "collection_point": "POS-357301"}
        imported = await call("import_rows", {"round": "malang-blt-export", "batch_id": str(uuid.uuid4()),
                                              "rows": [{"row": 2, "fields": row}]})
        assert imported["accepted"] == 1, imported
    finally:
        await nc.drain()


async def test_an_export_gathers_every_running_service_and_names_the_missing(stack: Stack, tmp_path: Path) -> None:
    async with httpx.AsyncClient(base_url=stack.intake.base_url, timeout=60) as http:
        await make_the_residents_data(stack, http)

        async def gathered() -> dict[str, Any] | None:
            response = await http.post("/residents/export", json={"nik": HEAD}, headers=BACK)
            assert response.status_code == 200, response.text
            doc: dict[str, Any] = response.json()
            sections = doc["sections"]
            case_open = bool(sections["referral"].get("records", {}).get("cases"))
            rounds = sections["distribution"].get("records", {}).get("rounds", [])
            allocated = any(d["outcome"] == "allocated" for r in rounds for d in r["decisions"])
            return doc if case_open and allocated else None

        doc = await wait_until(gathered, timeout=120, what="the case (referral) and the allocation (distribution)")

        # scope: the resident's village comes from the registry; an officer elsewhere is refused
        refused = await http.post("/residents/export", json={"nik": HEAD}, headers=ELSEWHERE)
        assert refused.status_code == 403 and refused.json()["code"] == "outside_scope"

    sections = doc["sections"]
    assert doc["complete"] is False and doc["unavailable"] == ["notification", "audit"]
    for missing in ("notification", "audit"):
        assert sections[missing] == {"error": "unavailable", "reason": "no_responders",
                                     "message": f"no {missing} instance is running to answer"}
    assert doc["subject"]["nik_masked"] == "3573********0007" and doc["subject"]["village_code"] == VILLAGE
    assert doc["subject"]["name_masked"] == "S*** R***"
    assert doc["requested_by"] == {"kind": "officer", "id": "bo-balearjosari", "role": "back_office"}

    intake = sections["intake"]["records"]
    assert [h["kk_number"] for h in intake["households"]] == [KK] and intake["households"][0]["you"]["nik"] == HEAD
    assert [c["complainant"]["nik"] for c in intake["complaints"]] == [HEAD]
    (case,) = sections["referral"]["records"]["cases"]
    assert case["relation"] == "subject" and case["subject_nik"] == HEAD
    assert case["case_number"] == intake["complaints"][0]["case_number"]
    (round_,) = sections["distribution"]["records"]["rounds"]
    assert round_["kk_number"] == KK and round_["name"] == "BLT Kota Malang"
    assert [h["you_are_head"] for h in sections["distribution"]["records"]["households"]] == [True]
    text = json.dumps(doc)
    assert SPOUSE not in text, text[max(0, text.find(SPOUSE) - 400):text.find(SPOUSE) + 50]

    # the CLI writes the same export to a file only its owner can read; incomplete: exit status 3
    out = tmp_path / "export.json"
    result = await asyncio.to_thread(CliRunner().invoke, cli, [
        "resident", "export", "--nik", HEAD, "--out", str(out), "--url", stack.intake.base_url,
        "--token", BACK["Authorization"].removeprefix("Bearer ")])
    assert result.exit_code == 3, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    written = json.loads(out.read_text())
    assert written["unavailable"] == ["notification", "audit"] and written["sections"]["referral"]["found"] is True
    exports = written["sections"]["intake"]["records"]["exports"]
    assert {e["outcome"] for e in exports} == {"exported", "outside_scope"}  # the access log, shown to the resident
    again = await asyncio.to_thread(CliRunner().invoke, cli, [
        "resident", "export", "--nik", HEAD, "--out", str(out), "--url", stack.intake.base_url,
        "--token", BACK["Authorization"].removeprefix("Bearer ")])
    assert again.exit_code == 2 and "--force" in again.output

    # the services logged who asked and what they found, never the NIK
    for process in stack.processes.values():
        assert HEAD not in process.log_text() and SPOUSE not in process.log_text()
    served = [r for r in stack.processes["referral"].log_records() if r.get("event") == "resident_export_served"]
    assert served and served[-1]["requested_by"] == "bo-balearjosari" and served[-1]["found"] is True

