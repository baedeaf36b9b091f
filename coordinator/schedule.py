"""The meeting schedule: validated against the room registry, stored in the database."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from coordinator.database import AsyncSession
from coordinator.errors import ApiError
from coordinator.models import Meeting, utcnow
from coordinator.recurrence import RecurrenceError, Timing, check_rrule
from coordinator.registry import Registry
from coordinator.schemas import MeetingCreate, MeetingFields, MeetingPatch

log = logging.getLogger(__name__)


def timing_of(meeting: Meeting) -> Timing:
    return Timing(
        start=meeting.start,
        duration=timedelta(seconds=meeting.duration_seconds),
        rrule=meeting.rrule,
        timezone=meeting.timezone,
    )


def expected_rooms(meeting: Meeting, registry: Registry) -> set[str]:
    """Invited rooms that are enrolled: listed ones, whole groups, and the chair."""
    rooms = {r for r in meeting.invited_rooms if r in registry.rooms}
    groups = set(meeting.invited_groups)
    rooms.update(r.id for r in registry.rooms.values() if r.group in groups)
    if meeting.chair_room in registry.rooms:
        rooms.add(meeting.chair_room)
    return rooms


MAX_ID = 2**31 - 1  # PostgreSQL's INTEGER; SQLite's is wider


def meeting_not_found(meeting_id: int) -> ApiError:
    return ApiError(
        404,
        "meeting_not_found",
        f"no meeting with id {meeting_id}; list them with GET /api/v1/meetings",
    )


class Schedule:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], registry: Registry) -> None:
        self._sessions = sessions
        self._registry = registry

    async def _check(self, values: dict[str, Any]) -> dict[str, Any]:
        """Cross-field and registry checks that pydantic cannot do alone.

        The recurrence check searches the calendar (bounded, but up to about a second for a rare daily
        rule), so it runs in a thread: the event loop keeps answering control, media and health meanwhile.
        """
        fields: dict[str, str] = {}
        zone = ZoneInfo(values["timezone"])
        start: datetime = values["start"]
        if start.tzinfo is None:
            values["start"] = start = start.replace(tzinfo=zone)
        values["start"] = start.astimezone(UTC)
        if values["chair_room"] not in self._registry.rooms:
            fields["chair_room"] = f"room {values['chair_room']!r} is not enrolled; enroll it first"
        unknown = [r for r in values["invited_rooms"] if r not in self._registry.rooms]
        if unknown:
            fields["invited_rooms"] = f"not enrolled: {', '.join(unknown)}; enroll them or remove them from the list"
        if values.get("rrule"):
            try:
                await asyncio.to_thread(check_rrule, values["rrule"], values["start"], values["timezone"])
            except RecurrenceError as exc:
                fields["rrule"] = str(exc)
        else:
            values["rrule"] = None
        if fields:
            message = "; ".join(f"{k}: {v}" for k, v in fields.items())
            raise ApiError(422, "invalid_meeting", message, fields)
        return values

    async def create(self, body: MeetingCreate) -> Meeting:
        values = await self._check(body.model_dump())
        meeting = Meeting(**values)
        async with self._sessions() as session, session.begin():
            session.add(meeting)
        log.info("meeting %s scheduled: %r at %s", meeting.id, meeting.title, meeting.start.isoformat())
        return meeting

    async def get(self, meeting_id: int) -> Meeting:
        if not 1 <= meeting_id <= MAX_ID:  # beyond the database's integer: no such meeting, not an overflow
            raise meeting_not_found(meeting_id)
        async with self._sessions() as session:
            meeting = await session.get(Meeting, meeting_id)
        if meeting is None or meeting.deleted_at is not None:
            raise meeting_not_found(meeting_id)
        return meeting

    async def all(self) -> list[Meeting]:
        async with self._sessions() as session:
            rows = await session.scalars(select(Meeting).where(Meeting.deleted_at.is_(None)).order_by(Meeting.start))
            return list(rows.all())

    async def update(self, meeting_id: int, patch: MeetingPatch) -> Meeting:
        current = await self.get(meeting_id)
        values = {name: getattr(current, name) for name in MeetingFields.model_fields}
        values.update(patch.model_dump(exclude_unset=True))
        if not values["invited_rooms"] and not values["invited_groups"]:
            raise ApiError(
                422,
                "invalid_meeting",
                "invite at least one room or group (invited_rooms / invited_groups)",
                {"invited_rooms": "invite at least one room or group"},
            )
        values = await self._check(values)
        async with self._sessions() as session, session.begin():
            meeting = await session.get(Meeting, meeting_id)
            assert meeting is not None
            for key, value in values.items():
                setattr(meeting, key, value)
        log.info("meeting %s updated", meeting_id)
        return meeting

    async def delete(self, meeting_id: int) -> None:
        await self.get(meeting_id)
        async with self._sessions() as session, session.begin():
            meeting = await session.get(Meeting, meeting_id)
            assert meeting is not None
            meeting.deleted_at = utcnow()
        log.info("meeting %s deleted (its attendance history is kept)", meeting_id)
