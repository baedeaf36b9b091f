"""Readiness of a meeting's rooms: the self-test results before its next start."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from coordinator.auth import Operator
from coordinator.models import utcnow
from coordinator.recurrence import next_start
from coordinator.schedule import expected_rooms, timing_of
from coordinator.services import Svc

router = APIRouter(prefix="/api/v1/meetings", tags=["readiness"])


@router.get("/{meeting_id}/readiness", dependencies=[Operator])
async def meeting_readiness(meeting_id: int, services: Svc) -> dict[str, Any]:
    """Each invited room's latest self-test for the meeting (``ready`` null: not checked yet)."""
    meeting = await services.schedule.get(meeting_id)
    results = {r.room: r for r in services.readiness.store.for_meeting(meeting_id)}
    upcoming = next_start(timing_of(meeting), utcnow())
    rooms = sorted(expected_rooms(meeting, services.registry) | set(results))
    return {
        "meeting": meeting_id,
        "next_start": upcoming.isoformat() if upcoming else None,
        "lead_seconds": services.readiness.lead,
        "final_lead_seconds": services.readiness.final_lead,
        "rooms": [
            results[room].as_dict() if room in results else {"room": room, "ok": None, "checks": []} for room in rooms
        ],
    }


@router.post("/{meeting_id}/readiness", dependencies=[Operator])
async def check_meeting_now(meeting_id: int, services: Svc) -> dict[str, Any]:
    """Run the readiness check on every invited room now (the technician's test session)."""
    meeting = await services.schedule.get(meeting_id)
    start = next_start(timing_of(meeting), utcnow()) or utcnow()
    results = await services.readiness.check_meeting(meeting, start, "manual")
    return {"meeting": meeting_id, "rooms": [r.as_dict() for r in results]}
