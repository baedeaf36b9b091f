"""What happened to each room over time: control-channel ups and downs, and its last self-test.

The rooms' connections report events here (it is one of their listeners);
the room page reads the outage list and the 30-day uptime back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from coordinator.connections import PendingCommand
from coordinator.database import AsyncSession
from coordinator.models import Attendance, Meeting, Occurrence, PresenceEvent, SelfTest, utcnow
from coordinator.registry import Registry
from phonghop.protocol import Ack

log = logging.getLogger(__name__)

UPTIME_WINDOW = timedelta(days=30)
KEEP = timedelta(days=90)  # presence events older than this are deleted at start


@dataclass(frozen=True)
class Outage:
    start: datetime
    end: datetime | None  # None: still down
    reason: str | None

    def length(self, now: datetime) -> timedelta:
        return (self.end or now) - self.start


@dataclass(frozen=True)
class Stay:
    meeting_title: str
    joined_at: datetime
    left_at: datetime | None
    reason: str | None


def uptime(events: list[PresenceEvent], since: datetime, now: datetime) -> float | None:
    """Share of [since, now] the room was connected; events sorted by time. None for an empty window."""
    if now <= since:
        return None
    up_since: datetime | None = None
    total = timedelta()
    for event in events:
        at = min(max(event.at, since), now)
        if event.up and up_since is None:
            up_since = at
        elif not event.up and up_since is not None:
            total += at - up_since
            up_since = None
    if up_since is not None:
        total += now - up_since
    return total / (now - since)


def outages(events: list[PresenceEvent]) -> list[Outage]:
    """Down periods after the room had been up at least once, newest first."""
    found: list[Outage] = []
    down: PresenceEvent | None = None
    for event in events:
        if not event.up and down is None:
            down = event
        elif event.up and down is not None:
            found.append(Outage(down.at, event.at, down.reason))
            down = None
    if down is not None:
        found.append(Outage(down.at, None, down.reason))
    return found[::-1]


class History:
    """Listens to the rooms' connections, and reads back what it stored."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def _add(self, room_id: str, up: bool, reason: str | None, at: datetime | None = None) -> None:
        async with self._sessions() as session, session.begin():
            session.add(PresenceEvent(room_id=room_id, up=up, reason=reason, at=at or utcnow()))

    async def room_connected(self, room_id: str) -> None:
        await self._add(room_id, True, None)

    async def room_disconnected(self, room_id: str, reason: str) -> None:
        await self._add(room_id, False, reason[:200])

    async def room_ready(self, room_id: str) -> None:
        pass

    async def room_answered(self, command: PendingCommand, ack: Ack) -> None:
        if command.action != "run_check":
            return
        room_id = command.room
        async with self._sessions() as session, session.begin():
            row = await session.get(SelfTest, room_id)
            if row is None:
                session.add(SelfTest(room_id=room_id, at=utcnow(), ok=ack.ok, detail=ack.detail))
            else:
                row.at, row.ok, row.detail = utcnow(), ack.ok, ack.detail

    async def close_dangling(self, registry: Registry) -> None:
        """At start: rooms still 'up' in the history went down when the coordinator stopped.

        Events older than ``KEEP`` go too, except each room's latest (it holds the room's state).
        """
        for room_id, record in registry.rooms.items():
            async with self._sessions() as session, session.begin():
                event = await session.scalar(
                    select(PresenceEvent)
                    .where(PresenceEvent.room_id == room_id)
                    .order_by(PresenceEvent.at.desc(), PresenceEvent.id.desc())
                    .limit(1)
                )
                if event is not None:
                    await session.execute(
                        delete(PresenceEvent).where(
                            PresenceEvent.room_id == room_id,
                            PresenceEvent.at < utcnow() - KEEP,
                            PresenceEvent.id != event.id,
                        )
                    )
            if event is not None and event.up:
                at = max(record.last_seen, event.at) if record.last_seen else event.at
                await self._add(room_id, False, "coordinator restarted", at)

    async def events(self, room_id: str, since: datetime | None = None) -> list[PresenceEvent]:
        """Events of the room from the last one before ``since`` on, oldest first."""
        async with self._sessions() as session:
            query = select(PresenceEvent).where(PresenceEvent.room_id == room_id)
            if since is not None:
                before = await session.scalar(
                    query.where(PresenceEvent.at < since).order_by(PresenceEvent.at.desc(), PresenceEvent.id.desc())
                )
                query = query.where(PresenceEvent.at >= since)
            rows = list((await session.scalars(query.order_by(PresenceEvent.at, PresenceEvent.id))).all())
        return ([before] if since is not None and before is not None else []) + rows

    async def last_check(self, room_id: str) -> SelfTest | None:
        async with self._sessions() as session:
            return await session.get(SelfTest, room_id)

    async def stays(self, room_id: str, limit: int = 30) -> list[Stay]:
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(Attendance, Meeting.title)
                    .join(Occurrence, Occurrence.id == Attendance.occurrence_id)
                    .join(Meeting, Meeting.id == Occurrence.meeting_id)
                    .where(Attendance.room_id == room_id)
                    .order_by(Attendance.joined_at.desc())
                    .limit(limit)
                )
            ).all()
        return [Stay(title, a.joined_at, a.left_at, a.left_reason) for a, title in rows]
