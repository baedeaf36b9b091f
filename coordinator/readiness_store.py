"""Readiness results: the latest self-test of each invited room before each meeting's start.

Kept in the database so that a restart loses nothing; the newest results are
also held in memory for the API, the metrics and the overview.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from coordinator.database import AsyncSession
from coordinator.models import ReadinessCheck, utcnow

log = logging.getLogger(__name__)


@dataclass
class RoomReadiness:
    meeting_id: int
    room: str
    scheduled_start: datetime
    ends_at: datetime
    stage: str
    checked_at: datetime
    ok: bool
    failed_check: str | None
    checks: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "room": self.room,
            "ok": self.ok,
            "failed_check": self.failed_check,
            "stage": self.stage,
            "scheduled_start": self.scheduled_start.isoformat(),
            "checked_at": self.checked_at.isoformat(),
            "checks": self.checks,
        }


def _from_row(row: ReadinessCheck) -> RoomReadiness:
    return RoomReadiness(
        row.meeting_id,
        row.room_id,
        row.scheduled_start,
        row.ends_at,
        row.stage,
        row.checked_at,
        row.ok,
        row.failed_check,
        list(row.checks),
    )


class ReadinessStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        # (meeting, room) -> the latest result for the meeting's latest checked start
        self.latest: dict[tuple[int, str], RoomReadiness] = {}
        # (meeting, start, stage) already checked
        self.done: set[tuple[int, datetime, str]] = set()

    async def load(self) -> None:
        """Results of each meeting's latest checked start, from the database."""
        async with self._sessions() as session:
            newest = (
                select(ReadinessCheck.meeting_id, func.max(ReadinessCheck.scheduled_start).label("start"))
                .group_by(ReadinessCheck.meeting_id)
                .subquery()
            )
            rows = (
                await session.scalars(
                    select(ReadinessCheck)
                    .join(
                        newest,
                        (ReadinessCheck.meeting_id == newest.c.meeting_id)
                        & (ReadinessCheck.scheduled_start == newest.c.start),
                    )
                    .order_by(ReadinessCheck.checked_at, ReadinessCheck.id)
                )
            ).all()
            stages = (
                await session.execute(
                    select(ReadinessCheck.meeting_id, ReadinessCheck.scheduled_start, ReadinessCheck.stage).distinct()
                )
            ).all()
        for row in rows:
            result = _from_row(row)
            self.latest[(result.meeting_id, result.room)] = result
        self.done.update((m, start, stage) for m, start, stage in stages)
        if rows:
            log.info("readiness: %d results of earlier checks loaded", len(rows))

    # --- queries for the API, the metrics and the web pages -------------------

    def for_meeting(self, meeting_id: int) -> list[RoomReadiness]:
        """The latest result of each room for the meeting's latest checked start (empty if none)."""
        results = [r for (m, _), r in self.latest.items() if m == meeting_id]
        return sorted(results, key=lambda r: r.room)

    def current(self, now: datetime | None = None) -> list[RoomReadiness]:
        """Results for starts whose meeting has not ended yet (what monitoring should look at)."""
        now = now or utcnow()
        return sorted((r for r in self.latest.values() if r.ends_at > now), key=lambda r: (r.meeting_id, r.room))

    async def save(self, meeting_id: int, results: list[RoomReadiness]) -> None:
        """Store one check of a meeting; its results replace the meeting's earlier ones."""
        async with self._sessions() as session, session.begin():
            for result in results:
                session.add(
                    ReadinessCheck(
                        meeting_id=result.meeting_id,
                        scheduled_start=result.scheduled_start,
                        ends_at=result.ends_at,
                        stage=result.stage,
                        room_id=result.room,
                        checked_at=result.checked_at,
                        ok=result.ok,
                        failed_check=result.failed_check,
                        checks=result.checks,
                    )
                )
        for key in [k for k in self.latest if k[0] == meeting_id]:
            del self.latest[key]
        for result in results:
            self.latest[(meeting_id, result.room)] = result
