"""Streaming a recipient list (CSV) to the service in chunks, with a progress bar and a report.

Memory stays bounded by the chunks in flight, whatever the file's size. The service validates
every row; rows this side cannot even parse (wrong number of fields) are reported here. The
report (``row,column,code,reason``) names the line and the rule, never the value. The batch id is
derived from the round and the file's SHA-256, so importing the same file again (after a crash,
a timeout) resends rows the service recognises instead of adding them twice.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from .imports import new_batch_id
from .rows import PAYOUT_COLUMNS, REQUIRED_COLUMNS

Call = Callable[..., Awaitable[dict[str, Any]]]
ATTEMPTS = 10  # a chunk sent to a replica that dies is sent again (resending is harmless)
CHUNK_TIMEOUT = 20.0


class InvalidFile(ValueError):
    """The file cannot be imported at all (not UTF-8, no header, required columns missing)."""


def digest_and_count(path: Path) -> tuple[str, int]:
    """SHA-256 of the file and its number of data rows (one streaming pass)."""
    sha = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = sum(1 for values in csv.reader(f) if values)
    except UnicodeDecodeError as exc:
        raise InvalidFile(f"the file is not UTF-8 text (byte {exc.start})") from None
    return sha.hexdigest(), max(rows - 1, 0)


def read_rows(path: Path) -> Iterator[tuple[int, list[str] | None, dict[str, str] | str]]:
    """(line, header, fields) per data row; fields is a reason when the line cannot be parsed."""
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            raise InvalidFile("the file is empty")
        columns = [h.strip().lower() for h in header]
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing or not any(c in columns for c in PAYOUT_COLUMNS):
            need = ", ".join(missing) or " or ".join(PAYOUT_COLUMNS)
            raise InvalidFile(f"missing column(s): {need} (header: {', '.join(columns)})")
        for values in reader:
            if not values:
                continue
            if len(values) != len(columns):
                yield reader.line_num, columns, f"malformed line: {len(values)} fields, the header has {len(columns)}"
            else:
                yield reader.line_num, columns, dict(zip(columns, values, strict=True))


async def import_file(call: Call, round_id: uuid.UUID, round_ref: str, path: Path, report_path: Path,
                      chunk: int, *, console: Console, in_flight: int = 4) -> dict[str, Any]:
    sha, total = digest_and_count(path)
    batch_id = new_batch_id(round_id, sha)
    counts = {"accepted": 0, "resent": 0, "rejected": 0, "without_quota": 0}
    gate = asyncio.Semaphore(in_flight)
    tasks: set[asyncio.Task[None]] = set()
    failures: list[BaseException] = []
    with report_path.open("w", newline="", encoding="utf-8") as report_file, Progress(
        TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TextColumn("rows"), TimeRemainingColumn(),
        console=console, transient=False,
    ) as progress:
        report = csv.writer(report_file)
        report.writerow(["row", "column", "code", "reason"])
        bar = progress.add_task("rows", total=total)

        async def send(rows: list[dict[str, Any]]) -> None:
            try:
                body = {"round": round_ref, "batch_id": str(batch_id), "rows": rows}
                result = await call("import_rows", body, timeout=CHUNK_TIMEOUT, attempts=ATTEMPTS)
                counts["accepted"] += int(result["accepted"])
                counts["resent"] += int(result["resent"])
                counts["without_quota"] += int(result.get("without_quota", 0))
                for rejected in result["rejected"]:
                    report.writerow([rejected["row"], rejected["column"], rejected.get("code", ""), rejected["reason"]])
                counts["rejected"] += len(result["rejected"])
                progress.advance(bar, len(rows))
            except BaseException as exc:
                failures.append(exc)
            finally:
                gate.release()

        rows: list[dict[str, Any]] = []
        for line, _, fields in read_rows(path):
            if failures:
                break
            if isinstance(fields, str):
                report.writerow([line, "", fields])
                counts["rejected"] += 1
                progress.advance(bar, 1)
                continue
            rows.append({"row": line, "fields": fields})
            if len(rows) == chunk:
                await gate.acquire()
                task = asyncio.create_task(send(rows))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                rows = []
        if rows and not failures:
            await gate.acquire()
            await send(rows)
        await asyncio.gather(*tasks)
    if failures:
        raise failures[0]
    finished = await call("finish_import", {"round": round_ref, "batch_id": str(batch_id), "file_name": path.name,
                                            "total_rows": total, "rejected_rows": counts["rejected"]},
                          timeout=CHUNK_TIMEOUT, attempts=ATTEMPTS)
    return {**counts, "total_rows": total, "batch_id": str(batch_id), "service_accepted": finished["accepted"]}
