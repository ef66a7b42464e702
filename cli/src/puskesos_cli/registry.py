"""``puskesos registry``: bulk import of households from a CSV, and synthetic CSVs to import.

``import`` streams the file to the intake service (``POST /households/import``) in batches of
whole KKs: the service owns its database and applies its own rules and events (the same as a
registration: lokal-id's NIK/KK checks, one household per NIK, HouseholdRegistered through the
outbox). The CLI only reads the file, keeps a KK's rows together, shows progress and writes the
report of rejected rows (``row,column,code,reason``: the line and the rule, never the value).
Importing a file again registers nothing twice: unchanged households are recognised as such.

The CSV has one row per member, a KK's rows consecutive (columns: ``puskesos_intake.domain.
registry_rows``). ``sample-csv`` writes a valid one from the synthetic population of the demo.

Exit status: 0 every household imported (or already there); 3 done, with rejected rows (see the
report); 1 failed (service unreachable, refused); 2 bad input (file, header).
"""

from __future__ import annotations

import asyncio
import csv
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from puskesos_intake.domain.registry_rows import COLUMNS, header_problems, rows_of
from puskesos_shared.contracts.intake import Household
from puskesos_shared.contracts.primitives import OfficerRole
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .resident import _error, intake_url, signed_token
from .scenario.population import generate
from .token import scope_codes

app = typer.Typer(help="The household registry: bulk import from CSV, sample files.", no_args_is_help=True)
console = Console(stderr=True)
WITH_REJECTIONS = 3
#: A batch stays under the service's request body limit (256 KiB by default).
BATCH_BYTES = 200 * 1024
BATCH_ROWS = 5000
ATTEMPTS = 8
RETRIED_STATUS = {409, 429, 500, 502, 503, 504}


class InvalidFile(ValueError):
    """The file cannot be imported at all."""


@dataclass
class Batch:
    rows: list[dict[str, Any]] = field(default_factory=list)
    size: int = 0


@dataclass
class Tally:
    households: int = 0
    registered: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected_households: int = 0
    rejected_rows: int = 0

    def add(self, result: dict[str, Any]) -> None:
        for name in ("households", "registered", "updated", "unchanged", "rejected_households"):
            setattr(self, name, getattr(self, name) + int(result[name]))


def count_rows(path: Path) -> int:
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            return max(sum(1 for values in csv.reader(f) if values) - 1, 0)
    except UnicodeDecodeError as exc:
        raise InvalidFile(f"the file is not UTF-8 text (byte {exc.start})") from None


def read_groups(path: Path, report: Any, tally: Tally) -> Iterator[tuple[list[str], list[dict[str, Any]], int]]:
    """(header, a KK's rows, lines consumed) in file order; lines that cannot be sent go to the report.

    A malformed line (wrong number of fields) and a KK whose rows are not consecutive are rejected
    here: the service sees whole KKs only.
    """
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [h.strip().lower() for h in next(reader, [])]
        if not header:
            raise InvalidFile("the file is empty")
        if problems := header_problems(header):
            raise InvalidFile("; ".join(problems))
        kk_at = header.index("kk_number")
        first_row_of: dict[str, int] = {}
        group: list[dict[str, Any]] = []
        group_kk = ""
        for values in reader:
            if not values:
                continue
            line = reader.line_num
            if len(values) != len(header):
                report.writerow([line, "", "malformed_row", f"{len(values)} fields, the header has {len(header)}"])
                tally.rejected_rows += 1
                yield header, [], 1
                continue
            kk = values[kk_at].strip()
            if group and kk != group_kk:
                yield header, group, len(group)
                group = []
            if not group:
                if kk in first_row_of:
                    reason = f"this KK's rows must be consecutive; it appeared before at row {first_row_of[kk]}"
                    report.writerow([line, "kk_number", "kk_repeated", reason])
                    tally.rejected_rows += 1
                    yield header, [], 1
                    continue
                first_row_of[kk], group_kk = line, kk
            group.append({"row": line, "values": values})
        if group:
            yield header, group, len(group)


async def send(http: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    """Posts one batch; retries what may pass later (resending a batch registers nothing twice)."""
    delay = 0.5
    for attempt in range(ATTEMPTS):
        try:
            response = await http.post("/households/import", json=body)
        except httpx.TransportError as exc:
            if attempt == ATTEMPTS - 1:
                raise RuntimeError(f"cannot reach the intake service: {type(exc).__name__}") from None
        else:
            if response.status_code == 200:
                result: dict[str, Any] = response.json()
                return result
            if response.status_code not in RETRIED_STATUS or attempt == ATTEMPTS - 1:
                raise RuntimeError(f"batch refused (HTTP {response.status_code}) {_error(response)}")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 10.0)
    raise AssertionError("unreachable")


