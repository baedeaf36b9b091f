"""Recurrence rules in the commune's time zone, without a clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from coordinator.recurrence import RecurrenceError, Timing, current_start, next_start, parse_rrule

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
        parse_rrule(rule, MONDAY_0730, VN)
