"""Readiness check before meetings: every invited room runs its self-test ahead of the start.

Local practice is a technician's test session about an hour before a meeting.
The coordinator does the same by itself: at ``lead`` seconds before each
scheduled start it asks every invited room to run its self-test (the
``run_check`` command), and again at ``final_lead`` seconds before, records
the answers in the database (so a restart loses nothing) and exports
``phonghop_room_ready`` and ``phonghop_room_ready_failed_check`` so that
monitoring warns while there is still time to fix the room. A room that is
not connected at check time is not ready (check ``ket_noi``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from coordinator.hub import Hub
from coordinator.live import RoomOffline
from coordinator.meetings import Schedule, expected_rooms, timing_of
from coordinator.models import Meeting, ReadinessCheck, utcnow
from coordinator.registry import Registry
from coordinator.schedule import next_start
from phonghop.protocol import CheckItem

log = logging.getLogger(__name__)

OFFLINE_CHECK = "ket_noi"
# Self-tests at once: each sends a media loop through the coordinator (see coordinator/media/echo.py).
CONCURRENT_CHECKS = 6
NO_ANSWER_CHECK = "tu_kiem_tra"


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


class Readiness:
    def __init__(
        self,
        sessions: Any,
        hub: Hub,
        schedule: Schedule,
        registry: Registry,
        lead: float,
        final_lead: float,
        wait_seconds: float,
        tick: float,
    ) -> None:
        self._sessions = sessions
        self._hub = hub
        self._schedule = schedule
        self._registry = registry
        self.lead = lead
        self.final_lead = final_lead
        self.wait_seconds = wait_seconds
        self._tick = tick
        # (meeting, room) -> the latest result for the meeting's latest checked start
        self.latest: dict[tuple[int, str], RoomReadiness] = {}
        self._done: set[tuple[int, datetime, str]] = set()
        self._task: asyncio.Task[None] | None = None
        self._runs: set[asyncio.Task[list[RoomReadiness]]] = set()

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
        self._done.update((m, start, stage) for m, start, stage in stages)
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

    # --- the schedule -------------------------------------------------------------

    async def tick(self, now: datetime | None = None) -> None:
        now = now or utcnow()
        for meeting in await self._schedule.all():
            start = next_start(timing_of(meeting), now)
            if start is None:
                continue
            until = (start - now).total_seconds()
            stage = None
            if until <= self.final_lead:
                stage = "final"
            elif until <= self.lead:
                stage = "lead"
            if stage is None or (meeting.id, start, stage) in self._done:
                continue
            if stage == "final" and (meeting.id, start, "lead") not in self._done:
                self._done.add((meeting.id, start, "lead"))  # scheduled too late for the early check
            self._done.add((meeting.id, start, stage))
            task = asyncio.create_task(self.check_meeting(meeting, start, stage), name=f"readiness-{meeting.id}")
            self._runs.add(task)
            task.add_done_callback(self._runs.discard)

    async def check_meeting(self, meeting: Meeting, start: datetime, stage: str) -> list[RoomReadiness]:
        rooms = sorted(expected_rooms(meeting, self._registry))
        log.info(
            "readiness: %s check of meeting %s (%s) starting %s: %d rooms",
            stage,
            meeting.id,
            meeting.title,
            start.isoformat(),
            len(rooms),
        )
        ends = start + timedelta(seconds=meeting.duration_seconds)
        limit = asyncio.Semaphore(CONCURRENT_CHECKS)

        async def check(room: str) -> RoomReadiness:
            async with limit:
                return await self._check_room(meeting.id, room, start, ends, stage)

        results = await asyncio.gather(*(check(room) for room in rooms))
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
        for key in [k for k in self.latest if k[0] == meeting.id]:
            del self.latest[key]
        for result in results:
            self.latest[(meeting.id, result.room)] = result
        failed = [f"{r.room} ({r.failed_check})" for r in results if not r.ok]
        log.info(
            "readiness: meeting %s: %d of %d rooms ready%s",
            meeting.id,
            len(results) - len(failed),
            len(results),
            f"; not ready: {', '.join(failed)}" if failed else "",
        )
        return results

    async def _check_room(
        self, meeting_id: int, room: str, start: datetime, ends: datetime, stage: str
    ) -> RoomReadiness:
        def result(checks: list[CheckItem]) -> RoomReadiness:
            failed = next((c.name for c in checks if not c.ok), None)
            dumped = [c.model_dump() for c in checks]
            return RoomReadiness(meeting_id, room, start, ends, stage, utcnow(), failed is None, failed, dumped)

        try:
            ack = await self._hub.ask(room, "run_check", self.wait_seconds)
        except RoomOffline:
            return result(
                [
                    CheckItem(
                        name=OFFLINE_CHECK,
                        ok=False,
                        message="Phòng không kết nối với máy chủ điều phối lúc kiểm tra",
                        fix="Bật máy tính của phòng, kiểm tra mạng Internet và dịch vụ phonghop-agent",
                    )
                ]
            )
        except TimeoutError:
            return result(
                [
                    CheckItem(
                        name=NO_ANSWER_CHECK,
                        ok=False,
                        message=f"Phòng không trả lời lệnh tự kiểm tra trong {self.wait_seconds:.0f} giây",
                        fix="Xem nhật ký: journalctl -u phonghop-agent; khởi động lại dịch vụ phonghop-agent",
                    )
                ]
            )
        checks = list(ack.checks)
        if not ack.ok and not any(not c.ok for c in checks):
            checks.append(CheckItem(name=NO_ANSWER_CHECK, ok=False, message=ack.detail[:500]))
        return result(checks)

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("readiness tick failed; trying again")
            await asyncio.sleep(self._tick)

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="readiness")

    async def stop(self) -> None:
        tasks: list[asyncio.Task[Any]] = [*self._runs] + ([self._task] if self._task else [])
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class ReadinessCollector(Collector):
    """``phonghop_room_ready`` and ``phonghop_room_ready_failed_check`` for meetings not yet over."""

    def __init__(self, readiness: Readiness) -> None:
        self._readiness = readiness

    def collect(self) -> Iterator[Metric]:
        ready = GaugeMetricFamily(
            "phonghop_room_ready",
            "1 when the room passed its latest self-test before the meeting's next start",
            labels=["room", "meeting"],
        )
        failed = GaugeMetricFamily(
            "phonghop_room_ready_failed_check",
            "1 for the first check the room failed in its latest self-test before the meeting",
            labels=["room", "meeting", "check"],
        )
        checked = GaugeMetricFamily(
            "phonghop_room_ready_checked_timestamp_seconds",
            "When the room's latest self-test before the meeting ran",
            labels=["room", "meeting"],
        )
        for result in self._readiness.current():
            labels = [result.room, str(result.meeting_id)]
            ready.add_metric(labels, 1.0 if result.ok else 0.0)
            checked.add_metric(labels, result.checked_at.timestamp())
            if result.failed_check:
                failed.add_metric([*labels, result.failed_check], 1.0)
        yield from (ready, failed, checked)