async def import_file(base: str, bearer: str, path: Path, report_path: Path, in_flight: int) -> Tally:
    total = count_rows(path)
    tally = Tally()
    gate = asyncio.Semaphore(in_flight)
    tasks: set[asyncio.Task[None]] = set()
    failures: list[BaseException] = []
    limits = httpx.Limits(max_connections=in_flight)
    with report_path.open("w", newline="", encoding="utf-8") as report_file, Progress(
        TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TextColumn("rows"),
        TextColumn("{task.fields[households]} households"), TimeElapsedColumn(), TimeRemainingColumn(),
        console=console,
    ) as progress:
        report = csv.writer(report_file)
        report.writerow(["row", "column", "code", "reason"])
        bar = progress.add_task("rows", total=total, households=0)
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {bearer}"}, timeout=120,
                                     limits=limits) as http:

            async def run(header: list[str], batch: Batch) -> None:
                try:
                    result = await send(http, {"columns": header, "rows": batch.rows})
                    tally.add(result)
                    for r in result["rejected"]:
                        report.writerow([r["row"], r["column"], r["code"], r["reason"]])
                    tally.rejected_rows += len(result["rejected"])
                    progress.update(bar, advance=len(batch.rows), households=tally.households)
                except BaseException as exc:
                    failures.append(exc)
                finally:
                    gate.release()

            async def dispatch(header: list[str], batch: Batch) -> None:
                await gate.acquire()
                task = asyncio.create_task(run(header, batch))
                tasks.add(task)
                task.add_done_callback(tasks.discard)

            batch, header = Batch(), list(COLUMNS)
            for header, group, lines in read_groups(path, report, tally):
                if failures:
                    break
                if not group:
                    progress.advance(bar, lines)
                    continue
                size = sum(len(v) + 4 for row in group for v in row["values"]) + 24 * len(group)
                if batch.rows and (batch.size + size > BATCH_BYTES or len(batch.rows) + len(group) > BATCH_ROWS):
                    await dispatch(header, batch)
                    batch = Batch()
                batch.rows.extend(group)
                batch.size += size
            if batch.rows and not failures:
                await dispatch(header, batch)
            await asyncio.gather(*tasks)
    if failures:
        raise failures[0]
    return tally


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="The registry CSV")],
    report: Annotated[Path | None, typer.Option(help="Where to write the rejected rows (default: FILE.rejected.csv)")]
    = None,
    url: Annotated[str | None, typer.Option(help="Intake service base URL (default: the local stack's)")] = None,
    token: Annotated[str | None, typer.Option(envvar="PUSKESOS_TOKEN", help="Back-office officer token")] = None,
    officer: Annotated[str | None, typer.Option(help="Sign a local token for this officer id")] = None,
    scope: Annotated[list[str] | None, typer.Option(help="Scope of the local token (e.g. 35.73); repeat for more",
                                                    callback=scope_codes)] = None,
    in_flight: Annotated[int, typer.Option(min=1, max=8, help="Batches sent at once")] = 3,
) -> None:
    """Register the households of a CSV through the intake service, with a progress bar and a report."""
    bearer = signed_token(token, officer, OfficerRole.BACK_OFFICE, scope)
    report_path = report or file.with_name(f"{file.stem}.rejected.csv")
    started = time.perf_counter()
    try:
        tally = asyncio.run(import_file(intake_url(url), bearer, file, report_path, in_flight))
    except InvalidFile as exc:
        console.print(f"[red]{file}: {exc}[/red]")
        raise typer.Exit(2) from None
    except RuntimeError as exc:
        console.print(f"[red]import stopped: {exc}. Run it again: what was imported stays, nothing twice.[/red]")
        raise typer.Exit(1) from None
    elapsed = time.perf_counter() - started
    rate = tally.households / max(elapsed, 1e-9)
    console.print(f"{tally.households:,} households in {elapsed:.1f} s ({rate:,.0f}/s): "
                  f"{tally.registered:,} registered, {tally.updated:,} updated, {tally.unchanged:,} unchanged, "
                  f"{tally.rejected_households:,} rejected; {tally.rejected_rows:,} report lines in {report_path}")
    if tally.rejected_rows:
        raise typer.Exit(WITH_REJECTIONS)


@app.command("sample-csv")
def sample_csv(
    out: Annotated[Path, typer.Option("--out", help="Where to write the CSV")],
    households: Annotated[int, typer.Option(min=1, max=2_000_000, help="How many households")] = 1000,
    regency: Annotated[str, typer.Option(help="35.73 (Kota Malang) or 35.09 (Kabupaten Jember)")] = "35.73",
    seed: Annotated[int, typer.Option(help="The same seed and size give the same file")] = 2022,
) -> None:
    """Write a valid synthetic registry CSV (real Kemendagri village codes, consistent NIKs and KKs)."""
    if regency not in ("35.73", "35.09"):
        console.print("[red]--regency: 35.73 (Kota Malang) or 35.09 (Kabupaten Jember)[/red]")
        raise typer.Exit(2)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    with out.open("w", newline="", encoding="utf-8") as f, Progress(
        TextColumn("writing"), BarColumn(), MofNCompleteColumn(), TextColumn("households"), TimeRemainingColumn(),
        console=console,
    ) as progress:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        bar = progress.add_task("households", total=households)
        for n, family in enumerate(generate(households, seed=seed, regency=regency), 1):
            for row in rows_of(Household.model_validate(family.registration())):
                writer.writerow(row)
                rows += 1
            if n % 1000 == 0 or n == households:
                progress.update(bar, completed=n)
    console.print(f"{households:,} households ({rows:,} member rows) written to {out}")
