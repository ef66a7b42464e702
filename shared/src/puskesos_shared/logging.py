"""structlog, configured once: JSON when not on a terminal, personal data always masked.

Masking uses lokal-id: values under keys that name personal data (``nik``, ``kk_number``,
``phone``, ``name``...) are partially masked (``3573********0003``); free-text values with
long digit runs are scanned for NIK, KK, phone and account numbers; exception text is
scanned for every type, names included. Standard-library loggers (FastStream, uvicorn)
go through the same processors.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, get_args

import structlog
from lokal import PiiType, field_type, mask_pii, parse_phone, partial_mask

_DIGIT_RUN = re.compile(r"\d[\d .\-]{6,}\d")
_DIGIT_TYPES: tuple[PiiType, ...] = ("NIK", "KK", "PHONE", "BANK_ACCOUNT", "NPWP", "BPJS", "CARD")
#: Keys that carry personal data but that lokal-id's key heuristics do not name.
_EXTRA_KEYS = {
    "head_nik": "NIK", "subject_nik": "NIK", "transferred_nik": "NIK", "kk": "KK", "kk_number": "KK",
    "counterpart_kk": "KK", "contact_phone": "PHONE", "recipient_name": "NAME", "head_name": "NAME",
}
_SAFE_KEYS = {"event", "level", "logger", "timestamp", "event_type", "subject", "consumer", "service"}


#: A standalone mobile number. lokal-id's free-text detection leaves one alone after a word and a slash
#: (``GET http://host/rounds/081234567890``: an outgoing request httpx logs), so it is masked here too.
_PHONE_RUN = re.compile(r"(?<![0-9A-Za-z_+-])(?:\+62|62|0)8[0-9]{8,11}(?![0-9A-Za-z_-])")


def _mask_phone(match: re.Match[str]) -> str:
    value = match.group(0)
    return partial_mask("PHONE", value) if parse_phone(value).valid else value


def _mask_text(text: str, *, all_types: bool = False) -> str:
    if all_types:
        masked = mask_pii(text, mode="partial").text
    elif not _DIGIT_RUN.search(text):
        return text
    else:
        masked = mask_pii(text, mode="partial", types=_DIGIT_TYPES).text
    return _PHONE_RUN.sub(_mask_phone, masked)


_PII_TYPES = frozenset(get_args(PiiType))


def _pii_type_of(key: str) -> PiiType | None:
    extra = _EXTRA_KEYS.get(key.lower())
    if extra in _PII_TYPES:
        return extra  # type: ignore[return-value]
    return field_type(key)


def mask_value(key: str, value: Any) -> Any:
    """Masks one logged value according to its key and content."""
    if isinstance(value, dict):
        return {k: mask_value(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_value(key, v) for v in value]
    if not isinstance(value, str):
        return value
    pii = _pii_type_of(key)
    if pii is not None:
        try:
            masked = partial_mask(pii, value)
        except ValueError:
            return "***"
        digits = sum(ch.isdigit() for ch in value)
        if digits and sum(ch.isdigit() for ch in masked) >= digits:
            return "***"  # too short for the partial form, which would show every digit ("12345" -> "1234****2345")
        return masked
    return _mask_text(value, all_types=key in ("exception", "exc_info", "stack"))


def mask_personal_data(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: masks personal data in every value but a few safe keys."""
    event_dict.pop("color_message", None)  # uvicorn's ANSI-coloured duplicate of the message
    for key, value in list(event_dict.items()):
        if key in _SAFE_KEYS and key != "event":
            continue
        if key == "event" and isinstance(value, str):
            event_dict[key] = _mask_text(value)
            continue
        event_dict[key] = mask_value(key, value)
    return event_dict


_configured = False


def configure_logging(level: str = "info", json: bool | None = None, *, force: bool = False) -> None:
    """Configures structlog and the standard library once per process."""
    global _configured
    if _configured and not force:
        return
    if json is None:
        json = not sys.stderr.isatty()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        mask_personal_data,
    ]
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        # filter_by_level first: a line below the level costs no masking (about 0.4 ms a line)
        processors=[structlog.stdlib.filter_by_level, *shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    # handlers marked ``puskesos_capture`` (the test suite's log capture) stay, with the same formatting
    kept = [h for h in root.handlers if getattr(h, "puskesos_capture", False)]
    for capture in kept:
        capture.setFormatter(formatter)
    root.handlers[:] = [handler, *kept]
    root.setLevel(level.upper())
    for noisy in ("faststream", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # FastStream gives its "faststream" logger a plain-text handler of its own and turns
    # propagation off when it is imported: its records would skip masking and JSON.
    import faststream  # noqa: F401  (imported first, so its import-time set-up cannot undo this)

    faststream_logger = logging.getLogger("faststream")
    faststream_logger.handlers.clear()
    faststream_logger.propagate = True
    _configured = True
