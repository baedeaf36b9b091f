"""Readiness for the next meeting, shown on the overview.

LEAD (merge): readiness checks come from the agent branch (issue 4:
``phonghop_room_ready`` / ``phonghop_room_ready_failed_check``). Wire this
function to that result; the overview shows "chưa có dữ liệu" while it returns None.
"""

from __future__ import annotations

from dataclasses import dataclass

from coordinator.services import Services


@dataclass(frozen=True)
class Readiness:
    ready: bool
    failed_check: str | None = None


def readiness_of(services: Services, room_id: str) -> Readiness | None:
    return None
