"""Rooms: enrollment (the token is shown once), token re-issue, removal."""

from __future__ import annotations

from fastapi import APIRouter, status

from coordinator.auth import Operator, Reader
from coordinator.connections import RoomOffline
from coordinator.errors import ApiError
from coordinator.registry import RoomExists, RoomNotFound, RoomRecord
from coordinator.schemas import CommandRequest, CommandResult, MediaOut, RoomEnroll, RoomOut, RoomPatch, RoomWithToken
from coordinator.services import Services, Svc

router = APIRouter(prefix="/api/v1/rooms", tags=["rooms"])


def _media(services: Services, room_id: str) -> MediaOut | None:
    """What the meeting's router sends the room, and whether the room's agent says media arrives."""
    meeting = services.live.meeting_with(room_id)
    slots = meeting.router.routed_to(room_id) if meeting is not None else None
    conn = services.connections.get(room_id)
    status = conn.media_status if conn is not None else None
    if slots is None and status is None:
        return None
    return MediaOut(
        receiving=status is not None and status.receiving,
        program=slots.program if slots is not None else None,
        audio=[slots.chair_audio, slots.floor_audio] if slots is not None else [None, None],
    )


def _out(services: Services, record: RoomRecord) -> RoomOut:
    meeting = services.live.meeting_with(record.id)
    return RoomOut(
        **record.public(),
        up=services.connections.is_up(record.id),
        meeting=meeting.meeting_id if meeting else None,
        media=_media(services, record.id),
    )


def _record(services: Services, room_id: str) -> RoomRecord:
    try:
        return services.registry.get(room_id)
    except RoomNotFound:
        raise ApiError(
            404,
            "room_not_found",
            f"room {room_id!r} is not enrolled; enroll it with POST /api/v1/rooms",
        ) from None


@router.get("", dependencies=[Reader])
async def list_rooms(services: Svc) -> list[RoomOut]:
    return [_out(services, r) for r in services.registry.rooms.values()]


@router.get("/{room_id}", dependencies=[Reader])
async def get_room(room_id: str, services: Svc) -> RoomOut:
    return _out(services, _record(services, room_id))


@router.post("", status_code=status.HTTP_201_CREATED, dependencies=[Operator])
async def enroll_room(body: RoomEnroll, services: Svc) -> RoomWithToken:
    try:
        record, token = await services.registry.enroll(body.id, body.name, body.group)
    except RoomExists:
        raise ApiError(
            409,
            "room_exists",
            f"room {body.id!r} is already enrolled; to give it a new token use POST /api/v1/rooms/{body.id}/token",
        ) from None
    services.scheduler.poke()
    return RoomWithToken(**_out(services, record).model_dump(), token=token)


@router.patch("/{room_id}", dependencies=[Operator])
async def update_room(room_id: str, body: RoomPatch, services: Svc) -> RoomOut:
    _record(services, room_id)
    record = await services.registry.update_identity(room_id, body.name, body.group)
    services.scheduler.poke()
    return _out(services, record)


@router.post("/{room_id}/token", dependencies=[Operator])
async def reissue_token(room_id: str, services: Svc) -> RoomWithToken:
    _record(services, room_id)
    record, token = await services.registry.rotate_token(room_id)
    await services.connections.token_reissued(room_id)
    return RoomWithToken(**_out(services, record).model_dump(), token=token)


@router.post("/{room_id}/commands", dependencies=[Operator])
async def send_command(room_id: str, body: CommandRequest, services: Svc) -> CommandResult:
    """Ask the room's agent to run its self-test or to re-read its config, and wait for its answer."""
    _record(services, room_id)
    try:
        ack = await services.connections.ask(room_id, body.action, body.timeout_seconds)
    except RoomOffline:
        raise ApiError(409, "room_offline", f"room {room_id} is not connected; check its laptop and link") from None
    except TimeoutError:
        raise ApiError(
            504, "no_answer", f"room {room_id} did not answer {body.action} within {body.timeout_seconds:.0f} s"
        ) from None
    return CommandResult(room=room_id, action=body.action, ok=ack.ok, detail=ack.detail, checks=ack.checks)


@router.delete("/{room_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[Operator])
async def remove_room(room_id: str, services: Svc) -> None:
    _record(services, room_id)
    services.live.room_removed(room_id)
    await services.connections.room_removed(room_id)
    services.screens.forget(room_id)
    await services.registry.remove(room_id)
