"""The bulk registry import end to end: ``puskesos registry`` (sample-csv, then the import) against a real
intake process on real NATS and the Mongo-compatible server; households, events, report, idempotency."""

from __future__ import annotations

import asyncio
import csv
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from intake_testkit import BACK, FRONT, SECRET, Replica, env_for, events_of, household
from nats.js import JetStreamContext
from puskesos_cli import registry as registry_cli
from puskesos_intake.domain.households import household_event_id, household_id
from puskesos_intake.domain.registry_rows import COLUMNS, rows_of
from puskesos_intake.settings import IntakeSettings
from puskesos_shared.auth import Officer, issue_token
from puskesos_shared.contracts.intake import Household, HouseholdRegistered
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.testing.processes import ServiceProcess
from puskesos_shared.topology import Topology
from typer.testing import CliRunner

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
GOOD = 40
REGENCY = "35.73"


def back_office_token() -> str:
    return issue_token(Officer(officer_id="bo-import", role=OfficerRole.BACK_OFFICE, scope=(REGENCY,)), SECRET)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def write_with_bad_rows(sample: Path, out: Path) -> tuple[list[dict[str, str]], dict[str, int]]:
    """The sample's households followed by bad ones; returns the good rows and the line of each bad case."""
    good = read_csv(sample)
    first_kk = [r for r in good if r["kk_number"] == good[0]["kk_number"]]
    bad: list[tuple[str, list[dict[str, str]]]] = []

    def bad_household(kk_serial: int, **changes: str) -> list[dict[str, str]]:
        row = {**first_kk[0], "kk_number": f"357301010120{kk_serial:04d}", "nik": f"357301010170{kk_serial:04d}",
               "birth_date": "1970-01-01", "sex": "L", **changes}
        return [row]

    bad.append(("invalid_nik", bad_household(9001, nik="3573013201709001")))  # day 32: no such date
    bad.append(("nik_in_other_household", bad_household(9002, nik=good[0]["nik"])))
    bad.append(("unknown_village", bad_household(9003, village_code="35.73.01.1999")))
    bad.append(("outside_scope", bad_household(9004, village_code="35.09.01.2001", nik="3509010101709004")))
    spouse = {**bad_household(9005)[0], "nik": "3573014101759005", "sex": "P", "birth_date": "1975-01-01",
              "relationship": "pasangan", "monthly_income": "1"}
    differing = [*bad_household(9005), spouse]
    bad.append(("household_columns_differ", differing))
    bad.append(("kk_repeated", [{**first_kk[0]}]))  # the sample's first KK again, not consecutive
    lines: dict[str, int] = {}
    line = len(good) + 1
    with out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(good)
        for code, rows in bad:
            lines[code] = line + 1 if code != "household_columns_differ" else line + 2
            writer.writerows(rows)
            line += len(rows)
        f.write("3573010101200001,35.73.01.1001,too,few\n")  # malformed
        lines["malformed_row"] = line + 1
    return good, lines


async def import_once(base: str, csv_path: Path, report: Path) -> registry_cli.Tally:
    return await registry_cli.import_file(base, back_office_token(), csv_path, report, in_flight=2)


async def test_registry_import_registers_reports_and_is_idempotent(
    settings: IntakeSettings, jetstream: JetStreamContext, topology: Topology, mongo_client: Any, tmp_path: Path
) -> None:
    sample = tmp_path / "sample.csv"
    result = CliRunner().invoke(registry_cli.app, ["sample-csv", "--households", str(GOOD), "--regency", REGENCY,
                                                   "--seed", "5", "--out", str(sample)])
    assert result.exit_code == 0, result.output
    csv_path, report = tmp_path / "registry.csv", tmp_path / "report.csv"
    good, lines = write_with_bad_rows(sample, csv_path)
    proc = ServiceProcess("puskesos_intake", log_path=tmp_path / "intake.log", env=env_for(settings)).start()
    try:
        await asyncio.to_thread(proc.wait_ready)
        tally = await import_once(proc.base_url, csv_path, report)
        assert (tally.registered, tally.updated, tally.unchanged) == (GOOD, 0, 0)
        assert tally.rejected_households == 5  # the bad households the service saw (the CLI caught two lines)

        rejected = read_csv(report)
        codes = {r["code"]: int(r["row"]) for r in rejected}
        assert codes.keys() == lines.keys() - {"invalid_nik"} | {"value_error"}
        assert codes["value_error"] == lines["invalid_nik"]
        assert {r["column"] for r in rejected if r["code"] == "value_error"} == {"nik"}
        for code in lines.keys() - {"invalid_nik"}:
            assert codes[code] == lines[code], code
        text = report.read_text() + proc.log_text()
        assert not re.search(r"(?<![0-9])[0-9]{16}(?![0-9])", text), "a NIK or KK in the report or the log"

        kks = sorted({r["kk_number"] for r in good})
        db = mongo_client[settings.database_name]
        assert await db["household_revisions"].count_documents({}) == GOOD
        assert await db["household_revisions"].count_documents({"_outbox.0": {"$exists": True}}) == 0
        events = await events_of(jetstream, topology, "HouseholdRegistered")
        assert sorted(str(e.event_id) for e in events) == sorted(
            str(household_event_id(household_id(kk), 1)) for kk in kks)
        assert all(isinstance(e, HouseholdRegistered) and e.data.revision == 1 for e in events)

        headers = {"Authorization": f"Bearer {back_office_token()}"}
        async with httpx.AsyncClient(base_url=proc.base_url, headers=headers, timeout=30) as http:
            member = good[-1]
            found = await http.post("/households/search", json={"nik": member["nik"], "reveal": True,
                                                                  "purpose": "check the imported rows"})
            assert found.status_code == 200 and found.json()["kk_number"] == member["kk_number"]
            members = [r for r in good if r["kk_number"] == member["kk_number"]]
            assert [m["nik"] for m in found.json()["household"]["members"]] == [m["nik"] for m in members]

        again = await import_once(proc.base_url, csv_path, tmp_path / "again.csv")
        assert (again.registered, again.updated, again.unchanged) == (0, 0, GOOD)
        assert len(read_csv(tmp_path / "again.csv")) == len(rejected)
        assert await db["household_revisions"].count_documents({}) == GOOD
        assert len(await events_of(jetstream, topology, "HouseholdRegistered")) == GOOD
    finally:
        proc.stop()


async def test_import_endpoint_refuses_other_roles_and_bad_batches(app: Replica) -> None:
    rows = [{"row": 2, "values": list(registry_rows_of_a_household()[0].values())}]
    batch = {"columns": list(COLUMNS), "rows": rows}
    assert (await app.http.post("/households/import", json=batch, headers=FRONT)).status_code == 403
    assert (await app.http.post("/households/import", json=batch)).status_code == 401
    missing = await app.http.post("/households/import", json={**batch, "columns": list(COLUMNS[1:]),
                                                               "rows": [{"row": 2, "values": rows[0]["values"][1:]}]},
                                  headers=BACK)
    assert missing.status_code == 422 and missing.json()["code"] == "invalid_header"
    ragged = await app.http.post("/households/import", json={**batch, "rows": [{"row": 2, "values": ["1"]}]},
                                 headers=BACK)
    assert ragged.status_code == 422
    ok = await app.http.post("/households/import", json=batch, headers=BACK)
    assert ok.status_code == 200 and ok.json()["registered"] == 1


def registry_rows_of_a_household() -> list[dict[str, str]]:
    return rows_of(Household.model_validate(household()))
