"""Intake HTTP benchmark: a real intake process under an open-loop load of mixed filings and status reads.

    uv run python bench/intake_http.py [--rate 200] [--seconds 25] [--read-share 0.5]

Starts nats-server and FerretDB locally (or uses PUSKESOS_NATS_URL / PUSKESOS_MONGO_URL), runs
``python -m puskesos_intake`` as its own process, files ``--warmup`` complaints to have case
numbers to read, then sends requests on a fixed schedule (open loop: request i leaves at
t0 + i/rate whether or not earlier ones answered, so a slow server cannot slow the load down and
hide its latency). Filings spread over the 57 kelurahan of Kota Malang, a quarter of them with a
resident's NIK (dedup path), all with an Idempotency-Key; reads ask GET /complaints/{case_number}.
Latency is measured from the scheduled send time. The load generator shares the 2 cores with the
service, nats-server and FerretDB; a baseline phase at the same rate against ``/health/live`` (no
storage, same HTTP stack) is printed first, so the figures can be read as ratios of the same run.
Target (BRIEF §6): p99 under 50 ms at 200 requests/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
from puskesos_shared.auth import Officer, issue_token
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.regions import villages_of
from puskesos_shared.testing.processes import ServiceProcess
from puskesos_shared.testing.servers import resolve_mongo, resolve_nats
from pymongo import AsyncMongoClient

SECRET = "bench-intake-secret-0123456789abcdef0123456789"
REGENCY = "35.73"  # Kota Malang
#: A request slower than this counts as an error (keeps an overloaded run from lasting forever).
REQUEST_TIMEOUT = 30.0


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def nik_for(n: int) -> str:
    return f"357301{(n % 28) + 1:02d}0190{(n % 9999) + 1:04d}"


def complaint(n: int, villages: tuple[str, ...], rng: random.Random) -> dict[str, object]:
    complainant: dict[str, str] = {"contact_phone": "0812" + f"{rng.randrange(10**7, 10**8)}"}
    if n % 4 == 0:
        complainant = {"nik": nik_for(n)}
    return {"category": rng.choice(["aid_not_received", "health_referral", "elderly_alone", "disability"]),
            "channel": "walk_in", "urgency": "normal", "description": f"Keluhan warga nomor {n}.",
            "village_code": villages[n % len(villages)], "complainant": complainant}


def start_servers(stack: ExitStack, workdir: Path) -> tuple[str, str]:
    """nats-server and FerretDB as the tests get them (``PUSKESOS_NATS_URL``/``PUSKESOS_MONGO_URL`` win)."""
    nats_handle = resolve_nats(workdir)
    stack.callback(nats_handle.close)
    mongo_handle = resolve_mongo(workdir)
    stack.callback(mongo_handle.close)
    return nats_handle.url, mongo_handle.url


def start_intake(stack: ExitStack, workdir: Path, nats_url: str, mongo_url: str) -> str:
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    process = ServiceProcess("puskesos_intake", log_path=workdir / "intake.log", env={
        "PUSKESOS_NATS_URL": nats_url, "PUSKESOS_MONGO_URL": mongo_url, "PUSKESOS_NAMESPACE": namespace,
        "PUSKESOS_MONGO_DB": f"{namespace}_intake", "PUSKESOS_AUTH_SECRET": SECRET, "PUSKESOS_LOG_LEVEL": "warning",
        # one officer token sends every request: the per-officer HTTP rate limit would answer 429
        "PUSKESOS_RATE_LIMIT_PER_MINUTE": "0",
    }).start()
    stack.callback(process.stop, 30)
    process.wait_ready(90)
    return process.base_url


Request = Callable[[httpx.AsyncClient, int], Awaitable[tuple[str, httpx.Response]]]


async def open_loop(http: httpx.AsyncClient, rate: float, seconds: float,
                    request: Request) -> tuple[dict[str, list[float]], dict[str, int], float, int]:
    """Sends ``rate * seconds`` requests on a fixed schedule; latency counts from the scheduled time."""
    results: dict[str, list[float]] = {}
    errors: dict[str, int] = {}
    total = int(rate * seconds)
    t0 = time.perf_counter() + 0.5

    async def one(i: int) -> None:
        scheduled = t0 + i / rate
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        try:
            kind, r = await asyncio.wait_for(request(http, i), timeout=REQUEST_TIMEOUT)
        except (httpx.HTTPError, TimeoutError) as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            return
        if r.status_code in (200, 201):
            results.setdefault(kind, []).append((time.perf_counter() - scheduled) * 1000)
        else:
            errors[str(r.status_code)] = errors.get(str(r.status_code), 0) + 1

    await asyncio.gather(*(one(i) for i in range(total)))
    return results, errors, time.perf_counter() - t0, total


def report(title: str, results: dict[str, list[float]], errors: dict[str, int], elapsed: float, total: int) -> float:
    every = [v for values in results.values() for v in values]
    print(f"{title}: completed {len(every)} of {total} in {elapsed:.1f} s -> {len(every) / elapsed:.1f} req/s; "
          f"errors: {errors or 'none'}")
    for name, values in (("all", every), *sorted(results.items())):
        if values and not (name != "all" and len(results) == 1):
            print(f"  {name:>6}: n={len(values):5d}  p50={percentile(values, 50):7.1f} ms  "
                  f"p90={percentile(values, 90):7.1f} ms  p99={percentile(values, 99):7.1f} ms  "
                  f"max={max(values):8.1f} ms  mean={statistics.fmean(values):7.1f} ms")
    return percentile(every, 99) if every else float("inf")


async def run_load(base: str, rate: float, seconds: float, read_share: float, warmup: int,
                   baseline_seconds: float) -> None:
    villages = villages_of(REGENCY)
    token = issue_token(Officer(officer_id="bench-fo", role=OfficerRole.FRONT_OFFICE, scope=(REGENCY,)), SECRET)
    rng = random.Random(7)
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60,
                                 limits=limits) as http:
        case_numbers: list[str] = []
        for n in range(warmup):
            r = await http.post("/complaints", json=complaint(n, villages, rng), headers={"Idempotency-Key": f"w{n}"})
            r.raise_for_status()
            case_numbers.append(r.json()["complaint"]["case_number"])

        async def health(client: httpx.AsyncClient, i: int) -> tuple[str, httpx.Response]:
            return "health", await client.get("/health/live")

        async def mixed(client: httpx.AsyncClient, i: int) -> tuple[str, httpx.Response]:
            if rng.random() < read_share:
                return "read", await client.get(f"/complaints/{rng.choice(case_numbers)}")
            n = warmup + i
            r = await client.post("/complaints", json=complaint(n, villages, rng), headers={"Idempotency-Key": f"b{n}"})
            if r.status_code in (200, 201):
                case_numbers.append(r.json()["complaint"]["case_number"])
            return "file", r

        print(f"intake HTTP bench: {rate:.0f} req/s offered (open loop), {warmup} complaints filed beforehand")
        base_p99 = float("nan")
        if baseline_seconds > 0:
            base_p99 = report(f"baseline GET /health/live (no storage), {baseline_seconds:.0f} s",
                              *await open_loop(http, rate, baseline_seconds, health))
        p99 = report(f"mixed: {1 - read_share:.0%} POST /complaints, {read_share:.0%} GET /complaints/{{case}}, "
                     f"{seconds:.0f} s", *await open_loop(http, rate, seconds, mixed))
    verdict = ("met" if p99 < 50 else "NOT met") if rate >= 200 else f"not measured: {rate:.0f} req/s offered"
    print(f"target p99 < 50 ms at 200 req/s: {verdict} (p99 {p99:.1f} ms; "
          f"baseline p99 {base_p99:.1f} ms in the same run; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores)")


async def storage_floor(mongo_url: str, filings: int = 400, concurrency: int = 20) -> None:
    """The same writes a filing makes (complaint with outbox, listing row, outbox pull) and the two reads of
    a status read, by plain PyMongo on the same server: the ceiling the storage alone allows."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, serverSelectionTimeoutMS=5000)
    db = client[f"floor{uuid.uuid4().hex[:8]}"]
    complaints, views = db["complaints"], db["views"]
    await complaints.create_index("case_number", unique=True)
    entry = {"event_id": "e", "subject": "s", "body": "x" * 1500, "headers": {"Nats-Msg-Id": "e"}}
    gate = asyncio.Semaphore(concurrency)

    async def one(n: int) -> None:
        async with gate:
            cid = str(uuid.uuid4())
            await complaints.insert_one({"_id": cid, "case_number": f"c{n}", "text": "y" * 800, "_outbox": [entry]})
            await views.insert_one({"_id": f"c{n}", "complaint_id": cid, "status": "filed"})
            await complaints.update_one({"_id": cid}, {"$pullAll": {"_outbox": [entry]}})
            await views.find_one({"_id": f"c{n}"})
            await complaints.find_one({"_id": cid})

    started = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(filings)))
    elapsed = time.perf_counter() - started
    await client.drop_database(db.name)
    await client.close()
    print(f"storage floor (plain PyMongo, {concurrency} concurrent): {filings / elapsed:.0f} filing-equivalents/s "
          f"(3 writes + 2 point reads each)")


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(143)  # unwind: the servers and the intake process are stopped on the way out


def main() -> None:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=25.0)
    parser.add_argument("--read-share", type=float, default=0.5)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--baseline-seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="intake-bench-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        nats_url, mongo_url = start_servers(stack, workdir)
        base = start_intake(stack, workdir, nats_url, mongo_url)
        asyncio.run(storage_floor(mongo_url))
        try:
            asyncio.run(run_load(base, args.rate, args.seconds, args.read_share, args.warmup, args.baseline_seconds))
        finally:
            kept = Path(tempfile.gettempdir()) / "intake-bench-last.log"
            kept.write_bytes((workdir / "intake.log").read_bytes())
            print(f"intake log kept at {kept}")


if __name__ == "__main__":
    main()
