"""Readiness for the next meeting, shown on the overview: the room's latest self-test before it."""

from __future__ import annotations

from dataclasses import dataclass

from coordinator.services import Services


@dataclass(frozen=True)
class ReadinessMark:
    ready: bool
    failed_check: str | None = None


def readiness_of(services: Services, room_id: str) -> ReadinessMark | None:
    """The room's result for the soonest meeting not yet over; None until a check has run for it."""
    results = [r for r in services.readiness.store.current() if r.room == room_id]
    if not results:
        return None
    soonest = min(results, key=lambda r: r.scheduled_start)
    return ReadinessMark(ready=soonest.ok, failed_check=soonest.failed_check)
