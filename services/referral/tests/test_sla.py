"""SLA deadlines in Indonesian working days, SLA states, time zones and the escalation ladder (pure)."""

from __future__ import annotations

import datetime as dt

import pytest
from puskesos_referral.domain import sla
from puskesos_referral.domain.sla import SlaState
from puskesos_shared.contracts.intake import ComplaintCategory, Urgency
from puskesos_shared.contracts.referral import EscalationLevel


def test_table_covers_every_category_and_urgency_and_health_emergencies_take_one_day() -> None:
    for category in ComplaintCategory:
        for urgency in Urgency:
            assert 1 <= sla.sla_working_days(category, urgency) <= 10
        assert sla.sla_working_days(category, Urgency.EMERGENCY) == 1
    assert sla.sla_working_days(ComplaintCategory.HEALTH_REFERRAL, Urgency.HIGH) == 1
    assert sla.sla_working_days(ComplaintCategory.AID_NOT_RECEIVED, Urgency.NORMAL) == 5
    assert sla.sla_working_days(ComplaintCategory.AID_NOT_RECEIVED, Urgency.LOW) == 10


@pytest.mark.parametrize(("filed_on", "category", "urgency", "due"), [
    # Monday, 5 working days: the next Monday
    (dt.date(2026, 11, 2), ComplaintCategory.AID_NOT_RECEIVED, Urgency.NORMAL, dt.date(2026, 11, 9)),
    # Friday, 1 working day: Monday
    (dt.date(2026, 11, 6), ComplaintCategory.HEALTH_REFERRAL, Urgency.EMERGENCY, dt.date(2026, 11, 9)),
    # Saturday: the first working day after it
    (dt.date(2026, 11, 7), ComplaintCategory.HEALTH_REFERRAL, Urgency.EMERGENCY, dt.date(2026, 11, 9)),
    # Wednesday 23 Dec 2026: 24 Dec is cuti bersama, 25 Dec Christmas, then the weekend
    (dt.date(2026, 12, 23), ComplaintCategory.HEALTH_REFERRAL, Urgency.EMERGENCY, dt.date(2026, 12, 28)),
    # across the new year (1 Jan 2027 is a holiday)
    (dt.date(2026, 12, 30), ComplaintCategory.NEGLECTED_CHILD, Urgency.HIGH, dt.date(2027, 1, 4)),
])
def test_deadlines_skip_weekends_and_indonesian_holidays(filed_on: dt.date, category: ComplaintCategory,
                                                         urgency: Urgency, due: dt.date) -> None:
    assert sla.sla_due_on(filed_on, category, urgency) == due


def test_years_without_holiday_data_fall_back_to_weekdays() -> None:
    assert not sla.has_holiday_data(2031)
    assert sla.add_working_days(dt.date(2031, 1, 3), 1) == dt.date(2031, 1, 6)  # Friday -> Monday
    assert sla.is_working_day(dt.date(2031, 1, 1))  # a Wednesday with no data: counted as working


def test_sla_states() -> None:
    due = dt.date(2026, 11, 13)  # Friday
    assert sla.sla_state(due, dt.date(2026, 11, 9)) is SlaState.ON_TRACK
    assert sla.sla_state(due, dt.date(2026, 11, 12)) is SlaState.AT_RISK  # due the next working day
    assert sla.sla_state(due, due) is SlaState.AT_RISK
    assert sla.sla_state(due, dt.date(2026, 11, 14)) is SlaState.BREACHED
    assert sla.overdue_working_days(due, dt.date(2026, 11, 14)) == 0  # only the weekend so far
    assert sla.overdue_working_days(due, dt.date(2026, 11, 17)) == 2


def test_local_dates_follow_the_village_time_zone() -> None:
    moment = dt.datetime(2026, 11, 9, 16, 30, tzinfo=dt.UTC)  # 23:30 WIB, 00:30 WITA and 01:30 WIT next day
    assert sla.local_date("35.09.01.2001", moment) == dt.date(2026, 11, 9)  # Jember: WIB
    assert sla.local_date("51.71.01.1001", moment) == dt.date(2026, 11, 10)  # Denpasar: WITA
    assert sla.local_date("91.71.01.1001", moment) == dt.date(2026, 11, 10)  # Jayapura: WIT
    assert sla.latest_local_date(moment) == dt.date(2026, 11, 10)
    with pytest.raises(ValueError, match="timezone-aware"):
        sla.local_date("35.09.01.2001", dt.datetime(2026, 11, 9, 12))


def test_escalation_ladder_ends_at_the_dinas_sosial() -> None:
    assert sla.next_level(EscalationLevel.VILLAGE) is EscalationLevel.KECAMATAN
    assert sla.next_level(EscalationLevel.KECAMATAN) is EscalationLevel.DINAS_SOSIAL
    assert sla.next_level(EscalationLevel.DINAS_SOSIAL) is None
    assert sla.level_due_on(EscalationLevel.KECAMATAN, dt.date(2026, 11, 10), dt.date(2026, 11, 9)) == dt.date(
        2026, 11, 13)
