"""The calendar feed at a secret URL, for calendar apps (they cannot send a token); the operator rotates it."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from coordinator.auth import Operator, rotate_token_file
from coordinator.errors import ApiError
from coordinator.ical import calendar_feed
from coordinator.services import Svc

router = APIRouter(prefix="/api/v1/calendar", tags=["meetings"])


class CalendarUrl(BaseModel):
    path: str
    detail: str = "subscribe to this path on the coordinator's address; anyone who has it can read the schedule"


def _path(request: Request) -> str:
    return f"/api/v1/calendar/{request.app.state.calendar_secret}.ics"


@router.get("", dependencies=[Operator])
async def calendar_url(request: Request) -> CalendarUrl:
    """The feed's secret URL path."""
    return CalendarUrl(path=_path(request))


@router.post("/rotate", dependencies=[Operator])
async def rotate_calendar_url(request: Request, services: Svc) -> CalendarUrl:
    """A new secret URL; the old one stops working at once."""
    request.app.state.calendar_secret = rotate_token_file(services.settings.calendar_secret_file)
    return CalendarUrl(path=_path(request))


@router.get(
    "/{secret}.ics",
    response_class=Response,
    responses={200: {"content": {"text/calendar": {}}}},
    summary="The schedule as an iCalendar feed, at the secret URL",
)
async def calendar_at_secret_url(secret: str, request: Request, services: Svc) -> Response:
    if not hmac.compare_digest(secret.encode(), request.app.state.calendar_secret.encode()):
        raise ApiError(
            404,
            "calendar_not_found",
            "no calendar feed at this address (the address may have been changed); ask the operator for the "
            "current one (GET /api/v1/calendar)",
        )
    body = calendar_feed(await services.schedule.all())
    return Response(body, media_type="text/calendar; charset=utf-8")
