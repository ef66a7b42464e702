"""Helpers for the referral service's tests: input events, a controllable clock, stream reading, tokens."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from puskesos_referral.app import create_app
from puskesos_referral.settings import ReferralSettings
from puskesos_shared.auth import Officer, issue_token
from puskesos_shared.commands import CommandReply, send_command
from puskesos_shared.contracts import Actor, ActorKind, Event, decode_event, subject_for
from puskesos_shared.contracts.intake import (
    Address,
    Asset,
    Complainant,
    ComplaintCategory,
    ComplaintChannel,
    ComplaintFiled,
    ComplaintFiledData,
    Disability,
    Electricity,
    FloorType,
    Household,
    HouseholdChangeKind,
    HouseholdRegistered,
    HouseholdRegisteredData,
    HouseholdUpdated,
    HouseholdUpdatedData,
    Member,
    Relationship,
    RoofType,
    SocioEconomic,
    Urgency,
    WallType,
    WaterSource,
)
from puskesos_shared.contracts.primitives import OfficerRole, Sex
from puskesos_shared.messaging import encode_event, event_headers
from puskesos_shared.service import ServiceRuntime
from puskesos_shared.testing.app import running_app, runtime_of
from puskesos_shared.topology import Topology

SECRET = "referral-tests-secret-0123456789abcdef"
JEMBER_VILLAGE = "35.09.01.2001"  # Padomasan, Jombang, Kabupaten Jember
MALANG_VILLAGE = "35.73.01.1001"  # Balearjosari, Blimbing, Kota Malang
KK = "3509012003150001"
HEAD_NIK, SPOUSE_NIK, CHILD_NIK, GRANDMOTHER_NIK = (
    "3509010505800001", "3509014101850002", "3509012506150003", "3509015002400004")
FRONT_OFFICE = Actor(kind=ActorKind.OFFICER, id="fo-padomasan-01", role=OfficerRole.FRONT_OFFICE)


class FakeClock:
    """A clock tests move by hand; every replica given the same instance sees the same time."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self.now = start or dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)  # Monday 09:00 WIB

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


def officer(role: OfficerRole, *scope: str, officer_id: str | None = None) -> Officer:
    return Officer(officer_id=officer_id or f"{role.value}-1", role=role, scope=scope or (JEMBER_VILLAGE,))


def token(role: OfficerRole, *scope: str, officer_id: str | None = None) -> str:
    return issue_token(officer(role, *scope, officer_id=officer_id), SECRET)


def bearer(role: OfficerRole, *scope: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(role, *scope)}"}


def household(*, income: int = 1_200_000, village: str = JEMBER_VILLAGE, kk: str = KK) -> Household:
    return Household(
        kk_number=kk,
        address=Address(village_code=village, street="Dusun Krajan", rt="002", rw="001"),
        members=(
            Member(nik=HEAD_NIK, name="Slamet", birth_date=dt.date(1980, 5, 5), sex=Sex.MALE,
                   relationship=Relationship.HEAD, occupation="buruh tani"),
            Member(nik=SPOUSE_NIK, name="Siti", birth_date=dt.date(1985, 1, 1), sex=Sex.FEMALE,
                   relationship=Relationship.SPOUSE),
            Member(nik=CHILD_NIK, name="Dewi", birth_date=dt.date(2015, 6, 25), sex=Sex.FEMALE,
                   relationship=Relationship.CHILD, disability=Disability.PHYSICAL),
        ),
        socio_economic=SocioEconomic(monthly_income=income, floor=FloorType.EARTH, wall=WallType.BAMBOO,
                                     roof=RoofType.ZINC, water=WaterSource.UNPROTECTED_WELL,
                                     electricity=Electricity.VA_450, assets=(Asset.SMARTPHONE,), dependants=2),
    )


def household_registered(hh: Household | None = None, *, event_id: uuid.UUID | None = None,
                         at: dt.datetime | None = None) -> HouseholdRegistered:
    hh = hh or household()
    return HouseholdRegistered(
        event_id=event_id or uuid.uuid4(), occurred_at=at or dt.datetime.now(dt.UTC), producer="intake",
        correlation_id=f"household:{hh.kk_number}", actor=FRONT_OFFICE, village_code=hh.address.village_code,
        data=HouseholdRegisteredData(household_id=uuid.uuid5(uuid.NAMESPACE_URL, hh.kk_number), household=hh,
                                     revision=1))


