"""A newcomer's local workflow, through the ``puskesos`` CLI as the README gives it (issue 15).

1. ``stack up`` + ``services up`` with no gateway configured start the simulated bank and say so,
   and a round opened, imported and paid can then be closed and reconciled (no ``no_gateway``);
   with ``PUSKESOS_GATEWAY_URL`` the bank is not started and the output names the gateway.
2. The demo runs a stack of its own: the local stack keeps running with its data; pointed at the
   local stack with ``--stack-dir``, it asks first and, without a terminal or ``--yes``, refuses.
3. The CLI rejects invalid ids, NIKs, scopes, durations, periods, quotas and rule versions with a message
   naming the option (a round with quotas must say what happens to the other villages).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from puskesos_cli.main import app
from pymongo import MongoClient
from typer.testing import CliRunner

from tests.localstack.support import cli, process, stack_state, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

ROUND = "blt-local-2026"
OPERATOR = ("--operator", "dinsos-op-1")


def _status(env: dict[str, str]) -> dict[str, object]:
    shown = cli(env, "round", "status", ROUND, "--json", "--exact", *OPERATOR)
    assert shown.returncode == 0, shown.stderr
    status: dict[str, object] = json.loads(shown.stdout)
    return status


def _paid_out(env: dict[str, str], families: int) -> bool:
    exact = _status(env)["exact"]
    assert isinstance(exact, dict)
    decided = exact["allocated"] + exact["rejected"]
    return bool(decided == families and exact["disbursement_outcomes"] == exact["allocated"])


def test_services_up_starts_the_simulated_bank_so_a_round_closes(stack_home: dict[str, str]) -> None:
    home = Path(stack_home["PUSKESOS_HOME"])
    assert cli(stack_home, "stack", "up").returncode == 0
    up = cli(stack_home, "services", "up")
    assert up.returncode == 0, up.stderr
    assert "simulated bank http://127.0.0.1:" in up.stderr and "no PUSKESOS_GATEWAY_URL is configured" in up.stderr
    bank = next(e for e in stack_state(home / ".local" / "stack")["services"] if e["name"] == "gateway-0")
    assert process(bank).alive()

    recipients = home / "recipients.csv"
    assert cli(stack_home, "round", "sample-csv", str(recipients), "--rows", "12").returncode == 0
    opened = cli(stack_home, "round", "open", ROUND, "--name", "BLT uji lokal", "--funding-source", "APBD",
                 "--amount", "300000", "--budget", "3600000", "--from", "2026-12-01", "--to", "2026-12-31", *OPERATOR)
    assert opened.returncode == 0, opened.stderr
    imported = cli(stack_home, "round", "import", ROUND, str(recipients), *OPERATOR)
    assert imported.returncode == 0, imported.stderr
    wait_until(lambda: _paid_out(stack_home, 12), "every family of the round decided and paid or failed", 120)
    closed = cli(stack_home, "round", "close", ROUND, *OPERATOR)
    assert closed.returncode == 0, closed.stdout + closed.stderr
    assert "no_gateway" not in closed.stdout + closed.stderr

    # a configured gateway: no simulated bank, and the output says where payments go
    assert cli(stack_home, "services", "down").returncode == 0
    elsewhere = cli({**stack_home, "PUSKESOS_GATEWAY_URL": "http://127.0.0.1:9"}, "services", "up")
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert "payments go to the gateway at http://127.0.0.1:9" in elsewhere.stderr
    assert "gateway-0" not in {e["name"] for e in stack_state(home / ".local" / "stack")["services"]}


def test_the_demo_keeps_apart_from_the_local_stack(stack_home: dict[str, str]) -> None:
    home = Path(stack_home["PUSKESOS_HOME"])
    local = home / ".local" / "stack"
    assert cli(stack_home, "stack", "up").returncode == 0
    engine = process(stack_state(local)["servers"]["mongo"])
    with MongoClient(engine.url) as client:
        client["puskesos_intake"]["households"].insert_one({"_id": "registered by hand before the demo"})

    demo = cli(stack_home, "demo", "--size", "20", "--replicas", "1", timeout=300)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "runs a stack of its own" in demo.stdout and "every end-state check passing" in demo.stdout
    demo_servers = stack_state(home / ".local" / "demo" / "stack")["servers"]
    assert demo_servers == {}  # the demo stopped its own stack, and only that one
    assert engine.alive() and process(stack_state(local)["servers"]["nats"]).alive()
    with MongoClient(engine.url) as client:
        assert client["puskesos_intake"]["households"].count_documents({}) == 1

    # pointed at the local stack, the demo asks first; without a terminal or --yes it refuses and keeps it
    refused = cli(stack_home, "--stack-dir", str(local), "demo", "--size", "20")
    assert refused.returncode == 2
    assert "Continue?" in refused.stdout and "--yes" in refused.stdout
    assert engine.alive()


@pytest.mark.parametrize(("args", "named", "reason"), [
    (("audit", "trace", "case", "not-a-uuid"), "VALUE", "is a UUID"),
    (("audit", "trace", "nik", "1234"), "VALUE", "invalid NIK"),
    (("audit", "trace", "kk", "3573010101010000"), "VALUE", "invalid KK"),
    (("token", "--officer", "o-1", "--role", "operator", "--scope", "35.73", "--hours", "-1"), "--hours", ""),
    (("token", "--officer", "o-1", "--role", "operator", "--scope", "99"), "--scope", "not a known"),
    (("token", "--officer", "o-1", "--role", "operator", "--scope", "35"), "--scope", "province"),
    (("round", "open", ROUND, "--name", "x", "--funding-source", "APBD", "--amount", "300000", "--budget", "600000",
      "--from", "2026-12-31", "--to", "2026-12-01", *OPERATOR), "--to", "before the first day"),
    (("round", "open", ROUND, "--name", "x", "--funding-source", "APBD", "--amount", "300000", "--budget", "100",
      "--from", "2026-12-01", "--to", "2026-12-31", *OPERATOR), "--budget", "smaller than one family"),
    (("round", "open", ROUND, "--name", "x", "--funding-source", "APBD", "--amount", "300000", "--budget", "600000",
      "--from", "2026-12-01", "--to", "2026-12-31", "--quota", "35.99.01.1001=3", *OPERATOR), "--quota",
     "not a known village"),
    (("round", "open", ROUND, "--name", "x", "--funding-source", "APBD", "--amount", "300000", "--budget", "600000",
      "--from", "2026-12-01", "--to", "2026-12-31", "--quota", "35.73.01.1001=3", *OPERATOR),
     "--villages-without-quota", "say what happens to every other village"),
    (("round", "open", ROUND, "--name", "x", "--funding-source", "APBD", "--amount", "300000", "--budget", "600000",
      "--from", "2026-12-01", "--to", "2026-12-31", "--rule-version", "blt-eligibility@9", *OPERATOR),
     "--rule-version", "unknown allocation rule"),
    (("resident", "export", "--out", "x.json", "--officer", "bo-1", "--scope", "35.73"), "--nik", "no NIK given"),
])
def test_the_cli_rejects_bad_input_naming_the_option(args: tuple[str, ...], named: str, reason: str) -> None:
    # the real command in process (it refuses before any server is needed); stdin is empty, not a terminal
    result = CliRunner().invoke(app, list(args), input="", env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split()).replace("│", "")
    assert named in said and reason in said, said
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "GetPassWarning" not in said


def test_resident_export_reads_a_piped_nik_without_a_prompt(stack_home: dict[str, str]) -> None:
    nik = "3573014501900001"  # valid by lokal-id's rules (a woman: day + 40); no service listens at the URL
    result = cli(stack_home, "resident", "export", "--out", "x.json", "--officer", "bo-1", "--scope", "35.73",
                 "--url", "http://127.0.0.1:9", stdin=nik + "\n")
    said = result.stdout + result.stderr
    assert result.returncode == 1 and "cannot reach the intake service" in said, said
    assert "GetPassWarning" not in said and "NIK of the resident" not in said and nik not in said
