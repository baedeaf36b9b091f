"""Occurrences (runs of a meeting) and attendance (who was in, from when to when)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from coordinator.database import AsyncSession
from coordinator.models import Attendance, MeetingEvent, Occurrence


class AttendanceBook:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def open_occurrences(self) -> list[Occurrence]:
        async with self._sessions() as session:
            return list((await session.scalars(select(Occurrence).where(Occurrence.ended_at.is_(None)))).all())

    async def find_occurrence(self, meeting_id: int, scheduled_start: datetime) -> Occurrence | None:
        async with self._sessions() as session:
            return await session.scalar(
                select(Occurrence).where(
                    Occurrence.meeting_id == meeting_id,
                    Occurrence.scheduled_start == scheduled_start,
                )
            )

    async def start_occurrence(
        self,
        meeting_id: int,
        scheduled_start: datetime,
        started_at: datetime,
        ends_at: datetime,
        invited: list[str] | None = None,
    ) -> Occurrence:
        row = Occurrence(
            meeting_id=meeting_id,
            scheduled_start=scheduled_start,
            started_at=started_at,
            ends_at=ends_at,
            invited_rooms=invited or [],
        )
        async with self._sessions() as session, session.begin():
            session.add(row)
        return row

    async def end_occurrence(self, occurrence_id: int, at: datetime) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(update(Occurrence).where(Occurrence.id == occurrence_id).values(ended_at=at))
            await session.execute(
                update(Attendance)
                .where(Attendance.occurrence_id == occurrence_id, Attendance.left_at.is_(None))
                .values(left_at=at, left_reason="meeting ended")
            )

    async def set_end(self, occurrence_id: int, ends_at: datetime) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(update(Occurrence).where(Occurrence.id == occurrence_id).values(ends_at=ends_at))

    async def set_floor(self, occurrence_id: int, room_id: str | None) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(update(Occurrence).where(Occurrence.id == occurrence_id).values(floor_room=room_id))
            session.add(MeetingEvent(occurrence_id=occurrence_id, kind="floor", participant=room_id))

    async def hand(self, occurrence_id: int, participant: str, raised: bool) -> None:
        async with self._sessions() as session, session.begin():
            session.add(
                MeetingEvent(
                    occurrence_id=occurrence_id, kind="hand_up" if raised else "hand_down", participant=participant
                )
            )

    async def occurrence(self, occurrence_id: int) -> tuple[Occurrence, list[Attendance], list[MeetingEvent]] | None:
        """One occurrence with its stays and events, in time order: what its minutes are made of."""
        async with self._sessions() as session:
            row = await session.get(Occurrence, occurrence_id)
            if row is None:
                return None
            stays = await session.scalars(
                select(Attendance).where(Attendance.occurrence_id == occurrence_id).order_by(Attendance.joined_at)
            )
            events = await session.scalars(
                select(MeetingEvent).where(MeetingEvent.occurrence_id == occurrence_id).order_by(MeetingEvent.at)
            )
            return row, list(stays.all()), list(events.all())

    async def joined(self, occurrence_id: int, room_id: str, at: datetime) -> None:
        async with self._sessions() as session, session.begin():
            session.add(Attendance(occurrence_id=occurrence_id, room_id=room_id, joined_at=at))

    async def left(self, occurrence_id: int, room_id: str, at: datetime, reason: str) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(Attendance)
                .where(
                    Attendance.occurrence_id == occurrence_id,
                    Attendance.room_id == room_id,
                    Attendance.left_at.is_(None),
                )
                .values(left_at=at, left_reason=reason)
            )

    async def close_dangling(self, at: datetime) -> int:
        """Stays left open by a coordinator that died: they end when it did not say."""
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                update(Attendance)
                .where(Attendance.left_at.is_(None))
                .values(left_at=at, left_reason="coordinator restarted")
            )
        return int(getattr(result, "rowcount", 0) or 0)

    async def history(self, meeting_id: int) -> list[tuple[Occurrence, list[Attendance]]]:
        async with self._sessions() as session:
            occurrences = (
                await session.scalars(
                    select(Occurrence).where(Occurrence.meeting_id == meeting_id).order_by(Occurrence.scheduled_start)
                )
            ).all()
            ids = [o.id for o in occurrences]
            rows = (
                (
                    await session.scalars(
                        select(Attendance).where(Attendance.occurrence_id.in_(ids)).order_by(Attendance.joined_at)
                    )
                ).all()
                if ids
                else []
            )
        by_occurrence: dict[int, list[Attendance]] = {i: [] for i in ids}
        for row in rows:
            by_occurrence[row.occurrence_id].append(row)
        return [(o, by_occurrence[o.id]) for o in occurrences]
