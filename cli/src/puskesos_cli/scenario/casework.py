"""Case work: the referral service opens a case per complaint; assessors assess, refer and close.

Per case, in the assessor's order: wait until the case is open (the referral service consumes
ComplaintFiled), assess with observations consistent with the household and the complaint,
refer to a target the assessment makes the case eligible for (the regency's hospital, a
program desk, rehabilitation, the Dinas Sosial), let the target answer over NATS
(``respond_referral``, as the target system), and close. A share of cases is left open on
purpose (no visit yet, a referral still pending, a referral rejected twice, which escalates to
the kecamatan), so the report shows every SLA state; ``days_later`` then moves the referral
service's clock so its SLA loop escalates the overdue ones.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from typing import Any

from puskesos_shared.ids import stable_id

from .context import ComplaintWork, Scenario
from .http import ApiError, run_pool

HOSPITAL = {"35.73": "RSUD-SAIFUL-ANWAR", "35.09": "RSD-SOEBANDI"}
REHABILITATION = {"35.73": "LKS-REHAB-MALANG", "35.09": "LKS-REHAB-JEMBER"}
DINSOS = {"35.73": "DINSOS-MALANG", "35.09": "DINSOS-JEMBER"}
PROGRAM_CODE = {"PKH": "PKH", "BPNT": "BPNT", "PBI_JK": "PBI-JK", "BLT": "BLT"}
#: Programs an assessor looks at first, by complaint category.
PREFERRED = {
    "health_referral": ("HOSPITAL_REFERRAL", "PBI_JK"),
    "aid_not_received": ("BLT", "PKH", "BPNT"),
    "elderly_alone": ("PKH", "PBI_JK", "BLT"),
    "disability": ("REHABILITATION", "PKH", "PBI_JK"),
    "neglected_child": ("REHABILITATION", "PKH", "PBI_JK"),
    "homeless_or_beggar": ("REHABILITATION", "PBI_JK"),
    "disaster_victim": ("BLT", "BPNT", "PBI_JK"),
}
CASE_OPEN_TIMEOUT = 120.0


def target_for(category: str, eligibility: dict[str, bool], regency: str) -> str | None:
    for program in PREFERRED.get(category, ()):
        if not eligibility.get(program):
            continue
        if program == "HOSPITAL_REFERRAL":
            return HOSPITAL[regency]
        if program == "REHABILITATION":
            return REHABILITATION[regency]
        return f"{DINSOS[regency]}-{PROGRAM_CODE[program]}"
    if category in ("neglected_child", "homeless_or_beggar", "elderly_alone"):
        return DINSOS[regency]  # the Dinas Sosial takes any case
    return None


def observations(work: ComplaintWork, rng: random.Random) -> dict[str, Any]:
    """What the assessor sees on the visit, consistent with the complaint and the household."""
    obs: dict[str, Any] = {}
    match work.category:
        case "health_referral":
            obs |= {"chronic_illness": True, "needs_hospital_care": rng.random() < 0.8,
                    "has_health_insurance": rng.random() < 0.3}
        case "elderly_alone":
            obs["elderly_alone"] = True
        case "disability":
            obs["disability_support_needed"] = True
        case "neglected_child":
            obs["child_neglected"] = True
        case "homeless_or_beggar":
            obs |= {"homeless": True, "begging": rng.random() < 0.4}
        case "disaster_victim":
            obs["disaster_affected"] = True
    family = work.family
    if family is not None:
        if work.category in ("aid_not_received", "disaster_victim", "data_correction") or rng.random() < 0.3:
            obs |= {"income_verified": True, "verified_monthly_income": family.monthly_income}
        if family.poor and rng.random() < 0.25:
            obs["enrolled_programs"] = ["BPNT"]
    return obs


def plan_of(rng: random.Random, referred: bool) -> str:
    r = rng.random()
    if not referred:
        return "close" if r < 0.9 else "leave_open"
    for plan, upto in (("completed", 0.5), ("accepted_open", 0.62), ("no_answer", 0.7),
                       ("rejected_then_completed", 0.88)):
        if r < upto:
            return plan
    return "rejected_twice"


class CaseWorker:
    def __init__(self, s: Scenario) -> None:
        self.s = s
        self.open_seconds: list[float] = []

    def command_id(self, work: ComplaintWork, what: str) -> str:
        return str(stable_id("demo-command", self.s.options.run_id, work.index, what))

    async def wait_open(self, work: ComplaintWork) -> dict[str, Any]:
        started = time.monotonic()
        headers = self.s.officers.assessor(work.village_code)
        while True:
            found = await self.s.referral.call("GET", f"/cases/{work.case_id}", headers=headers, ok=(200, 404))
            if found and found.get("case_id"):
                self.open_seconds.append(time.monotonic() - started)
                return dict(found)
            if time.monotonic() - started > CASE_OPEN_TIMEOUT:
                raise TimeoutError(f"case {work.case_number} was not opened within {CASE_OPEN_TIMEOUT:.0f}s")
            await asyncio.sleep(0.25)

    async def assess(self, work: ComplaintWork, rng: random.Random, n: int) -> dict[str, bool]:
        body: dict[str, Any] = {"command_id": self.command_id(work, f"assess-{n}"),
                                "observations": observations(work, rng),
                                "note": "kunjungan rumah" if n == 1 else "asesmen ulang setelah rujukan ditolak"}
        if work.family is not None:
            body["kk_number"] = work.family.kk_number
        result = await self.s.referral.post(f"/cases/{work.case_id}/assessments", body,
                                            headers=self.s.officers.assessor(work.village_code))
        work.assessment = result["result"]
        return {e["program"]: bool(e["eligible"]) for e in result["result"]["eligibility"]}

    async def refer(self, work: ComplaintWork, target: str, n: int) -> dict[str, Any]:
        body = {"command_id": self.command_id(work, f"refer-{n}"), "target_code": target,
                "instructions": "Bawa KK, KTP dan surat rujukan dari Puskesos."}
        result = await self.s.referral.post(f"/cases/{work.case_id}/referrals", body,
                                            headers=self.s.officers.assessor(work.village_code))
        referral = dict(result["referral"])
        work.referrals.append(referral)
        return referral

    async def respond(self, referral: dict[str, Any], outcome: str, target: str) -> None:
        body = {"referral_id": referral["referral_id"], "outcome": outcome, "responded_by": target,
                "note": {"accepted": "pasien diterima", "completed": "layanan selesai diberikan",
                         "rejected": "tidak memenuhi syarat layanan"}[outcome]}
        for attempt in range(10):
            reply = await self.s.bus.command("referral", "respond_referral", body)
            if reply.ok:
                return
            code = (reply.error or {}).get("code")
            if code not in ("concurrent_update", "internal_error") or attempt == 9:
                raise RuntimeError(f"respond_referral {outcome} failed: {reply.error}")
            await asyncio.sleep(0.2 * (attempt + 1))

    async def close(self, work: ComplaintWork, resolution: str, reason: str) -> None:
        body = {"command_id": self.command_id(work, "close"), "resolution": resolution, "reason": reason}
        await self.s.referral.post(f"/cases/{work.case_id}/close", body,
                                   headers=self.s.officers.assessor(work.village_code))
        work.closed = True

    async def work(self, work: ComplaintWork) -> str:
        rng = random.Random(f"{self.s.options.seed}:case:{work.index}")  # noqa: S311 - synthetic scenario
        work.case_id = str(stable_id("case", uuid.UUID(work.complaint_id)))
        await self.wait_open(work)
        if not work.created:
            work.plan, work.closed = "filed_before", True  # someone else's case work: leave it alone
            return work.plan
        if rng.random() < 0.08:
            work.plan = "not_visited"
            return work.plan
        regency = self.s.options.regency
        eligibility = await self.assess(work, rng, 1)
        target = target_for(work.category, eligibility, regency)
        work.plan = plan_of(rng, target is not None)
        if target is None:
            if work.plan == "close":
                eligible = any(eligibility.values())
                await self.close(work, "resolved" if eligible or work.category in ("data_correction", "other")
                                 else "rejected", "Ditangani langsung oleh Puskesos; warga sudah diberi penjelasan.")
            return work.plan
        referral = await self.refer(work, target, 1)
        if work.plan in ("completed", "rejected_then_completed", "rejected_twice", "accepted_open"):
            if work.plan.startswith("rejected"):
                await self.respond(referral, "rejected", target)
                await self.assess(work, rng, 2)
                target = DINSOS[regency]
                referral = await self.refer(work, target, 2)
                if work.plan == "rejected_twice":
                    await self.respond(referral, "rejected", target)  # the second rejection escalates
                    return work.plan
            await self.respond(referral, "accepted", target)
            if work.plan == "accepted_open":
                return work.plan
            await self.respond(referral, "completed", target)
            await self.close(work, "referred_and_completed", "Rujukan selesai dan dikonfirmasi oleh penerima rujukan.")
        return work.plan


async def work_cases(s: Scenario) -> None:
    worker = CaseWorker(s)
    plans, _seconds = await run_pool(s.complaints, worker.work, concurrency=s.options.concurrency, console=s.console,
                                    label="cases worked")
    counts = Counter(plans)
    referrals = sum(len(w.referrals) for w in s.complaints)
    s.facts["case_plans"] = dict(counts.most_common())
    s.facts["referrals"] = referrals
    s.facts["case_open_seconds_max"] = round(max(worker.open_seconds, default=0.0), 2)
    s.say(f"  {len(plans)} cases: {sum(1 for w in s.complaints if w.closed)} closed, "
          f"{referrals} referrals; " + ", ".join(f"{k} {n}" for k, n in counts.most_common()))


async def case_details(s: Scenario, works: list[ComplaintWork]) -> list[dict[str, Any]]:
    async def detail(work: ComplaintWork) -> dict[str, Any]:
        try:
            found = await s.referral.get(f"/cases/{work.case_id}", headers=s.officers.assessor(work.village_code))
        except ApiError:
            return {}
        return dict(found)

    return list(await asyncio.gather(*(detail(w) for w in works)))
