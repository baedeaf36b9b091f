"""The schedule as an iCalendar feed (RFC 5545), so it shows in calendar apps."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, vRecur

from coordinator.models import Meeting


def calendar_feed(meetings: list[Meeting]) -> bytes:
    cal = Calendar()
    cal.add("prodid", "-//phonghop//Phong hop truc tuyen//VI")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", "Lịch họp trực tuyến")
    for meeting in meetings:
        event = Event()
        event.add("uid", f"meeting-{meeting.id}@phonghop")
        event.add("summary", meeting.title)
        start = meeting.start.astimezone(ZoneInfo(meeting.timezone))
        event.add("dtstart", start)
        event.add("dtend", start + timedelta(seconds=meeting.duration_seconds))
        event.add("dtstamp", meeting.created_at)
        event.add("location", f"Chủ trì: {meeting.chair_room}")
        if meeting.rrule:
            event.add("rrule", vRecur.from_ical(meeting.rrule.removeprefix("RRULE:")))
        cal.add_component(event)
    return bytes(cal.to_ical())
