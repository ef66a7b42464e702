"""Intake HTTP benchmark at the seeds' scale: a registry of 250,000 households, 200 requests/s offered.

    uv run python bench/intake_http.py [--households 250000] [--rate 200] [--seconds 60]

1. Starts nats-server and the local Mongo engine (or uses PUSKESOS_NATS_URL / PUSKESOS_MONGO_URL)
   and ``python -m puskesos_intake`` as its own process.
2. Writes a synthetic registry CSV (``puskesos registry sample-csv``, Kota Malang) and loads it with
   ``puskesos registry import`` run as its own process, exactly as an operator would: through the
   service, with intake's rules and one HouseholdRegistered per household on JetStream. Prints how
   long the import took (target: under 10 minutes for 250,000 households on this 2-core machine).
3. Offers ``--rate`` requests/s for ``--seconds`` (open loop: request i leaves at t0 + i/rate whether
   or not earlier ones answered; latency counts from the scheduled time), a quarter each:
   complaint filings (``POST /complaints``, a quarter of them with a resident's NIK, all with an
   Idempotency-Key), status reads (``GET /complaints/{case_number}``), household lookups by KK
   and by NIK (``POST /households/search``, the number in the body; answered masked, no reveal, so
   nothing is written to the access log) for random households of the registry.
4. The floor, measured in the same run on the same engine and the same machine, at the same rate
   and schedule: (a) ``GET /health/live`` on the same process (the HTTP stack without storage);
   (b) the storage work of each kind done directly by plain PyMongo (a KK lookup is one indexed
   read of the latest revision; a NIK lookup reads its keyed-hash owner record and the revision;
   a status read, the listing row and the complaint; a filing inserts a complaint with its event
   in the outbox and a listing row, then pulls the outbox), on the same server (reads on the
   registry the import built, writes in a scratch database).
Prints p50/p95/p99 per kind and overall, the served rate and the load average.
Target (BRIEF §6): p99 under 50 ms at 200 requests/s with a registry of 250,000 households.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import hmac
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack, ExitStack
from pathlib import Path
from typing import Any

import httpx
from puskesos_intake.domain.households import household_id
from puskesos_intake.settings import IntakeSettings
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
KINDS = ("file", "status", "by_kk", "by_nik")
LANES, LANE_CONNECTIONS = 16, 16
Sample = tuple[list[str], list[str]]  # KKs, NIKs


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def token(role: OfficerRole) -> str:
    return issue_token(Officer(officer_id=f"bench-{role.value}", role=role, scope=(REGENCY,)), SECRET)


def complaint(n: int, villages: tuple[str, ...], niks: list[str], rng: random.Random) -> dict[str, object]:
    complainant: dict[str, str] = {"contact_phone": "0812" + f"{rng.randrange(10**7, 10**8)}"}
    if n % 4 == 0:
        complainant = {"nik": rng.choice(niks)}
    return {"category": rng.choice(["aid_not_received", "health_referral", "elderly_alone", "disability"]),
            "channel": "walk_in", "urgency": "normal", "description": f"Keluhan warga nomor {n}.",
            "village_code": villages[n % len(villages)], "complainant": complainant}


def start_servers(stack: ExitStack, workdir: Path) -> tuple[str, str]:
    nats_handle = resolve_nats(workdir)
    stack.callback(nats_handle.close)
    mongo_handle = resolve_mongo(workdir, heap="6g")
    stack.callback(mongo_handle.close)
    return nats_handle.url, mongo_handle.url


def start_intake(stack: ExitStack, workdir: Path, nats_url: str, mongo_url: str, database: str) -> str:
    process = ServiceProcess("puskesos_intake", log_path=workdir / "intake.log", env={
        "PUSKESOS_NATS_URL": nats_url, "PUSKESOS_MONGO_URL": mongo_url, "PUSKESOS_NAMESPACE": database,
        "PUSKESOS_MONGO_DB": database, "PUSKESOS_AUTH_SECRET": SECRET, "PUSKESOS_LOG_LEVEL": "warning",
        # one officer token sends every request: the per-officer HTTP rate limit would answer 429
        "PUSKESOS_RATE_LIMIT_PER_MINUTE": "0",
    }).start()
    stack.callback(process.stop, 30)
    process.wait_ready(90)
    return process.base_url


def cli(*args: str, env: dict[str, str] | None = None) -> float:
    """Runs ``puskesos ARGS`` as its own process (its progress bar on this terminal); returns seconds taken."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "puskesos_cli.main", *args], check=True,
                   env={**os.environ, **(env or {})})
    return time.perf_counter() - started