def household_updated(hh: Household, revision: int, *, event_id: uuid.UUID | None = None) -> HouseholdUpdated:
    return HouseholdUpdated(
        event_id=event_id or uuid.uuid4(), occurred_at=dt.datetime.now(dt.UTC), producer="intake",
        correlation_id=f"household:{hh.kk_number}", actor=FRONT_OFFICE, village_code=hh.address.village_code,
        data=HouseholdUpdatedData(household_id=uuid.uuid5(uuid.NAMESPACE_URL, hh.kk_number), household=hh,
                                  change=HouseholdChangeKind.UPDATE, changed_fields=("socio_economic.monthly_income",),
                                  revision=revision))


def complaint_filed(*, complaint_id: uuid.UUID | None = None, event_id: uuid.UUID | None = None,
                    village: str = JEMBER_VILLAGE, category: ComplaintCategory = ComplaintCategory.HEALTH_REFERRAL,
                    urgency: Urgency = Urgency.HIGH, nik: str | None = HEAD_NIK, kk: str | None = KK,
                    filed_at: dt.datetime | None = None, sequence: int = 1) -> ComplaintFiled:
    complaint_id = complaint_id or uuid.uuid4()
    filed_at = filed_at or dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)
    digits = village.replace(".", "")
    return ComplaintFiled(
        event_id=event_id or uuid.uuid4(), occurred_at=filed_at, producer="intake",
        correlation_id=f"complaint:{complaint_id}", actor=FRONT_OFFICE, village_code=village,
        data=ComplaintFiledData(
            complaint_id=complaint_id, case_number=f"{digits}/{filed_at.year}/{sequence:05d}", category=category,
            channel=ComplaintChannel.WALK_IN, urgency=urgency,
            description="Kepala keluarga sakit berat, keluarga tidak mampu membawa ke rumah sakit.",
            complainant=Complainant(nik=nik, kk_number=kk, contact_phone=None if nik else "+6281234567890"),
            village_code=village, filed_by=FRONT_OFFICE.id, filed_at=filed_at,
        ),
    )


def settings_for(nats_url: str, mongo_url: str, namespace: str, db_prefix: str, **extra: Any) -> ReferralSettings:
    values: dict[str, Any] = {
        "nats_url": nats_url, "mongo_url": mongo_url, "namespace": namespace, "mongo_db": f"{db_prefix}_referral",
        "auth_secret": SECRET, "escalation_interval_seconds": 0.1, "log_json": True, **extra,
    }
    return ReferralSettings(**values)


@dataclass
class Replica:
    app: FastAPI
    http: httpx.AsyncClient

    @property
    def runtime(self) -> ServiceRuntime:
        return runtime_of(self.app)

    @property
    def escalation_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.runtime.state["escalation"]
        return stats


@asynccontextmanager
async def replica(settings: ReferralSettings, clock: FakeClock | None = None) -> AsyncIterator[Replica]:
    app = create_app(settings, clock=clock)
    async with running_app(app) as http:
        yield Replica(app, http)


async def publish(js: JetStreamContext, topology: Topology, event: Event, *, msg_id: str | None = None) -> Any:
    """Publishes an input event as its producer would (``msg_id`` overrides Nats-Msg-Id: a replayed copy)."""
    headers = event_headers(event)
    if msg_id is not None:
        headers["Nats-Msg-Id"] = msg_id
    return await js.publish(subject_for(event, topology), encode_event(event), headers=headers,
                            stream=topology.events_stream)


@dataclass
class StoredEvent:
    seq: int
    subject: str
    headers: dict[str, str]
    event: Event


async def stream_events(js: JetStreamContext, topology: Topology, *, producer: str | None = "referral"
                        ) -> list[StoredEvent]:
    """Every event in the test's events stream (of one producer), in stream order."""
    info = await js.stream_info(topology.events_stream)
    out: list[StoredEvent] = []
    if not info.state.messages:
        return out
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await js.get_msg(topology.events_stream, seq)
        event = decode_event(msg.data or b"")
        if producer is None or event.producer == producer:
            out.append(StoredEvent(seq, msg.subject or "", dict(msg.headers or {}), event))
    return out


async def events_of(js: JetStreamContext, topology: Topology, event_type: str) -> list[Event]:
    return [s.event for s in await stream_events(js, topology) if s.event.event_type == event_type]


async def wait_for(condition: Callable[[], Awaitable[bool]], timeout: float = 20.0, what: str = "condition") -> None:
    """Polls an async condition until it holds; fails after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition():
        if loop.time() > deadline:
            raise AssertionError(f"{what} not met within {timeout:.0f}s")
        await asyncio.sleep(0.05)


async def command(nc: NatsClient, topology: Topology, name: str, body: Any) -> CommandReply:
    return await send_command(nc, topology.command_subject("referral", name), body, timeout=10)

