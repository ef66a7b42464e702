"""No unmasked NIK or phone number in any log the test run produced.

Runs after every other test (marker ``scan_logs``): it reads the in-process log capture of
the whole session and every ``*.log`` file the tests wrote under pytest's base temporary
directory (service processes, nats-server, the Mongo engine).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lokal import parse_nik, parse_phone
from puskesos_shared.testing.plugin import CAPTURED_LOG_NAME

# standalone numbers only: a run of digits inside a hex digest or an id is not personal data
DIGITS_16 = re.compile(r"(?<![0-9A-Za-z_-])[0-9]{16}(?![0-9A-Za-z_-])")
PHONE = re.compile(r"(?<![0-9A-Za-z_+-])(?:\+62|62|0)8[0-9]{8,11}(?![0-9A-Za-z_-])")


def personal_data_in(text: str) -> list[str]:
    found = [m for m in DIGITS_16.findall(text) if parse_nik(m).valid]
    found += [m for m in PHONE.findall(text) if parse_phone(m).valid]
    return found


def test_the_detector_finds_what_it_must() -> None:
    assert personal_data_in('{"nik": "3573010101800003"}') == ["3573010101800003"]
    assert personal_data_in("hp 081234567890 / +6281234567890") == ["081234567890", "+6281234567890"]
    assert personal_data_in('{"nik": "3573********0003", "phone": "0812****7890", "seq": 1234567}') == []
    assert personal_data_in('{"hash": "a08384179848f0", "id": "x-3573010101800003"}') == []


@pytest.mark.scan_logs
def test_no_unmasked_personal_data_in_any_log(tmp_path_factory: pytest.TempPathFactory) -> None:
    base = tmp_path_factory.getbasetemp()
    files = sorted({*base.rglob("*.log"), *base.rglob(CAPTURED_LOG_NAME)})
    assert files, "no log was captured: the capture itself is broken"
    leaks: dict[Path, list[str]] = {}
    for path in files:
        found = personal_data_in(path.read_text(errors="replace"))
        if found:
            leaks[path.relative_to(base)] = sorted(set(found))[:5]
    assert not leaks, f"unmasked personal data in logs: {leaks}"
