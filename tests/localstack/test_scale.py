"""``puskesos services scale distribution N`` while a round runs, and the replicas ``round status`` counts (issue 18).

Replicas added start as ``services up`` started the first (same gateway, same NATS user); removed ones are the
highest-numbered, stopped gracefully, and distribution-0 keeps running throughout. No secret lands in the state.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.localstack.support import cli, process, stack_state, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

ROUND = "blt-scale-2026"
OPERATOR = ("--operator", "dinsos-op-1")
FAMILIES = 40


def _distribution(stack_dir: Path) -> dict[str, dict[str, object]]:
    return {e["name"]: e for e in stack_state(stack_dir)["services"] if e["name"].startswith("distribution-")}


def _status(env: dict[str, str]) -> dict[str, object]:
    shown = cli(env, "round", "status", ROUND, "--json", "--exact", *OPERATOR)
    assert shown.returncode == 0, shown.stderr
    status: dict[str, object] = json.loads(shown.stdout)
    return status


def _settled(env: dict[str, str]) -> bool:
    exact = _status(env)["exact"]
    assert isinstance(exact, dict)
    return bool(exact["allocated"] + exact["rejected"] == FAMILIES
                and exact["disbursement_outcomes"] == exact["allocated"])


def test_scale_distribution_while_a_round_runs(stack_home: dict[str, str]) -> None:
    home = Path(stack_home["PUSKESOS_HOME"])
    stack_dir = home / ".local" / "stack"
    assert cli(stack_home, "stack", "up").returncode == 0
    up = cli(stack_home, "services", "up")
    assert up.returncode == 0, up.stderr
    first = process(_distribution(stack_dir)["distribution-0"])

    recipients = home / "recipients.csv"
    assert cli(stack_home, "round", "sample-csv", str(recipients), "--rows", str(FAMILIES)).returncode == 0
    opened = cli(stack_home, "round", "open", ROUND, "--name", "BLT skala", "--funding-source", "APBD",
                 "--amount", "300000", "--budget", str(300_000 * FAMILIES), "--from", "2026-12-01", "--to",
                 "2026-12-31", *OPERATOR)
    assert opened.returncode == 0, opened.stderr
    imported = cli(stack_home, "round", "import", ROUND, str(recipients), *OPERATOR)
    assert imported.returncode == 0, imported.stderr
    assert _status(stack_home)["replicas"] == 1

    scaled = cli(stack_home, "services", "scale", "distribution", "3")
    assert scaled.returncode == 0, scaled.stderr
    said = " ".join(scaled.stderr.split())
    for name in ("distribution-1", "distribution-2"):
        entry = _distribution(stack_dir)[name]
        assert process(entry).alive() and f"ready {name} {entry['url']}" in said
    assert "distribution: 3 replicas running" in said
    status = _status(stack_home)
    assert status["replicas"] == 3 and isinstance(status["instances"], list) and len(status["instances"]) == 3
    table = cli(stack_home, "services", "status")
    assert table.returncode == 0 and all(f"distribution-{i}" in table.stdout for i in range(3))

    # the replicas added got the first one's configuration: they pay through the same bank
    logs = [Path(str(e["log"])).read_text() for e in _distribution(stack_dir).values()]
    assert not any("disbursement_disabled" in log for log in logs)
    # no password or secret is written into the state
    text = (stack_dir / "state.json").read_text()
    secrets = [*json.loads((stack_dir / "nats-users.json").read_text()).values(),
               (stack_dir / "auth-secret").read_text().strip()]
    assert not any(secret in text for secret in secrets)

    removed = [process(_distribution(stack_dir)[f"distribution-{i}"]) for i in (1, 2)]
    down = cli(stack_home, "services", "scale", "distribution", "1")
    assert down.returncode == 0, down.stderr
    said = " ".join(down.stderr.split())
    assert all(f"stopped {p.name} {p.url} (pid {p.pid})" in said for p in removed)
    assert not any(p.alive() for p in removed)
    assert set(_distribution(stack_dir)) == {"distribution-0"}
    assert process(_distribution(stack_dir)["distribution-0"]).pid == first.pid and first.alive()
    assert _status(stack_home)["replicas"] == 1

    wrong = cli(stack_home, "services", "scale", "intake", "2")
    assert wrong.returncode == 2 and "only distribution scales" in " ".join(wrong.stderr.split())

    wait_until(lambda: _settled(stack_home), "every family decided and paid or failed", 120)
    closed = cli(stack_home, "round", "close", ROUND, *OPERATOR)
    assert closed.returncode == 0 and "matched exactly" in closed.stdout, closed.stdout + closed.stderr
