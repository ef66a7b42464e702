"""``puskesos subscribers`` without a running stack: validation names the option, files are private, and
the declarations, signatures and event patterns behave as documented (``puskesos_shared.subscribers``).
The feeds themselves run against a real stack in tests/localstack/test_subscribers.py."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
from puskesos_cli.main import app
from puskesos_shared.subscribers import Subscriber, SubscriberBook, check_event_pattern, sign, verify
from puskesos_shared.topology import Topology
from typer.testing import CliRunner


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    # nothing listens on that port: no stack, no notification service
    return {"PUSKESOS_STACK_DIR": str(tmp_path / "stack"), "PUSKESOS_NATS_URL": f"nats://127.0.0.1:{_free_port()}",
            "COLUMNS": "200"}


def _run(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, " ".join(result.output.split())


@pytest.mark.parametrize(("args", "option", "reason"), [
    (("Bad_Name", "--events", "intake.>"), "NAME", "lower-case letters"),
    (("rsud", "--events", "bank.>"), "--events", "not a service"),
    (("rsud", "--events", "intake.complaint_filed"), "--events", "give producer.event.vN"),
    (("rsud", "--events", ">.intake"), "--events", "'>' must be the last token"),
    (("rsud", "--events", "intake.>", "--webhook", "http://example.org/hook"), "--webhook", "use https"),
    (("rsud", "--events", "intake.>", "--webhook", "https://u:p@example.org/"), "--webhook", "no credentials"),
    (("rsud", "--events", "referral.>", "--referral-target", "RSD SOEBANDI"), "--referral-target", "target code"),
    (("rsud", "--events", "intake.>", "--since", "kemarin"), "--since", "give a date"),
    (("rsud", "--events", "intake.>", "--since", "2026-11-01T08:00:00"), "--since", "time zone"),
])
def test_add_refuses_bad_input_naming_the_option(env: dict[str, str], args: tuple[str, ...], option: str,
                                                 reason: str) -> None:
    code, said = _run(env, "subscribers", "add", *args)
    assert code == 2, said
    assert option in said and reason in said, said
    assert not (Path(env["PUSKESOS_STACK_DIR"]) / "subscribers.json").exists()


def test_add_list_revoke_keep_private_files(env: dict[str, str]) -> None:
    stack = Path(env["PUSKESOS_STACK_DIR"])
    code, said = _run(env, "subscribers", "add", "rsud-soebandi", "--events", "referral.>,intake.case_opened.v1",
                      "--pii", "pseudonymous", "--referral-target", "RSD-SOEBANDI")
    assert code == 0, said
    assert "NATS is not running" in said and "the notification service is not running" in said
    creds_path = stack / "subscribers" / "rsud-soebandi.json"
    for path in (creds_path, stack / "subscriber-secrets.json"):
        assert path.stat().st_mode & 0o777 == 0o600
    creds = json.loads(creds_path.read_text())
    assert creds["user"] == "rsud-soebandi" and creds["inbox_prefix"] == "_INBOX_rsud-soebandi"
    assert creds["filter_subject"] == "puskesos.feed.rsud-soebandi.>" and creds["stream"] == "PUSKESOS_FEEDS"
    assert creds["respond_subject"] == "puskesos.commands.referral.respond_referral.v1.RSD-SOEBANDI"
    assert len(creds["password"]) >= 32
    declared = SubscriberBook(stack / "subscribers.json").load()
    assert [s.events for s in declared] == [("referral.>", "intake.case_opened.v1")]

    code, said = _run(env, "subscribers", "add", "kemensos", "--events", ">", "--webhook", "https://kemensos.example/e")
    assert code == 0, said
    assert "signing_secret" in json.loads((stack / "subscribers" / "kemensos.json").read_text())
    code, said = _run(env, "subscribers", "add", "kemensos", "--events", ">")
    assert code == 1 and "already a subscriber" in said

    code, said = _run(env, "subscribers", "list")
    assert code == 0 and "rsud-soebandi" in said and "kemensos" in said and "feed state unknown" in said

    code, said = _run(env, "subscribers", "revoke", "rsud-soebandi")
    assert code == 0, said
    assert not creds_path.exists() and "rsud-soebandi" not in (stack / "subscriber-secrets.json").read_text()
    assert [s.name for s in SubscriberBook(stack / "subscribers.json").load()] == ["kemensos"]
    code, said = _run(env, "subscribers", "revoke", "rsud-soebandi")
    assert code == 1 and "is not a subscriber" in said
    code, said = _run(env, "subscribers", "replay", "nobody")
    assert code == 1 and "is not a subscriber" in said


def test_event_patterns_become_filters_of_the_events_stream() -> None:
    hospital = Subscriber(name="rsud", events=("referral.>", "intake.case_opened.v1"))
    assert hospital.event_filters(Topology()) == ["puskesos.events.referral.>", "puskesos.events.intake.case_opened.v1"]
    assert check_event_pattern("distribution.*.v1") == "distribution.*.v1"
    with pytest.raises(ValueError, match="is not a service"):
        check_event_pattern("payments.>")


def test_a_signature_is_checked_and_expires() -> None:
    secret, body, now = b"s" * 32, b'{"id":"1"}', time.time()
    header = sign(secret, body, int(now))
    assert verify(secret, body, header, now=now)
    assert not verify(secret, body + b" ", header, now=now)  # the body changed
    assert not verify(b"t" * 32, body, header, now=now)  # another secret
    assert not verify(secret, body, header, now=now + 301)  # a captured request replayed later
    assert not verify(secret, body, "v1=abc", now=now)
