"""What a room's agent asks over HTTP with its own token: its TV's information and the self-test loop."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from coordinator.auth import RoomItself
from coordinator.errors import ApiError
from coordinator.media.echo import EchoBusy, Echoes
from coordinator.models import utcnow
from coordinator.recurrence import next_start
from coordinator.schedule import expected_rooms, timing_of
from coordinator.services import Svc

router = APIRouter(prefix="/api/v1/rooms", tags=["agent"])


class EchoOffer(BaseModel):
    sdp: str = Field(min_length=1, max_length=60_000)


@router.get("/{room_id}/agent-info", dependencies=[RoomItself])
async def agent_info(room_id: str, services: Svc) -> dict[str, Any]:
    """The room's name, every room's name (for the TV's captions) and the room's next meeting."""
    now = utcnow()
    upcoming: list[tuple[Any, Any]] = []
    for meeting in await services.schedule.all():
        if room_id not in expected_rooms(meeting, services.registry):
            continue
        start = next_start(timing_of(meeting), now)
        if start is not None:
            upcoming.append((start, meeting))
    upcoming.sort(key=lambda pair: pair[0])
    following = None
    if upcoming:
        start, meeting = upcoming[0]
        following = {"id": meeting.id, "title": meeting.title, "start": start.isoformat(), "chair": meeting.chair_room}
    rooms = services.registry.rooms
    return {
        "room": room_id,
        "name": rooms[room_id].name,
        "names": {rid: record.name for rid, record in rooms.items()},
        "next_meeting": following,
    }


@router.post("/{room_id}/selftest/echo", dependencies=[RoomItself])
async def selftest_echo(room_id: str, body: EchoOffer, request: Request) -> dict[str, str]:
    """Answer a self-test offer with a peer that sends the room's own media back for a few seconds."""
    echoes: Echoes = request.app.state.echoes
    try:
        return {"sdp": await echoes.answer(room_id, body.sdp)}
    except EchoBusy as exc:
        raise ApiError(429, "selftest_busy", str(exc), headers={"Retry-After": "10"}) from None
    except ValueError as exc:
        raise ApiError(422, "bad_offer", f"the self-test offer is not usable: {exc}") from None