def load_registry(workdir: Path, base: str, households: int) -> tuple[Path, float]:
    csv_path = workdir / "registry.csv"
    took = cli("registry", "sample-csv", "--households", str(households), "--regency", REGENCY, "--seed", "2022",
               "--out", str(csv_path))
    print(f"sample CSV: {households:,} households written in {took:.1f} s ({csv_path.stat().st_size / 1e6:.0f} MB)")
    took = cli("registry", "import", str(csv_path), "--url", base, "--report", str(workdir / "rejected.csv"),
               env={"PUSKESOS_TOKEN": token(OfficerRole.BACK_OFFICE)})
    return csv_path, took


def sample_of(csv_path: Path, size: int, rng: random.Random) -> Sample:
    """Random KKs and NIKs of the registry (reservoir sampling over the file)."""
    kks: list[str] = []
    niks: list[str] = []
    with csv_path.open(newline="", encoding="utf-8") as f:
        for i, row in enumerate(csv.DictReader(f)):
            if len(niks) < size:
                niks.append(row["nik"])
                kks.append(row["kk_number"])
            elif (j := rng.randrange(i + 1)) < size:
                niks[j], kks[j] = row["nik"], row["kk_number"]
    return kks, niks


Request = Callable[[int], Awaitable[str]]  # returns the kind; raises on failure


async def open_loop(rate: float, seconds: float, request: Request) -> tuple[dict[str, list[float]], dict[str, int],
                                                                             float, int]:
    """Sends ``rate * seconds`` requests on a fixed schedule; latency counts from the scheduled time."""
    results: dict[str, list[float]] = {}
    errors: dict[str, int] = {}
    total = int(rate * seconds)
    t0 = time.perf_counter() + 0.5

    async def one(i: int) -> None:
        scheduled = t0 + i / rate
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        try:
            kind = await asyncio.wait_for(request(i), timeout=REQUEST_TIMEOUT)
        except Exception as exc:  # every failure is counted, by its message
            errors[str(exc)[:40] or type(exc).__name__] = errors.get(str(exc)[:40] or type(exc).__name__, 0) + 1
            return
        results.setdefault(kind, []).append((time.perf_counter() - scheduled) * 1000)

    await asyncio.gather(*(one(i) for i in range(total)))
    return results, errors, time.perf_counter() - t0, total


def report(title: str, results: dict[str, list[float]], errors: dict[str, int], elapsed: float, total: int) -> float:
    every = [v for values in results.values() for v in values]
    print(f"{title}: {len(every)} of {total} answered in {elapsed:.1f} s -> {len(every) / elapsed:.1f} req/s served; "
          f"errors: {errors or 'none'}")
    for name, values in (*sorted(results.items()), ("all", every)):
        if values and not (name != "all" and len(results) == 1):
            print(f"  {name:>7}: n={len(values):6d}  p50={percentile(values, 50):6.1f} ms  "
                  f"p95={percentile(values, 95):6.1f} ms  p99={percentile(values, 99):6.1f} ms  "
                  f"max={max(values):7.1f} ms")
    return percentile(every, 99) if every else float("inf")


async def checked(response: Awaitable[httpx.Response], kind: str) -> str:
    r = await response
    if r.status_code not in (200, 201):
        raise RuntimeError(f"{kind} HTTP {r.status_code}")
    return kind


def lanes(base: str, headers: dict[str, str]) -> list[httpx.AsyncClient]:
    """Several small clients: httpx's pool costs CPU in (queued requests x connections), so one pool of
    hundreds of connections makes the load generator itself the bottleneck as soon as answers queue."""
    limits = httpx.Limits(max_connections=LANE_CONNECTIONS, max_keepalive_connections=LANE_CONNECTIONS)
    return [httpx.AsyncClient(base_url=base, headers=headers, timeout=60, limits=limits) for _ in range(LANES)]


async def service_load(base: str, rate: float, seconds: float, sample: Sample, warmup: int) -> float:
    villages = villages_of(REGENCY)
    kks, niks = sample
    rng = random.Random(7)
    headers = {"Authorization": f"Bearer {token(OfficerRole.FRONT_OFFICE)}"}
    async with AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(client) for client in lanes(base, headers)]
        cases: list[str] = []
        for n in range(warmup):
            r = await clients[0].post("/complaints", json=complaint(n, villages, niks, rng),
                                      headers={"Idempotency-Key": f"w{n}"})
            r.raise_for_status()
            cases.append(r.json()["complaint"]["case_number"])

        async def health(i: int) -> str:
            return await checked(clients[i % LANES].get("/health/live"), "health")

        async def mixed(i: int) -> str:
            http, kind = clients[i % LANES], KINDS[i % 4]
            if kind == "file":
                n = warmup + i
                r = await http.post("/complaints", json=complaint(n, villages, niks, rng),
                                    headers={"Idempotency-Key": f"b{n}"})
                if r.status_code not in (200, 201):
                    raise RuntimeError(f"file HTTP {r.status_code}")
                cases.append(r.json()["complaint"]["case_number"])
                return kind
            if kind == "status":
                return await checked(http.get(f"/complaints/{rng.choice(cases)}"), kind)
            if kind == "by_kk":
                return await checked(http.post("/households/search", json={"kk": rng.choice(kks)}), kind)
            return await checked(http.post("/households/search", json={"nik": rng.choice(niks)}), kind)

        report(f"floor (a): GET /health/live on the same process, {rate:.0f} req/s, {seconds:.0f} s",
               *await open_loop(rate, seconds, health))
        return report(f"service: {rate:.0f} req/s offered for {seconds:.0f} s, a quarter each of "
                      f"POST /complaints, GET /complaints/{{case}}, POST /households/search by KK and by NIK",
                      *await open_loop(rate, seconds, mixed))


