"""Referral service benchmark: assessment rules, case opening end to end, and SLA escalation with replicas.

    uv run python bench/referral_flow.py [--complaints 2000] [--overdue 1000]

Starts nats-server and the local Mongo engine (or uses PUSKESOS_NATS_URL / PUSKESOS_MONGO_URL) and runs
``python -m puskesos_referral`` as real processes. Everything shares the machine's cores.

1. ``assess``: pure evaluations per second of the packaged rule set on varied inputs.
2. Opening: ``--complaints`` ComplaintFiled events published at once; time until every CaseOpened
   is in the stream (one process). The floor is the same work done by plain nats-py and PyMongo:
   pull each message, insert one document, publish one event, ack. The service does more per
   complaint (claim insert, read model insert, published flag). At the seeds' scale (100k cases,
   lists per village, the SLA sweep): ``bench/referral_scale.py``.
3. Escalation: ``--overdue`` cases past their deadline, swept by 1 and then 2 replicas (fresh
   data each time); rate between the first and the last escalation seen on /metrics, and a check
   that the stream holds exactly one CaseEscalated per case.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import nats
from nats.aio.client import Client as NatsClient
from puskesos_referral.catalog import packaged_rule_sets
from puskesos_referral.domain.assessment import HouseholdInputs, MemberInputs, Observations, assess, build_inputs
from puskesos_referral.domain.decisions import open_case
from puskesos_referral.store import MongoCaseStore
from puskesos_shared.contracts import Actor, ActorKind, subject_for
from puskesos_shared.contracts.intake import (
    Complainant,
    ComplaintCategory,
    ComplaintChannel,
    ComplaintFiled,
    ComplaintFiledData,
    Disability,
    Electricity,
    FloorType,
    Relationship,
    RoofType,
    Urgency,
    WallType,
    WaterSource,
)
from puskesos_shared.contracts.primitives import OfficerRole, Program, Sex
from puskesos_shared.messaging import encode_event, ensure_streams, event_headers
from puskesos_shared.mongo import Mongo
from puskesos_shared.regions import villages_of
from puskesos_shared.testing.processes import ServiceProcess
from puskesos_shared.testing.servers import resolve_mongo, resolve_nats
from puskesos_shared.topology import Topology

SECRET = "bench-referral-secret-0123456789abcdef0123"
FRONT = Actor(kind=ActorKind.OFFICER, id="bench-fo", role=OfficerRole.FRONT_OFFICE)


def start_servers(stack: ExitStack, workdir: Path) -> tuple[str, str]:
    """nats-server and the Mongo engine as the tests get them (``PUSKESOS_NATS_URL``/``PUSKESOS_MONGO_URL`` win)."""
    nats_handle = resolve_nats(workdir)
    stack.callback(nats_handle.close)
    mongo_handle = resolve_mongo(workdir)
    stack.callback(mongo_handle.close)
    return nats_handle.url, mongo_handle.url


def replica(workdir: Path, nats_url: str, mongo_url: str, namespace: str, name: str, **extra: str) -> ServiceProcess:
    """A started ``python -m puskesos_referral`` on the bench's servers (its log is ``{name}.log``)."""
    return ServiceProcess("puskesos_referral", log_path=workdir / f"{name}.log", env={
        "PUSKESOS_NATS_URL": nats_url, "PUSKESOS_MONGO_URL": mongo_url, "PUSKESOS_NAMESPACE": namespace,
        "PUSKESOS_MONGO_DB": f"{namespace}_referral", "PUSKESOS_AUTH_SECRET": SECRET,
        "PUSKESOS_LOG_LEVEL": "warning", **extra,
    }).start()


