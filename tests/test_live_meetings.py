"""Running meetings against a real database, with rooms reached through the meetings' narrow channel.

Every ``await`` in the live state lets another event in: a room that goes away
while a meeting ends must still leave cleanly and leave its history behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel
from sqlalchemy import select

from coordinator.attendance import AttendanceBook
from coordinator.connections import PendingCommand
from coordinator.database import make_engine, make_sessionmaker, migrate
from coordinator.live_meetings import ActiveMeeting, LiveMeetings
from coordinator.models import Attendance, Meeting, Occurrence, utcnow
from phonghop.protocol import Ack, Action, MeetingRef


class Channels:
    """The meetings' view of the rooms' control channels; records what the rooms were told."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, Action, int | None]] = []

    def greeted(self, room_id: str) -> bool:
        return True

    async def send(self, room_id: str, message: BaseModel) -> bool:
        return True

    async def command(self, room_id: str, action: Action, meeting: MeetingRef | None = None) -> bool:
        self.commands.append((room_id, action, meeting.id if meeting else None))
        return True


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[LiveMeetings]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'live.db'}"
    await asyncio.to_thread(migrate, url)
    engine = make_engine(url)
    meetings = LiveMeetings(Channels(), AttendanceBook(make_sessionmaker(engine)))
    yield meetings
    await meetings.shutdown()
    await engine.dispose()


async def _running(live: LiveMeetings, title: str, rooms: set[str]) -> ActiveMeeting:
    now = utcnow()
    meeting = Meeting(title=title, chair_room="ubnd", start=now, duration_seconds=600)
    async with live.book._sessions() as session, session.begin():
        session.add(meeting)
    occurrence = await live.book.start_occurrence(meeting.id, now, now, now + timedelta(minutes=10))
    active = await live.start(meeting, occurrence, rooms)
    for room in sorted(rooms):
        if live.duty_of(room) is active:
            await live.room_answered(PendingCommand(room, "join", meeting.id), Ack(command_id="x"))
    return active


async def _stays(live: LiveMeetings, room: str) -> list[Attendance]:
    async with live.book._sessions() as session:
        return list((await session.scalars(select(Attendance).where(Attendance.room_id == room))).all())


async def test_room_lost_while_another_meeting_ends(live: LiveMeetings) -> None:
    first = await _running(live, "Giao ban", {"ubnd", "tdp-01"})
    second = await _running(live, "Chuyên đề", {"tdp-02"})
    assert first.joined == {"ubnd", "tdp-01"}

    await asyncio.gather(live.room_disconnected("tdp-01", "link lost"), live.stop(second.meeting_id, "ended"))

    assert "tdp-01" not in first.joined
    stays = await _stays(live, "tdp-01")
    assert [(s.left_at is not None, s.left_reason) for s in stays] == [(True, "link lost")]


async def test_shutdown_while_a_meeting_ends(live: LiveMeetings) -> None:
    first = await _running(live, "Giao ban", {"ubnd", "tdp-01"})
    second = await _running(live, "Chuyên đề", {"tdp-02", "tdp-03"})

    await asyncio.gather(live.shutdown(), live.stop(second.meeting_id, "ended"))

    assert first.joined == set()
    for room in ("ubnd", "tdp-01"):
        assert [s.left_reason for s in await _stays(live, room)] == ["coordinator stopped"]


async def test_leave_is_a_command_like_join(live: LiveMeetings) -> None:
    active = await _running(live, "Giao ban", {"ubnd", "tdp-01"})
    await live.stop(active.meeting_id, "scheduled end")
    channels = live._channels
    assert isinstance(channels, Channels)
    leaves = sorted(c for c in channels.commands if c[1] == "leave")
    assert leaves == [("tdp-01", "leave", None), ("ubnd", "leave", None)]


async def test_a_new_end_is_kept_and_told_to_the_rooms_in_the_meeting(live: LiveMeetings) -> None:
    active = await _running(live, "Giao ban", {"ubnd", "tdp-01"})
    channels = live._channels
    assert isinstance(channels, Channels)
    channels.commands.clear()
    later = active.ends_at + timedelta(minutes=30)

    await live.revise(active.meeting_id, "Giao ban (kéo dài)", later)
    await live.revise(active.meeting_id, "Giao ban (kéo dài)", later)  # nothing new: nobody is told twice

    assert (active.title, active.ends_at) == ("Giao ban (kéo dài)", later)
    assert sorted(channels.commands) == [("tdp-01", "join", active.meeting_id), ("ubnd", "join", active.meeting_id)]
    async with live.book._sessions() as session:
        occurrence = await session.get(Occurrence, active.occurrence_id)
    assert occurrence is not None
    assert occurrence.ends_at == later
