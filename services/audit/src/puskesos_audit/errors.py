"""Describing errors for logs and status without the data they carry."""

from __future__ import annotations

from pymongo.errors import BulkWriteError, PyMongoError


def describe_error(exc: BaseException) -> str:
    """An error for logs and status without the documents a bulk write carries (they hold personal data)."""
    if isinstance(exc, BulkWriteError):
        codes = sorted({int(e.get("code", 0)) for e in exc.details.get("writeErrors", [])})
        return f"BulkWriteError: {len(exc.details.get('writeErrors', []))} write errors, codes {codes}"
    if isinstance(exc, PyMongoError):
        return f"{type(exc).__name__} (database error code {getattr(exc, 'code', None)})"
    return f"{type(exc).__name__}: {str(exc)[:300]}"
