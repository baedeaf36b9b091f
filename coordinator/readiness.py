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
from datetime import datetime, timedelta
from typing import Any

from coordinator.connections import Connections, RoomOffline
from coordinator.models import Meeting, utcnow
from coordinator.readiness_store import ReadinessStore, RoomReadiness
from coordinator.recurrence import next_start
from coordinator.registry import Registry
from coordinator.schedule import Schedule, expected_rooms, timing_of
from phonghop.protocol import CheckItem

log = logging.getLogger(__name__)

OFFLINE_CHECK = "ket_noi"
# Self-tests at once: each sends a media loop through the coordinator (see coordinator/media/echo.py).
CONCURRENT_CHECKS = 6
NO_ANSWER_CHECK = "tu_kiem_tra"


class ReadinessChecks:
    def __init__(
        self,
        store: ReadinessStore,
        connections: Connections,
        schedule: Schedule,
        registry: Registry,
        lead: float,
        final_lead: float,
        wait_seconds: float,
        tick: float,
        min_seconds: float = 0.0,
    ) -> None:
        self.store = store
        self._connections = connections
        self._schedule = schedule
        self._registry = registry
        self.lead = lead
        self.final_lead = final_lead
        self.wait_seconds = wait_seconds
        self.min_seconds = min_seconds
        self._tick = tick
        self._task: asyncio.Task[None] | None = None
        self._runs: set[asyncio.Task[list[RoomReadiness]]] = set()

    # --- the schedule -------------------------------------------------------------

    async def tick(self, now: datetime | None = None) -> None:
        now = now or utcnow()
        for meeting in await self._schedule.all():
            start = next_start(timing_of(meeting), now)
            if start is None:
                continue
            until = (start - now).total_seconds()
            if until < self.min_seconds:
                continue
            stage = None
            if until <= self.final_lead:
                stage = "final"
            elif until <= self.lead:
                stage = "lead"
            if stage is None or (meeting.id, start, stage) in self.store.done:
                continue
            if stage == "final" and (meeting.id, start, "lead") not in self.store.done:
                self.store.done.add((meeting.id, start, "lead"))  # scheduled too late for the early check
            self.store.done.add((meeting.id, start, stage))
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

        results = list(await asyncio.gather(*(check(room) for room in rooms)))
        await self.store.save(meeting.id, results)
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
            ack = await self._connections.ask(room, "run_check", self.wait_seconds)
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
