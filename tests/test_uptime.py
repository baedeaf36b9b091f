"""The uptime report's arithmetic (the live Prometheus part is in test_alerting_live.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from phonghop.uptime import LOCAL, UptimeError, month_bounds, summarize, vietnamese_duration

STEP = timedelta(seconds=60)


def test_outages_are_runs_of_down_samples() -> None:
    start = datetime(2026, 11, 1, tzinfo=LOCAL).timestamp()
    values = [1, 1, 0, 0, 0, 1, 1, 0, 0]
    room = summarize("tdp-01", [(start + i * 60, v) for i, v in enumerate(values)], STEP)
    assert room.availability == pytest.approx(4 / 9)
    assert [(o.start.minute, o.end.minute, o.ongoing) for o in room.outages] == [(2, 5, False), (7, 9, True)]
    assert room.downtime == timedelta(minutes=5)


def test_a_room_without_samples_has_no_availability() -> None:
    assert summarize("tdp-02", [], STEP).availability is None


def test_month_bounds_in_the_communes_time_zone() -> None:
    now = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
    start, end = month_bounds("2026-10", now)
    assert start == datetime(2026, 10, 1, tzinfo=LOCAL)
    assert end == datetime(2026, 11, 1, tzinfo=LOCAL)
    start, end = month_bounds(None, now)
    assert start == datetime(2026, 11, 1, tzinfo=LOCAL)
    assert end == now
    # 31 Oct 18:00 UTC is already 1 Nov in Viet Nam.
    assert month_bounds(None, datetime(2026, 10, 31, 18, 0, tzinfo=UTC))[0].month == 11


@pytest.mark.parametrize(("month", "hint"), [("11-2026", "NĂM-THÁNG"), ("2026-13", "NĂM-THÁNG"), ("2027-01", "chưa")])
def test_bad_months_are_refused_with_a_hint(month: str, hint: str) -> None:
    with pytest.raises(UptimeError, match=hint):
        month_bounds(month, datetime(2026, 11, 26, tzinfo=UTC))


def test_durations_read_in_vietnamese() -> None:
    assert vietnamese_duration(timedelta(seconds=8)) == "8 giây"
    assert vietnamese_duration(timedelta(hours=26, minutes=5)) == "1 ngày 2 giờ 5 phút"