def bench_assess(n: int) -> None:
    rng = random.Random(7)
    rule_set = packaged_rule_sets()[0]
    inputs = []
    for _ in range(n):
        members = tuple(MemberInputs(age=rng.randrange(0, 90), sex=rng.choice(list(Sex)),
                                     relationship=rng.choice(list(Relationship)),
                                     disability=rng.choice(list(Disability))) for _ in range(rng.randrange(1, 7)))
        household = HouseholdInputs(kk_revision=1, monthly_income=rng.randrange(0, 5_000_000), dependants=2,
                                    floor=rng.choice(list(FloorType)), wall=rng.choice(list(WallType)),
                                    roof=rng.choice(list(RoofType)), water=rng.choice(list(WaterSource)),
                                    electricity=rng.choice(list(Electricity)), assets=(), members=members)
        observations = Observations(chronic_illness=rng.random() < 0.3, needs_hospital_care=rng.random() < 0.2,
                                    homeless=rng.random() < 0.05,
                                    enrolled_programs=(Program.PKH,) * (rng.random() < 0.2))
        inputs.append(build_inputs(assessed_on=dt.date(2026, 11, 26), category=rng.choice(list(ComplaintCategory)),
                                   urgency=rng.choice(list(Urgency)), observations=observations, household=household))
    started = time.perf_counter()
    for item in inputs:
        assess(item, rule_set)
    elapsed = time.perf_counter() - started
    print(f"assess (pure, {rule_set.tag}): {n} evaluations in {elapsed:.2f} s = {n / elapsed:,.0f}/s")


def complaint(n: int, villages: tuple[str, ...], filed_at: dt.datetime) -> ComplaintFiled:
    village = villages[n % len(villages)]
    cid = uuid.uuid4()
    return ComplaintFiled(
        event_id=uuid.uuid4(), occurred_at=filed_at, producer="intake", correlation_id=f"complaint:{cid}",
        actor=FRONT, village_code=village,
        data=ComplaintFiledData(complaint_id=cid, case_number=f"{village.replace('.', '')}/2026/{n + 1:05d}",
                                category=ComplaintCategory.AID_NOT_RECEIVED, channel=ComplaintChannel.WALK_IN,
                                urgency=Urgency.NORMAL, description="Belum menerima bantuan.",
                                complainant=Complainant(contact_phone="+6281234567890"), village_code=village,
                                filed_by=FRONT.id, filed_at=filed_at))


async def stream_count(js: nats.js.JetStreamContext, topology: Topology) -> int:
    return int((await js.stream_info(topology.events_stream)).state.messages)


async def publish_all(js: nats.js.JetStreamContext, topology: Topology, events: list[ComplaintFiled]) -> None:
    for start in range(0, len(events), 500):
        await asyncio.gather(*(js.publish(subject_for(e, topology), encode_event(e), headers=event_headers(e),
                                          stream=topology.events_stream) for e in events[start:start + 500]))


async def wait_count(js: nats.js.JetStreamContext, topology: Topology, target: int, timeout: float = 600) -> float:
    started = time.perf_counter()
    while await stream_count(js, topology) < target:
        if time.perf_counter() - started > timeout:
            raise SystemExit(f"timed out waiting for {target} messages")
        await asyncio.sleep(0.05)
    return time.perf_counter() - started


async def bench_opening(workdir: Path, nats_url: str, mongo_url: str, n: int) -> None:
    namespace = f"bref{uuid.uuid4().hex[:6]}"
    topology = Topology(namespace=namespace)
    process = replica(workdir, nats_url, mongo_url, namespace, "open", PUSKESOS_ESCALATION_ENABLED="false")
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    try:
        await asyncio.to_thread(process.wait_ready, 90)
        events = [complaint(i, villages_of("35.09"), dt.datetime.now(dt.UTC)) for i in range(n)]
        started = time.perf_counter()
        await publish_all(js, topology, events)
        await wait_count(js, topology, 2 * n)
        service = time.perf_counter() - started
    finally:
        process.stop(30)
    floor = await raw_floor(nc, mongo_url, n)
    await nc.close()
    print(f"opening: {n} complaints -> CaseOpened in {service:.2f} s = {n / service:,.0f} cases/s "
          f"(floor {floor:.2f} s = {n / floor:,.0f}/s; ratio {service / floor:.1f}x)")


