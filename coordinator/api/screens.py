"""The TV picture of each room: the agent uploads it, the operator looks at it."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from coordinator.auth import Operator, RoomItself
from coordinator.errors import ApiError
from coordinator.screens import MAX_SCREEN_BYTES, NotAPicture
from coordinator.services import Svc

router = APIRouter(prefix="/api/v1/rooms", tags=["screens"])


@router.put("/{room_id}/screen", status_code=status.HTTP_204_NO_CONTENT, dependencies=[RoomItself])
async def upload_screen(room_id: str, request: Request, services: Svc) -> None:
    """The agent sends what its TV shows now (a PNG, at most 1 MB)."""
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_SCREEN_BYTES:
            raise ApiError(413, "screen_too_large", f"the picture is over {MAX_SCREEN_BYTES} bytes; send a thumbnail")
    try:
        services.screens.put(room_id, bytes(body))
    except NotAPicture as exc:
        raise ApiError(422, "not_a_png", str(exc)) from None


@router.get(
    "/{room_id}/screen",
    dependencies=[Operator],
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
async def show_screen(room_id: str, services: Svc) -> Response:
    screen = services.screens.get(room_id)
    if screen is None:
        raise ApiError(
            404,
            "no_screen",
            f"room {room_id!r} has not sent a picture of its TV yet; is its agent running with a display?",
        )
    return screen.response()
