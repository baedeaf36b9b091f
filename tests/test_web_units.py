"""Pure parts of the web pages: uptime and outages from presence events, the meeting form's translations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from starlette.datastructures import FormData

from coordinator import database
from coordinator.models import Meeting, PresenceEvent, utcnow
from coordinator.registry import Registry
from coordinator.web.forms import MeetingForm, describe_rrule
from coordinator.web.history import History, outages, uptime
from coordinator.web.templating import reason_vi

T0 = datetime(2026, 11, 1, tzinfo=UTC)
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")


def _event(hours: float, up: bool, reason: str | None = None) -> PresenceEvent:
    return PresenceEvent(room_id="tdp-01", at=T0 + timedelta(hours=hours), up=up, reason=reason)


def test_uptime_counts_connected_time_inside_the_window() -> None:
    events = [_event(-5, True), _event(2, False, "no heartbeat for 2 s"), _event(3, True), _event(9, False)]
    # Window [0 h, 10 h]: up 0-2 and 3-9 = 8 of 10 hours; the event before the window sets the state at its start.
    assert uptime(events, T0, T0 + timedelta(hours=10)) == 0.8
    # Still up at the end: counts until now.
    assert uptime(events[:3], T0, T0 + timedelta(hours=4)) == 0.75
    assert uptime([], T0, T0 + timedelta(hours=1)) == 0.0
    assert uptime(events, T0, T0) is None


def test_outages_are_down_periods_newest_first() -> None:
    events = [_event(0, True), _event(2, False, "no heartbeat for 2 s"), _event(3, True), _event(9, False, "x")]
    found = outages(events)
    assert [(o.start, o.end, o.reason) for o in found] == [
        (T0 + timedelta(hours=9), None, "x"),
        (T0 + timedelta(hours=2), T0 + timedelta(hours=3), "no heartbeat for 2 s"),
    ]
    assert found[1].length(T0) == timedelta(hours=1)
    assert outages([]) == []


def test_reasons_are_shown_in_vietnamese() -> None:
    assert reason_vi("no heartbeat for 3 s") == "mất tín hiệu định kỳ (heartbeat)"
    assert reason_vi("agent disconnected (code 1000)") == "máy phòng ngắt kết nối"
    assert reason_vi(None) == ""


def _meeting(rrule: str | None) -> Meeting:
    return Meeting(
        title="Giao ban",
        chair_room="ubnd",
        invited_rooms=["tdp-01"],
        invited_groups=[],
        start=datetime(2026, 11, 30, 0, 30, tzinfo=UTC),  # 07:30 in Viet Nam
        duration_seconds=5400,
        rrule=rrule,
        timezone="Asia/Ho_Chi_Minh",
        mode="presentation",
    )


def test_weekly_form_makes_the_rrule_and_reads_it_back() -> None:
    form = MeetingForm.from_post(
        FormData(
            [
                ("title", "Giao ban"),
                ("chair_room", "ubnd"),
                ("invited_rooms", "tdp-01"),
                ("date", "2026-11-30"),
                ("start_time", "07:30"),
                ("end_time", "09:00"),
                ("repeat", "weekly"),
                ("weekdays", "TH"),
                ("weekdays", "MO"),
            ]
        )
    )
    body, errors = form.body("Asia/Ho_Chi_Minh")
    assert errors == {}
    assert body["rrule"] == "FREQ=WEEKLY;BYDAY=MO,TH"
    assert body["duration_seconds"] == 5400
    assert body["start"] == datetime(2026, 11, 30, 7, 30)

    back = MeetingForm.from_meeting(_meeting("FREQ=WEEKLY;BYDAY=MO,TH"), ZONE)
    assert (back.repeat, back.weekdays, back.start_time, back.end_time) == ("weekly", ["MO", "TH"], "07:30", "09:00")
    assert MeetingForm.from_meeting(_meeting("FREQ=MONTHLY;BYMONTHDAY=1"), ZONE).repeat == "custom"
    assert MeetingForm.from_meeting(_meeting(None), ZONE).repeat == "none"
    assert describe_rrule("FREQ=WEEKLY;BYDAY=MO", _meeting(None).start, ZONE) == "Thứ Hai hằng tuần lúc 07:30"
    assert describe_rrule(None, _meeting(None).start, ZONE) == "Một lần, 07:30 30/11/2026"


async def test_start_closes_stays_the_stop_cut_and_forgets_old_events(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'history.db'}"
    database.migrate(url)
    engine = database.make_engine(url)
    sessions = database.make_sessionmaker(engine)
    try:
        registry = Registry(sessions)
        await registry.enroll("tdp-01", "Tổ dân phố 1", "residential_group")
        await registry.enroll("tdp-02", "Tổ dân phố 2", "residential_group")
        now = utcnow()
        async with sessions() as session, session.begin():
            session.add_all(
                [
                    PresenceEvent(room_id="tdp-01", at=now - timedelta(days=200), up=True),
                    PresenceEvent(room_id="tdp-01", at=now - timedelta(days=100), up=False, reason="old"),
                    PresenceEvent(room_id="tdp-01", at=now - timedelta(days=95), up=True),  # up ever since
                    PresenceEvent(room_id="tdp-02", at=now - timedelta(hours=1), up=True),
                    PresenceEvent(room_id="tdp-02", at=now - timedelta(minutes=30), up=False, reason="x"),
                ]
            )
        await registry.record_agent("tdp-01", seen=now - timedelta(minutes=5))
        history = History(sessions)
        await history.close_dangling(registry)
        one = await history.events("tdp-01")
        assert [(e.up, e.reason) for e in one] == [(True, None), (False, "coordinator restarted")]
        assert one[1].at == now - timedelta(minutes=5)  # it went down when it was last heard of
        # 95 days up then the stop: the 30-day uptime is 100% up to that moment.
        assert uptime(one, now - timedelta(days=30), one[1].at) == 1.0
        assert [(e.up, e.reason) for e in await history.events("tdp-02")] == [(True, None), (False, "x")]
    finally:
        await engine.dispose()
