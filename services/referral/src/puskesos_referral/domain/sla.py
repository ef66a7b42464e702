"""Service levels in Indonesian working days (lokal-id holidays), and the escalation ladder.

SLA table (working days to resolve a case, counted from the local date the complaint was filed;
the deadline is the last working day, so a case filed on a Saturday with 1 day is due on Monday):

==========================================  =========  ====  ======  ===
category                                    emergency  high  normal  low
==========================================  =========  ====  ======  ===
health_referral                             1          1     2       3
neglected_child, disaster_victim            1          2     3       5
elderly_alone, homeless_or_beggar,
disability                                  1          3     5       7
aid_not_received, data_correction, other    1          3     5       10
==========================================  =========  ====  ======  ===

SLA state of an open case on a given local date: ``breached`` once the date is past the
deadline, ``at_risk`` when at most ``AT_RISK_WORKING_DAYS`` working days are left (due today
or on the next working day), ``on_track`` otherwise.

Escalation: an unresolved case past its deadline goes from the village (Puskesos officers)
to the kecamatan coordinator (TKSK), who gets ``KECAMATAN_WINDOW_WORKING_DAYS`` more working
days; past that, it goes to the Dinas Sosial, the last level. One escalation per level, ever.

Working days come from lokal-id (national holidays and cuti bersama off). lokal-id refuses
years it has no holiday data for; there the calendar falls back to "Monday to Friday" so that a
case is never lost for want of a holiday table (the service warns at start-up when that applies).
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from functools import lru_cache

import lokal
from puskesos_shared.contracts.intake import ComplaintCategory, Urgency
from puskesos_shared.contracts.referral import EscalationLevel

AT_RISK_WORKING_DAYS = 1
KECAMATAN_WINDOW_WORKING_DAYS = 3

_C = ComplaintCategory
_TABLE: dict[tuple[ComplaintCategory, ...], tuple[int, int, int, int]] = {
    # emergency, high, normal, low
    (_C.HEALTH_REFERRAL,): (1, 1, 2, 3),
    (_C.NEGLECTED_CHILD, _C.DISASTER_VICTIM): (1, 2, 3, 5),
    (_C.ELDERLY_ALONE, _C.HOMELESS_OR_BEGGAR, _C.DISABILITY): (1, 3, 5, 7),
    (_C.AID_NOT_RECEIVED, _C.DATA_CORRECTION, _C.OTHER): (1, 3, 5, 10),
}
_URGENCY_COLUMN = {Urgency.EMERGENCY: 0, Urgency.HIGH: 1, Urgency.NORMAL: 2, Urgency.LOW: 3}
SLA_WORKING_DAYS: dict[tuple[ComplaintCategory, Urgency], int] = {
    (category, urgency): row[column]
    for categories, row in _TABLE.items()
    for category in categories
    for urgency, column in _URGENCY_COLUMN.items()
}
if len(SLA_WORKING_DAYS) != len(ComplaintCategory) * len(Urgency):  # pragma: no cover - import-time check
    raise RuntimeError("the SLA table must cover every complaint category and urgency")


class SlaState(StrEnum):
    ON_TRACK = "on_track"
    AT_RISK = "at_risk"
    BREACHED = "breached"


# --- local time ---------------------------------------------------------------------------------
WIB = dt.timezone(dt.timedelta(hours=7), "WIB")
WITA = dt.timezone(dt.timedelta(hours=8), "WITA")
WIT = dt.timezone(dt.timedelta(hours=9), "WIT")
_WITA_PROVINCES = {"51", "52", "53", "63", "64", "65", "71", "72", "73", "74", "75", "76"}
_WIT_PROVINCE_PREFIXES = ("8", "9")  # Maluku, Maluku Utara and the Papua provinces


def village_timezone(village_code: str) -> dt.timezone:
    """WIB, WITA or WIT from the province digits of a Kemendagri code."""
    province = village_code[:2]
    if province in _WITA_PROVINCES:
        return WITA
    if province.startswith(_WIT_PROVINCE_PREFIXES):
        return WIT
    return WIB


def local_date(village_code: str, moment: dt.datetime) -> dt.date:
    """The calendar date at the village (or kecamatan: any Kemendagri code) at ``moment`` (timezone-aware)."""
    if moment.tzinfo is None:
        raise ValueError("moment must be timezone-aware")
    return moment.astimezone(village_timezone(village_code)).date()


def latest_local_date(moment: dt.datetime) -> dt.date:
    """The latest local date anywhere in Indonesia at ``moment`` (in WIT, the easternmost zone)."""
    return moment.astimezone(WIT).date()


# --- working days ---------------------------------------------------------------------------------
@lru_cache(maxsize=4096)
def is_working_day(day: dt.date) -> bool:
    try:
        return bool(lokal.is_working_day(day))
    except ValueError:  # no holiday data for that year: weekdays only (see the module docstring)
        return day.weekday() < 5


def has_holiday_data(year: int) -> bool:
    return year in lokal.HOLIDAY_YEARS


def add_working_days(start: dt.date, days: int) -> dt.date:
    """The date ``days`` working days after ``start`` (``days`` >= 0; 0 gives ``start``)."""
    if days < 0:
        raise ValueError("days must not be negative")
    current, left = start, days
    while left:
        current += dt.timedelta(days=1)
        if is_working_day(current):
            left -= 1
    return current


def working_days_between(after: dt.date, until: dt.date) -> int:
    """Working days in the interval (after, until]: 0 when ``until`` <= ``after``."""
    count, current = 0, after
    while current < until:
        current += dt.timedelta(days=1)
        if is_working_day(current):
            count += 1
    return count


# --- SLA ------------------------------------------------------------------------------------------
def sla_working_days(category: ComplaintCategory, urgency: Urgency) -> int:
    return SLA_WORKING_DAYS[(category, urgency)]


def sla_due_on(filed_on: dt.date, category: ComplaintCategory, urgency: Urgency) -> dt.date:
    return add_working_days(filed_on, sla_working_days(category, urgency))


def sla_state(due_on: dt.date, today: dt.date) -> SlaState:
    if today > due_on:
        return SlaState.BREACHED
    if working_days_between(today, due_on) <= AT_RISK_WORKING_DAYS:
        return SlaState.AT_RISK
    return SlaState.ON_TRACK


def overdue_working_days(due_on: dt.date, today: dt.date) -> int:
    return working_days_between(due_on, today)


# --- escalation ladder ----------------------------------------------------------------------------
_NEXT_LEVEL = {EscalationLevel.VILLAGE: EscalationLevel.KECAMATAN,
               EscalationLevel.KECAMATAN: EscalationLevel.DINAS_SOSIAL}


def next_level(level: EscalationLevel) -> EscalationLevel | None:
    """The level above ``level``, or None at the top (the Dinas Sosial)."""
    return _NEXT_LEVEL.get(level)


def level_due_on(level: EscalationLevel, escalated_on: dt.date, sla_due: dt.date) -> dt.date:
    """The deadline a case has once it reached ``level`` on ``escalated_on``."""
    if level is EscalationLevel.KECAMATAN:
        return add_working_days(escalated_on, KECAMATAN_WINDOW_WORKING_DAYS)
    if level is EscalationLevel.VILLAGE:
        return sla_due
    return escalated_on  # the Dinas Sosial is the last level: nothing escalates further