async def storage_floor(mongo_url: str, database: str, rate: float, seconds: float, sample: Sample) -> None:
    """Each request kind's storage work by plain PyMongo on the same server, same rate and schedule."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, serverSelectionTimeoutMS=5000,
                                                                 maxPoolSize=200)
    registry = client[database]
    scratch = client[f"floor{uuid.uuid4().hex[:8]}"]
    await scratch["complaints"].create_index("case_number", unique=True)
    secret = IntakeSettings.model_validate({"auth_secret": SECRET}).nik_hash_key()
    kks, niks = sample
    rng = random.Random(11)
    entry = {"event_id": "e", "subject": "s", "body": "x" * 1500, "headers": {"Nats-Msg-Id": "e"}}
    revisions, owners = registry["household_revisions"], registry["nik_owners"]
    cases: list[str] = []

    async def latest(collection: Any, key: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = await collection.find_one({"key": key}, sort=[("n", -1)])
        return found

    async def one(i: int) -> str:
        kind = KINDS[i % 4]
        if kind == "file":
            cid, case = str(uuid.uuid4()), f"c{i}"
            await scratch["complaints"].insert_one({"_id": cid, "case_number": case, "text": "y" * 800,
                                                    "_outbox": [entry]})
            await scratch["views"].insert_one({"_id": case, "complaint_id": cid, "status": "filed"})
            await scratch["complaints"].update_one({"_id": cid}, {"$pullAll": {"_outbox": [entry]}})
            cases.append(case)
        elif kind == "status":
            if cases:
                row = await scratch["views"].find_one({"_id": rng.choice(cases)})
                await scratch["complaints"].find_one({"_id": row["complaint_id"] if row else ""})
        elif kind == "by_kk":
            if await latest(revisions, str(household_id(rng.choice(kks)))) is None:
                raise RuntimeError("KK not found")
        else:
            key = hmac.new(secret, rng.choice(niks).encode(), hashlib.sha256).hexdigest()
            owner = await latest(owners, key)
            if owner is None or await latest(revisions, owner["data"]["household_id"]) is None:
                raise RuntimeError("NIK not found")
        return kind

    try:
        report(f"floor (b): the same storage work by plain PyMongo, {rate:.0f} req/s, {seconds:.0f} s",
               *await open_loop(rate, seconds, one))
    finally:
        await client.drop_database(scratch.name)
        await client.close()


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(143)  # unwind: the servers and the intake process are stopped on the way out


def main() -> None:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # figures show as they come
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=250_000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=int, default=200, help="complaints filed before the load (to read)")
    args = parser.parse_args()
    rng = random.Random(3)
    database = f"bench{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="intake-bench-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        nats_url, mongo_url = start_servers(stack, workdir)
        base = start_intake(stack, workdir, nats_url, mongo_url, database)
        try:
            csv_path, took = load_registry(workdir, base, args.households)
            print(f"registry import: {args.households:,} households in {took:.1f} s "
                  f"({args.households / took:,.0f} households/s, CLI process start included); "
                  f"target under 600 s; load average {os.getloadavg()[0]:.2f}")
            sample = sample_of(csv_path, 20_000, rng)
            p99 = asyncio.run(service_load(base, args.rate, args.seconds, sample, args.warmup))
            asyncio.run(storage_floor(mongo_url, database, args.rate, args.seconds, sample))
            load = os.getloadavg()
            verdict = ("met" if p99 < 50 else "NOT met") if args.rate >= 200 and args.households >= 250_000 \
                else "not measured (a smaller run)"
            print(f"target p99 < 50 ms at 200 req/s with 250,000 households: {verdict} (p99 {p99:.1f} ms at "
                  f"{args.rate:.0f} req/s with {args.households:,}); load average {load[0]:.2f} {load[1]:.2f} "
                  f"{load[2]:.2f} on {os.cpu_count()} cores")
        finally:
            kept = Path(tempfile.gettempdir()) / "intake-bench-last.log"
            kept.write_bytes((workdir / "intake.log").read_bytes())
            print(f"intake log kept at {kept}")


if __name__ == "__main__":
    main()
