"""Crash safety with real processes: killed between the write and the publish, and mid-burst.

The fault hook (``PUSKESOS_INTAKE_FAULT``) ends the process with ``os._exit(137)`` right after
the write that stored the events, before anything is published; a restart must publish each
event exactly once, and retries with the same Idempotency-Key must find what was written.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from pathlib import Path

import httpx
import pytest
from intake_testkit import BACK, FRONT, complaint, env_for, events_of, household, member, nik, wait_for
from nats.js import JetStreamContext
from puskesos_intake.settings import IntakeSettings
from puskesos_shared.contracts.intake import ComplaintFiled, HouseholdUpdated
from puskesos_shared.testing.processes import ServiceProcess
from puskesos_shared.topology import Topology

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


def intake(settings: IntakeSettings, tmp_path: Path) -> ServiceProcess:
    return ServiceProcess("puskesos_intake", log_path=tmp_path / "intake.log", env=env_for(settings))


async def started(proc: ServiceProcess, **env: str) -> ServiceProcess:
    proc.start(**env)
    await asyncio.to_thread(proc.wait_ready)
    return proc


async def count(js: JetStreamContext, topology: Topology, event_type: str) -> int:
    return len(await events_of(js, topology, event_type))


async def test_complaint_event_published_once_after_crash_between_write_and_publish(
    settings: IntakeSettings, jetstream: JetStreamContext, topology: Topology, tmp_path: Path
) -> None:
    proc = intake(settings, tmp_path)
    try:
        await started(proc, PUSKESOS_INTAKE_FAULT="crash_after_write")
        headers = {**FRONT, "Idempotency-Key": "crash-1"}
        async with httpx.AsyncClient(base_url=proc.base_url, timeout=30) as http:
            with pytest.raises(httpx.HTTPError):
                await http.post("/complaints", json=complaint(), headers=headers)
        assert await asyncio.to_thread(proc.wait_exit) == 137
        assert await count(jetstream, topology, "ComplaintFiled") == 0  # written, not published

        await started(proc)
        async with httpx.AsyncClient(base_url=proc.base_url, timeout=30) as http:
            async def published() -> bool:
                return await count(jetstream, topology, "ComplaintFiled") >= 1
            await wait_for(published, what="ComplaintFiled republished at start-up")
            retry = await http.post("/complaints", json=complaint(), headers=headers)
            assert retry.status_code == 200 and retry.json()["created"] is False
            case_number = retry.json()["complaint"]["case_number"]
            assert case_number.endswith("/00001")
            assert (await http.get(f"/complaints/{case_number}", headers=FRONT)).status_code == 200
            assert (await http.get("/complaints", headers=FRONT)).json()["total"] == 1
        (event,) = await events_of(jetstream, topology, "ComplaintFiled")
        assert isinstance(event, ComplaintFiled) and event.data.case_number == case_number
    finally:
        proc.stop()


async def test_household_event_published_once_after_crash(
    settings: IntakeSettings, jetstream: JetStreamContext, topology: Topology, tmp_path: Path
) -> None:
    proc = intake(settings, tmp_path)
    data = household()
    try:
        await started(proc, PUSKESOS_INTAKE_FAULT="crash_after_write")
        async with httpx.AsyncClient(base_url=proc.base_url, timeout=30) as http:
            with pytest.raises(httpx.HTTPError):
                await http.post("/households", json=data, headers=BACK)
        assert await asyncio.to_thread(proc.wait_exit) == 137
        await started(proc)
        async with httpx.AsyncClient(base_url=proc.base_url, timeout=30) as http:
            async def published() -> bool:
                return await count(jetstream, topology, "HouseholdRegistered") >= 1
            await wait_for(published, what="HouseholdRegistered republished")
            again = await http.post("/households", json=data, headers=BACK)
            assert again.status_code == 200 and again.json()["outcome"] == "unchanged"
        assert await count(jetstream, topology, "HouseholdRegistered") == 1
    finally:
        proc.stop()


async def test_transfer_interrupted_after_the_first_household_is_finished_at_start_up(
    settings: IntakeSettings, jetstream: JetStreamContext, topology: Topology, tmp_path: Path
) -> None:
    proc = intake(settings, tmp_path)
    child = nik(dt.date(2012, 3, 20))
    source = household(members=[member(nik(), "kepala_keluarga"), member(child, "anak", birth=dt.date(2012, 3, 20))])
    target = household(members=[member(nik(), "kepala_keluarga")])
    try:
        await started(proc)
        async with httpx.AsyncClient(base_url=proc.base_url, timeout=30) as http:
            for h in (source, target):
                assert (await http.post("/households", json=h, headers=BACK)).status_code == 201
        proc.stop()
        await started(proc, PUSKESOS_INTAKE_FAULT="crash_after_transfer_out")
        async with httpx.AsyncClient(base_url=proc.base_url, timeout=30) as http:
            with pytest.raises(httpx.HTTPError):
                await http.post("/households/transfers", json={"from_kk": source["kk_number"], "nik": child,
                                                               "to_kk": target["kk_number"], "relationship": "anak"},
                                headers=BACK)
        assert await asyncio.to_thread(proc.wait_exit) == 137
        await started(proc)  # the recovery resumes the pending transfer
        async with httpx.AsyncClient(base_url=proc.base_url, timeout=30) as http:
            async def both_updated() -> bool:
                return await count(jetstream, topology, "HouseholdUpdated") >= 2
            await wait_for(both_updated, what="transfer_in after restart")
            reveal = {"reveal": True, "purpose": "check the transfer after the crash"}
            moved = (await http.post("/households/search", json={"kk": target["kk_number"], **reveal},
                                     headers=BACK)).json()
            left = (await http.post("/households/search", json={"kk": source["kk_number"], **reveal},
                                    headers=BACK)).json()
            assert [m["nik"] for m in moved["household"]["members"]][-1] == child
            assert child not in [m["nik"] for m in left["household"]["members"]]
            clash = await http.post("/households", json=household(members=[member(nik(), "kepala_keluarga"),
                                                                            member(child, "anak")]), headers=BACK)
            assert clash.status_code == 409 and target["kk_number"] in clash.json()["detail"]
        updates = [e for e in await events_of(jetstream, topology, "HouseholdUpdated")
                   if isinstance(e, HouseholdUpdated)]
        assert sorted(e.data.change.value for e in updates) == ["transfer_in", "transfer_out"]
        log = proc.log_path.read_text()
        assert child not in log and source["kk_number"] not in log  # personal data never logged in clear
    finally:
        proc.stop()


async def test_sigkill_mid_burst_loses_no_complaint_and_leaves_no_gap(
    settings: IntakeSettings, jetstream: JetStreamContext, topology: Topology, tmp_path: Path
) -> None:
    proc = intake(settings, tmp_path)
    n = 60
    bodies = [complaint(description=f"keluhan {i}") for i in range(n)]
    keys = [{**FRONT, "Idempotency-Key": f"burst-{i}"} for i in range(n)]
    try:
        await started(proc)
        async with httpx.AsyncClient(base_url=proc.base_url, timeout=30) as http:
            done = 0

            async def one(i: int) -> None:
                nonlocal done
                r = await http.post("/complaints", json=bodies[i], headers=keys[i])
                assert r.status_code == 201
                done += 1
                if done == n // 3:
                    proc.kill()  # SIGKILL while the rest are in flight

            await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
        assert not proc.running
        await started(proc)
        async with httpx.AsyncClient(base_url=proc.base_url, timeout=30) as http:
            retried = await asyncio.gather(*(http.post("/complaints", json=bodies[i], headers=keys[i])
                                             for i in range(n)))
        assert {r.status_code for r in retried} <= {200, 201}
        numbers = sorted(int(r.json()["complaint"]["case_number"].rsplit("/", 1)[1]) for r in retried)
        assert numbers == list(range(1, n + 1))

        async def all_published() -> bool:
            return await count(jetstream, topology, "ComplaintFiled") >= n
        await wait_for(all_published, timeout=60, what="every ComplaintFiled")
        events = [e for e in await events_of(jetstream, topology, "ComplaintFiled") if isinstance(e, ComplaintFiled)]
        assert len(events) == n and set(Counter(e.data.complaint_id for e in events).values()) == {1}
    finally:
        proc.stop()
