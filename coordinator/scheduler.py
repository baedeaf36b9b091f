"""Starts and ends meetings on time, and resumes running ones after a restart."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from coordinator.attendance import AttendanceBook
from coordinator.connections import Connections
from coordinator.errors import ApiError
from coordinator.live_meetings import ActiveMeeting, LiveMeetings
from coordinator.models import Meeting, utcnow
from coordinator.recurrence import current_start, next_start
from coordinator.registry import Registry
from coordinator.schedule import Schedule, expected_rooms, timing_of

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(
        self,
        schedule: Schedule,
        book: AttendanceBook,
        live: LiveMeetings,
        connections: Connections,
        registry: Registry,
        tick: float,
    ) -> None:
        self._schedule = schedule
        self._book = book
        self._live = live
        self._connections = connections
        self._registry = registry
        self._tick = tick
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # meeting id -> next start (unix time), for metrics and the calendar
        self.next_starts: dict[int, float] = {}

    async def resume(self) -> None:
        """Rebuild running meetings from the database after a (re)start."""
        closed = await self._book.close_dangling(utcnow())
        if closed:
            log.info("closed %d attendance records left open by the previous run", closed)
        now = utcnow()
        for occurrence in await self._book.open_occurrences():
            try:
                meeting = await self._schedule.get(occurrence.meeting_id)
            except ApiError:
                await self._book.end_occurrence(occurrence.id, now)
                continue
            if now >= occurrence.ends_at:
                await self._book.end_occurrence(occurrence.id, occurrence.ends_at)
                continue
            log.info("resuming meeting %s (%s)", meeting.id, meeting.title)
            await self._live.start(meeting, occurrence, expected_rooms(meeting, self._registry))

    async def tick(self, now: datetime | None = None) -> None:
        now = now or utcnow()
        meetings = {m.id: m for m in await self._schedule.all()}
        self._note_next_starts(meetings.values(), now)
        for active in list(self._live.meetings.values()):
            meeting = meetings.get(active.meeting_id)
            if meeting is None:
                await self._live.stop(active.meeting_id, "meeting deleted")
                continue
            # The meeting's length may have changed while it runs: the end counts from its scheduled start.
            ends = active.scheduled_start + timedelta(seconds=meeting.duration_seconds)
            if now >= ends:
                await self._live.stop(active.meeting_id, "scheduled end")
                continue
            await self._live.revise(active.meeting_id, meeting.title, ends)
            active.router.set_mode(meeting.chair_room, meeting.mode)
            await self._live.set_expected(active.meeting_id, expected_rooms(meeting, self._registry))
        for meeting in meetings.values():
            if meeting.id in self._live.meetings:
                continue
            start = current_start(timing_of(meeting), now)
            if start is None or await self._book.find_occurrence(meeting.id, start) is not None:
                continue
            await self._begin(meeting, start, now, start + timedelta(seconds=meeting.duration_seconds))

    async def start_now(self, meeting: Meeting) -> ActiveMeeting:
        if meeting.id in self._live.meetings:
            raise ApiError(409, "meeting_running", f"meeting {meeting.id} is already running")
        now = utcnow()
        return await self._begin(meeting, now, now, now + timedelta(seconds=meeting.duration_seconds))

    async def end_now(self, meeting_id: int) -> None:
        if meeting_id not in self._live.meetings:
            raise ApiError(409, "meeting_not_running", f"meeting {meeting_id} is not running")
        await self._live.stop(meeting_id, "ended by the operator")

    def poke(self) -> None:
        """Re-evaluate the schedule now (after an API change) instead of at the next tick."""
        self._wake.set()

    async def _begin(self, meeting: Meeting, scheduled: datetime, now: datetime, ends: datetime) -> ActiveMeeting:
        expected = expected_rooms(meeting, self._registry)
        occurrence = await self._book.start_occurrence(meeting.id, scheduled, now, ends, sorted(expected))
        return await self._live.start(meeting, occurrence, expected)

    def _note_next_starts(self, meetings: Iterable[Meeting], now: datetime) -> None:
        upcoming = {}
        for meeting in meetings:
            start = next_start(timing_of(meeting), now)
            if start is not None:
                upcoming[meeting.id] = start.timestamp()
        self.next_starts.clear()
        self.next_starts.update(upcoming)

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
                await self._connections.check_liveness()
            except Exception:
                log.exception("scheduler tick failed; trying again at the next tick")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._tick)

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
