"""Meetings: the schedule, starting and ending now, floor, history, calendar feed."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Response, status

from coordinator.auth import Operator, Reader
from coordinator.errors import ApiError
from coordinator.ical import calendar_feed
from coordinator.live_meetings import holder_of
from coordinator.models import Meeting
from coordinator.participants import invitation_of
from coordinator.recurrence import next_start
from coordinator.schedule import expected_rooms, timing_of
from coordinator.schemas import (
    AttendanceOut,
    FloorOut,
    FloorRequest,
    MeetingCreate,
    MeetingOut,
    MeetingPatch,
    OccurrenceOut,
    Running,
)
from coordinator.services import Services, Svc

router = APIRouter(prefix="/api/v1/meetings", tags=["meetings"])


def _out(services: Services, meeting: Meeting) -> MeetingOut:
    active = services.live.meetings.get(meeting.id)
    running = None
    if active is not None:
        running = Running(
            occurrence=active.occurrence_id,
            started_at=active.started_at,
            ends_at=active.ends_at,
            floor=active.floor_target,
            joined=sorted(active.joined),
            missing=sorted(active.expected - active.joined),
        )
    return MeetingOut(
        id=meeting.id,
        title=meeting.title,
        chair_room=meeting.chair_room,
        invited_rooms=meeting.invited_rooms,
        invited_groups=meeting.invited_groups,
        start=meeting.start,
        duration_seconds=meeting.duration_seconds,
        rrule=meeting.rrule,
        timezone=meeting.timezone,
        mode=meeting.mode,
        record=meeting.record,
        expected_rooms=sorted(expected_rooms(meeting, services.registry)),
        next_start=next_start(timing_of(meeting), datetime.now(UTC)),
        running=running,
    )


@router.get("", dependencies=[Reader])
async def list_meetings(services: Svc) -> list[MeetingOut]:
    return [_out(services, m) for m in await services.schedule.all()]


@router.get(
    "/calendar.ics",
    response_class=Response,
    responses={200: {"content": {"text/calendar": {}}}},
    summary="The schedule as an iCalendar feed (with a token; calendar apps use GET /api/v1/calendar's URL)",
    dependencies=[Reader],
)
async def calendar(services: Svc) -> Response:
    body = calendar_feed(await services.schedule.all())
    return Response(body, media_type="text/calendar; charset=utf-8")


@router.post("", status_code=status.HTTP_201_CREATED, dependencies=[Operator])
async def create_meeting(body: MeetingCreate, services: Svc) -> MeetingOut:
    meeting = await services.schedule.create(body)
    services.scheduler.poke()
    return _out(services, meeting)


@router.get("/{meeting_id}", dependencies=[Reader])
async def get_meeting(meeting_id: int, services: Svc) -> MeetingOut:
    return _out(services, await services.schedule.get(meeting_id))


@router.patch("/{meeting_id}", dependencies=[Operator])
async def update_meeting(meeting_id: int, body: MeetingPatch, services: Svc) -> MeetingOut:
    meeting = await services.schedule.update(meeting_id, body)
    services.scheduler.poke()
    return _out(services, meeting)


@router.delete("/{meeting_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[Operator])
async def delete_meeting(meeting_id: int, services: Svc) -> None:
    await services.schedule.delete(meeting_id)
    await services.live.stop(meeting_id, "meeting deleted")


@router.post("/{meeting_id}/start", dependencies=[Operator])
async def start_now(meeting_id: int, services: Svc) -> MeetingOut:
    meeting = await services.schedule.get(meeting_id)
    await services.scheduler.start_now(meeting)
    return _out(services, meeting)


@router.post("/{meeting_id}/end", dependencies=[Operator])
async def end_now(meeting_id: int, services: Svc) -> MeetingOut:
    meeting = await services.schedule.get(meeting_id)
    await services.scheduler.end_now(meeting_id)
    return _out(services, meeting)


@router.get("/{meeting_id}/occurrences", dependencies=[Reader])
async def occurrences(meeting_id: int, services: Svc) -> list[OccurrenceOut]:
    await services.schedule.get(meeting_id)
    history = await services.book.history(meeting_id)
    numbers = {n for _, rows in history for a in rows if (n := invitation_of(a.room_id)) is not None}
    guest_names = await services.guests.names(numbers)
    return [
        OccurrenceOut(
            id=occ.id,
            scheduled_start=occ.scheduled_start,
            started_at=occ.started_at,
            ends_at=occ.ends_at,
            ended_at=occ.ended_at,
            floor=occ.floor_room,
            attendance=[
                AttendanceOut(
                    room=a.room_id,
                    guest=guest_names.get(n) if (n := invitation_of(a.room_id)) is not None else None,
                    joined_at=a.joined_at,
                    left_at=a.left_at,
                    left_reason=a.left_reason,
                )
                for a in rows
            ],
        )
        for occ, rows in history
    ]


def _running(services: Services, meeting_id: int) -> None:
    if meeting_id not in services.live.meetings:
        raise ApiError(
            409,
            "meeting_not_running",
            f"meeting {meeting_id} is not running; the floor exists only during a meeting",
        )


def _floor(services: Services, meeting_id: int) -> FloorOut:
    active = services.live.meetings[meeting_id]
    speaker = active.router.speaker.current
    return FloorOut(meeting=meeting_id, floor=active.floor_target, hands=list(active.hands), speaker=speaker)


@router.get("/{meeting_id}/floor", dependencies=[Reader])
async def get_floor(meeting_id: int, services: Svc) -> FloorOut:
    await services.schedule.get(meeting_id)
    _running(services, meeting_id)
    return _floor(services, meeting_id)


@router.put("/{meeting_id}/floor", dependencies=[Operator])
async def give_floor(meeting_id: int, body: FloorRequest, services: Svc) -> FloorOut:
    await services.schedule.get(meeting_id)
    _running(services, meeting_id)
    active = services.live.meetings[meeting_id]
    if not active.takes_part(holder_of(body.room)):
        raise ApiError(
            422,
            "room_not_invited",
            f"room {body.room!r} is not invited to meeting {meeting_id}; invite it first",
            {"room": "not invited to this meeting"},
        )
    await services.live.set_floor(meeting_id, body.room)
    return _floor(services, meeting_id)


@router.delete("/{meeting_id}/floor", dependencies=[Operator])
async def take_floor(meeting_id: int, services: Svc) -> FloorOut:
    await services.schedule.get(meeting_id)
    _running(services, meeting_id)
    await services.live.set_floor(meeting_id, None)
    return _floor(services, meeting_id)


@router.put("/{meeting_id}/muted/{room_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[Operator])
async def mute_room(meeting_id: int, room_id: str, services: Svc) -> None:
    """Stop forwarding the room's sound to the others (its picture still goes out)."""
    await services.schedule.get(meeting_id)
    _running(services, meeting_id)
    if room_id not in services.live.meetings[meeting_id].expected:
        raise ApiError(422, "room_not_invited", f"room {room_id!r} is not invited to meeting {meeting_id}")
    services.live.set_muted(meeting_id, room_id, True)


@router.delete("/{meeting_id}/muted/{room_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[Operator])
async def unmute_room(meeting_id: int, room_id: str, services: Svc) -> None:
    await services.schedule.get(meeting_id)
    _running(services, meeting_id)
    services.live.set_muted(meeting_id, room_id, False)