async def raw_floor(nc: NatsClient, mongo_url: str, n: int) -> float:
    """Plain nats-py + PyMongo: pull, insert one document, publish one event, ack."""
    topology = Topology(namespace=f"bfloor{uuid.uuid4().hex[:6]}")
    js = nc.jetstream()
    await ensure_streams(js, topology)
    mongo = Mongo(mongo_url, f"{topology.namespace}_floor")
    events = [complaint(i, villages_of("35.09"), dt.datetime.now(dt.UTC)) for i in range(n)]
    subject_in = subject_for(ComplaintFiled, topology)
    subject_out = topology.event_subject("referral", "case_opened", 1)
    sub = await js.pull_subscribe(subject_in, durable="floor", stream=topology.events_stream)
    started = time.perf_counter()
    await publish_all(js, topology, events)
    done = 0
    while done < n:
        for msg in await sub.fetch(64, timeout=5):
            msg_id = (msg.headers or {})["Nats-Msg-Id"]
            await mongo.db["cases"].insert_one({"_id": msg_id, "body": msg.data.decode()})
            await js.publish(subject_out, msg.data, headers={"Nats-Msg-Id": f"out-{msg_id}"})
            await msg.ack()
            done += 1
    elapsed = time.perf_counter() - started
    await mongo.client.drop_database(f"{topology.namespace}_floor")
    await mongo.close()
    return elapsed


async def bench_escalation(workdir: Path, nats_url: str, mongo_url: str, n: int, replicas: int) -> None:
    namespace = f"besc{uuid.uuid4().hex[:6]}"
    topology = Topology(namespace=namespace)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_streams(js, topology)
    mongo = Mongo(mongo_url, f"{namespace}_referral")
    store = MongoCaseStore(mongo.db, topology)
    await store.create_indexes()
    filed = dt.datetime(2026, 1, 5, 2, tzinfo=dt.UTC)  # long overdue
    for i in range(n):  # cases as the service would have opened them (their CaseOpened is not needed here)
        case = open_case(complaint(i, villages_of("35.09"), filed), filed).case
        await store.append(case, [])
        await store.sync_case(case)
    started = time.perf_counter()
    processes = [replica(workdir, nats_url, mongo_url, namespace, f"esc{replicas}-{k}",
                         PUSKESOS_ESCALATION_INTERVAL_SECONDS="0.1") for k in range(replicas)]
    try:
        first: float | None = None
        while (count := await stream_count(js, topology)) < n:  # only CaseEscalated lands in this stream
            if first is None and count:
                first = time.perf_counter()
            if time.perf_counter() - started > 900:
                raise SystemExit("escalation did not finish")
            await asyncio.sleep(0.02)
        done = time.perf_counter()
        await asyncio.sleep(1.0)  # let late duplicates (there must be none) reach the stream
        events = await stream_count(js, topology)
        lost = sum(p.metric("puskesos_referral_claims_lost_total") for p in processes)
        per = [int(p.metric("puskesos_referral_escalations_total")) for p in processes]
    finally:
        for p in processes:
            p.stop(30)
        await mongo.client.drop_database(f"{namespace}_referral")
        await mongo.close()
        await nc.close()
    span = max(done - (first or started), 1e-3)
    print(f"escalation, {replicas} replica(s): {n} cases escalated {span:.2f} s after the first "
          f"(= {n / span:,.0f}/s; {done - started:.1f} s from process start); per replica {per}; "
          f"CaseEscalated in stream {events} (expected {n}); claims lost to the other replica {int(lost)}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--complaints", type=int, default=2000)
    parser.add_argument("--overdue", type=int, default=1000)
    parser.add_argument("--assessments", type=int, default=20000)
    parser.add_argument("--phases", default="assess,open,escalate", help="comma-separated subset to run")
    args = parser.parse_args()
    phases = set(args.phases.split(","))
    if "assess" in phases:
        bench_assess(args.assessments)
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="bench-referral-") as tmp:
        workdir = Path(tmp)
        nats_url, mongo_url = start_servers(stack, workdir)
        if "open" in phases:
            await bench_opening(workdir, nats_url, mongo_url, args.complaints)
        if "escalate" in phases:
            for replicas in (1, 2):
                await bench_escalation(workdir, nats_url, mongo_url, args.overdue, replicas)


if __name__ == "__main__":
    asyncio.run(main())
