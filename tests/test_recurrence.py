"""Recurrence rules in the commune's time zone, without a clock."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from coordinator.recurrence import RecurrenceError, Timing, check_rrule, current_start, next_start

VN = "Asia/Ho_Chi_Minh"
# Monday 23 Nov 2026, 07:30 in Vietnam (UTC+7) is 00:30 UTC.
MONDAY_0730 = datetime(2026, 11, 23, 0, 30, tzinfo=UTC)
WEEKLY = Timing(MONDAY_0730, timedelta(hours=1), "FREQ=WEEKLY;BYDAY=MO", VN)


def test_weekly_meeting_runs_inside_its_window_only() -> None:
    next_monday = MONDAY_0730 + timedelta(days=7)
    assert current_start(WEEKLY, next_monday) == next_monday
    assert current_start(WEEKLY, next_monday + timedelta(minutes=59)) == next_monday
    assert current_start(WEEKLY, next_monday + timedelta(hours=1)) is None
    assert current_start(WEEKLY, next_monday - timedelta(seconds=1)) is None
    assert current_start(WEEKLY, next_monday + timedelta(days=1)) is None


def test_weekly_meeting_stays_at_local_0730() -> None:
    start = next_start(WEEKLY, datetime(2026, 12, 1, tzinfo=UTC))
    assert start == datetime(2026, 12, 7, 0, 30, tzinfo=UTC)


def test_one_off_meeting() -> None:
    timing = Timing(MONDAY_0730, timedelta(minutes=30), None, VN)
    assert current_start(timing, MONDAY_0730 + timedelta(minutes=10)) == MONDAY_0730
    assert current_start(timing, MONDAY_0730 + timedelta(minutes=31)) is None
    assert next_start(timing, MONDAY_0730 - timedelta(days=1)) == MONDAY_0730
    assert next_start(timing, MONDAY_0730) is None


def test_rrule_prefix_and_count() -> None:
    timing = Timing(MONDAY_0730, timedelta(hours=1), "RRULE:FREQ=DAILY;COUNT=2", VN)
    assert current_start(timing, MONDAY_0730 + timedelta(days=1, minutes=5)) == MONDAY_0730 + timedelta(days=1)
    assert current_start(timing, MONDAY_0730 + timedelta(days=2, minutes=5)) is None


@pytest.mark.parametrize(
    ("rule", "fragment"),
    [
        ("FREQ=SOMETIMES", "does not parse"),
        ("every monday", "does not parse"),
        ("DTSTART:20260101T000000\nRRULE:FREQ=DAILY", "leave DTSTART out"),
        ("FREQ=DAILY;UNTIL=20200101T000000Z", "never occurs"),
    ],
)
def test_bad_rrules_are_explained(rule: str, fragment: str) -> None:
    with pytest.raises(RecurrenceError, match=fragment):
        check_rrule(rule, MONDAY_0730, VN)


@pytest.mark.parametrize(
    ("rule", "fragment"),
    [
        ("FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=30", "tần suất FREQ=SECONDLY"),
        ("FREQ=MINUTELY", "tần suất FREQ=MINUTELY"),
        ("FREQ=HOURLY;INTERVAL=2", "tần suất FREQ=HOURLY"),
        ("FREQ=DAILY;BYHOUR=7", "không được có 'BYHOUR'"),
        ("FREQ=YEARLY;BYYEARDAY=100", "không được có 'BYYEARDAY'"),
        ("FREQ=DAILY;INTERVAL=100000", "INTERVAL=100000"),
        ("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30", "không rơi vào ngày nào"),
        ("FREQ=WEEKLY;BYMONTH=4;BYMONTHDAY=31", "không rơi vào ngày nào"),
        ("FREQ=MONTHLY;BYMONTH=2;BYMONTHDAY=-30", "không rơi vào ngày nào"),
        # The day exists (29 Feb 2028), but every fourth year from 2026 is never a leap year.
        ("FREQ=YEARLY;INTERVAL=4;BYMONTH=2;BYMONTHDAY=29", "never occurs"),
        ("FREQ=DAILY;BYSETPOS=2", "BYSETPOS chỉ dùng"),
        ("FREQ=MONTHLY;BYDAY=5MO;BYMONTH=2", "never occurs"),
        ("FREQ=DAILY;" + "BYMONTHDAY=1;" * 100, "tối đa 500"),
    ],
)
def test_rules_a_schedule_does_not_need_are_refused_fast_in_vietnamese(rule: str, fragment: str) -> None:
    began = time.monotonic()
    with pytest.raises(RecurrenceError, match=fragment):
        check_rrule(rule, MONDAY_0730, VN)
    assert time.monotonic() - began < 1.5, "a refused rule must not search the calendar for long"


def test_rare_but_real_rules_are_found_within_the_window() -> None:
    # Friday the 13th, the last weekday of the month, 29 February: all within five years of 2026.
    for rule in (
        "FREQ=MONTHLY;BYDAY=FR;BYMONTHDAY=13",
        "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
        "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29",
        "FREQ=DAILY;UNTIL=20271231T000000Z",
    ):
        check_rrule(rule, MONDAY_0730, VN)
    timing = Timing(MONDAY_0730, timedelta(hours=1), "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", VN)
    assert next_start(timing, MONDAY_0730) == datetime(2028, 2, 29, 0, 30, tzinfo=UTC)
