"""Personal data never appears unmasked in logs (BRIEF §4): the masking processor and the whole pipeline."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from puskesos_shared import logging as plog
from puskesos_shared.logging import configure_logging, mask_personal_data
from puskesos_shared.service import build_broker
from puskesos_shared.settings import ServiceSettings

NIK = "3573010101900003"  # Kota Malang, born 1 January 1990
NIK_MASKED = "3573********0003"
FEMALE_NIK = "3573014101900002"  # day + 40
FEMALE_NIK_MASKED = "3573********0002"
KK = "3509120202020007"
KK_MASKED = "3509********0007"
PHONE = "081234567890"
PHONE_MASKED = "0812****7890"
NAME = "Siti Aminah"
NAME_MASKED = "S*** A***"

#: A free-standing run of ten or more digits (optionally split by spaces, dots or dashes): a NIK, KK or
#: phone number. Not part of a longer word, so hexadecimal ids (UUIDs) do not count.
LONG_DIGIT_RUN = re.compile(r"(?<![\w\-])\+?\d(?:[ .\-]?\d){9,}(?![\w\-])")


def mask(**event_dict: Any) -> dict[str, Any]:
    return dict(mask_personal_data(None, "info", event_dict))


# the processor ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("key", "value", "masked"),
    [
        ("nik", NIK, NIK_MASKED),
        ("nik", FEMALE_NIK, FEMALE_NIK_MASKED),
        ("head_nik", NIK, NIK_MASKED),
        ("kk_number", KK, KK_MASKED),
        ("phone", PHONE, PHONE_MASKED),
        ("phone", "+62 812-3456-7890", PHONE_MASKED),
        ("name", NAME, NAME_MASKED),
        ("recipient_name", "Budi Santoso", "B*** S***"),
    ],
)
def test_values_under_personal_data_keys_are_partially_masked(key: str, value: str, masked: str) -> None:
    assert mask(event="x", **{key: value})[key] == masked


@pytest.mark.parametrize(
    ("key", "value"), [("nik", "not-a-nik-123"), ("nik", "35730101"), ("phone", "0812345"), ("kk_number", "12345")]
)
def test_a_value_too_short_for_the_partial_form_is_hidden_entirely(key: str, value: str) -> None:
    # the partial form shows four digits at each end: on eight digits or fewer that is all of them
    masked = mask(event="x", **{key: value})[key]

    assert not any(ch.isdigit() for ch in masked), masked


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (f"complaint filed by {NIK} via {PHONE}", f"complaint filed by {NIK_MASKED} via {PHONE_MASKED}"),
        (f"KK {KK} has 4 members", f"KK {KK_MASKED} has 4 members"),
        ("call +62 812-3456-7890 tomorrow", f"call {PHONE_MASKED} tomorrow"),
    ],
)
def test_numbers_inside_free_text_are_masked_in_the_message_and_other_values(text: str, masked: str) -> None:
    out = mask(event=text, note=text, detail={"reason": text})

    assert out["event"] == masked
    assert out["note"] == masked
    assert out["detail"] == {"reason": masked}


def test_nested_dicts_and_lists_are_masked() -> None:
    out = mask(
        event="household_registered",
        household={
            "head_nik": NIK,
            "kk_number": KK,
            "members": [{"nik": FEMALE_NIK, "name": NAME}, {"phone": PHONE}],
            "notes": [f"moved in from {NIK}", ("tuple", PHONE)],
        },
    )

    assert out["household"] == {
        "head_nik": NIK_MASKED,
        "kk_number": KK_MASKED,
        "members": [{"nik": FEMALE_NIK_MASKED, "name": NAME_MASKED}, {"phone": PHONE_MASKED}],
        "notes": [f"moved in from {NIK_MASKED}", ["tuple", PHONE_MASKED]],
    }


def test_values_that_are_not_personal_data_are_untouched() -> None:
    event_dict: dict[str, Any] = {
        "event": "event_published",
        "event_id": "0b5f5c5e-9a8c-4f7e-8e2a-3f4c2b9a1d10",
        "correlation_id": "case:12345",
        "subject": "puskesos.events.intake.complaint_filed.v1",
        "event_type": "ComplaintFiled",
        "stream": "PUSKESOS_EVENTS",
        "sequence": 1234567890123,
        "count": 42,
        "amount": 1_500_000,
        "amount_text": "Rp 1.500.000",
        "village_code": "35.73.01.1001",
        "occurred_at": "2025-01-02T03:04:05.123456+00:00",
        "ratio": 0.25,
        "ok": True,
        "nothing": None,
        "service": "intake",
    }

    assert mask(**event_dict) == event_dict


def test_exception_text_is_masked_including_names() -> None:
    try:
        raise ValueError(f"duplicate NIK {NIK} for {NAME}, phone {PHONE}")
    except ValueError:
        rendered = structlog.processors.format_exc_info(None, "error", {"event": "failed", "exc_info": True})

    out = mask(**rendered)

    assert "ValueError: duplicate NIK" in out["exception"]
    assert NIK_MASKED in out["exception"]
    assert PHONE_MASKED in out["exception"]
    for secret in (NIK, PHONE, NAME):
        assert secret not in out["exception"]


# the whole pipeline: structlog and standard-library loggers, rendered as JSON on stderr --------

@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging(force=True) rewires the root logger and structlog; put everything back."""
    root = logging.getLogger()
    saved_root = (root.handlers[:], root.level)
    saved_loggers = {
        name: (lg.handlers[:], lg.level, lg.propagate)
        for name in ("faststream", "faststream.broker", "uvicorn.access")
        for lg in [logging.getLogger(name)]
    }
    saved_structlog = structlog.get_config()
    saved_flag = plog._configured
    yield
    root.handlers[:], root.level = saved_root
    for name, (handlers, level, propagate) in saved_loggers.items():
        lg = logging.getLogger(name)
        lg.handlers[:], lg.level, lg.propagate = handlers, level, propagate
    structlog.configure(**saved_structlog)
    plog._configured = saved_flag


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every non-empty line must be one JSON object."""
    records = []
    for line in text.splitlines():
        if line.strip():
            record = json.loads(line)  # fails the test on a line that is not JSON
            assert isinstance(record, dict), line
            records.append(record)
    return records


def assert_no_personal_data(text: str) -> None:
    for secret in (NIK, FEMALE_NIK, KK, PHONE, NAME, "812-3456-7890"):
        assert secret not in text
    assert not LONG_DIGIT_RUN.search(text), LONG_DIGIT_RUN.search(text)


@pytest.mark.usefixtures("restore_logging")
def test_structlog_and_stdlib_records_come_out_as_masked_json(capfd: pytest.CaptureFixture[str]) -> None:
    import faststream  # noqa: F401  (FastStream installs its own handler on the "faststream" logger)

    configure_logging(json=True, force=True)
    capfd.readouterr()
    log = structlog.get_logger("puskesos.test")

    log.info(f"complaint from {NIK} via {PHONE}", nik=NIK, phone=PHONE,
             household={"head_nik": FEMALE_NIK, "members": [{"name": NAME, "kk_number": KK}]})
    try:
        raise ValueError(f"no household for NIK {NIK} ({NAME})")
    except ValueError:
        log.exception("lookup_failed", head_nik=NIK)
    faststream_logger = logging.getLogger("faststream")
    faststream_logger.warning("delivery for %s failed, will call %s", NIK, PHONE)
    faststream_logger.warning("redelivered", extra={"nik": NIK, "contact_phone": "+62 812-3456-7890"})
    try:
        raise RuntimeError(f"handler failed for {NIK}")
    except RuntimeError:
        logging.getLogger("uvicorn.error").error("request failed", exc_info=True)
    faststream_logger.info("received (below WARNING: dropped)")

    out, err = capfd.readouterr()
    assert out == ""
    records = json_lines(err)
    assert_no_personal_data(err)
    by_event = {r["event"]: r for r in records}
    assert by_event[f"complaint from {NIK_MASKED} via {PHONE_MASKED}"]["nik"] == NIK_MASKED
    assert by_event[f"complaint from {NIK_MASKED} via {PHONE_MASKED}"]["household"] == {
        "head_nik": FEMALE_NIK_MASKED, "members": [{"name": NAME_MASKED, "kk_number": KK_MASKED}],
    }
    assert "ValueError: no household for NIK" in by_event["lookup_failed"]["exception"]
    assert by_event[f"delivery for {NIK_MASKED} failed, will call {PHONE_MASKED}"]["logger"] == "faststream"
    assert by_event["redelivered"]["nik"] == NIK_MASKED
    assert by_event["redelivered"]["contact_phone"] == PHONE_MASKED
    assert "RuntimeError: handler failed for" in by_event["request failed"]["exception"]
    assert "received (below WARNING: dropped)" not in by_event


@pytest.mark.integration
@pytest.mark.usefixtures("restore_logging")
async def test_faststream_broker_logs_go_through_the_masking_pipeline(
    nats_url: str, namespace: str, capfd: pytest.CaptureFixture[str]
) -> None:
    """A handler error FastStream logs (with the message in the exception) is masked JSON, not raw text."""
    configure_logging(json=True, force=True)
    broker = build_broker(ServiceSettings(nats_url=nats_url, namespace=namespace), "test")
    subject = f"{namespace}.probe"

    @broker.subscriber(subject)
    async def fail(body: str) -> None:
        raise ValueError(f"cannot register NIK {body}")

    capfd.readouterr()
    await broker.start()
    try:
        await broker.publish(NIK, subject)
        captured = ""
        deadline = asyncio.get_running_loop().time() + 10
        while "cannot register NIK" not in captured:
            assert asyncio.get_running_loop().time() < deadline, f"no handler error logged:\n{captured}"
            await asyncio.sleep(0.05)
            out, err = capfd.readouterr()
            captured += out + err
    finally:
        await broker.stop()
    out, err = capfd.readouterr()
    captured += out + err

    records = json_lines(captured)
    assert_no_personal_data(captured)
    errors = [r for r in records if "ValueError: cannot register NIK" in r.get("exception", "")]
    assert errors
    assert NIK_MASKED in errors[0]["exception"]
    assert errors[0]["level"] == "error"
