"""The overview (/): every room at a glance, grouped like the inventory, refreshed in place."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from coordinator.recurrence import next_start
from coordinator.schedule import timing_of
from coordinator.services import Svc
from coordinator.web.security import Viewer
from coordinator.web.templating import ago, render
from coordinator.web.views import grouped_rooms

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
async def overview(request: Request, services: Svc, user: Viewer, fragment: bool = False) -> HTMLResponse:
    now = datetime.now(UTC)
    groups = grouped_rooms(services)
    rooms = [row for group in groups for row in group.rooms]
    upcoming = []
    for meeting in await services.schedule.all():
        start = next_start(timing_of(meeting), now)
        if start is not None and meeting.id not in services.live.meetings:
            upcoming.append((start, meeting))
    upcoming.sort(key=lambda pair: pair[0])
    return render(
        request,
        "_overview_live.html" if fragment else "overview.html",
        user,
        groups=groups,
        online=sum(1 for r in rooms if r.up),
        total=len(rooms),
        running=sorted(services.live.meetings.values(), key=lambda m: m.started_at),
        upcoming=upcoming[:3],
        ago=lambda value: ago(value, now),
        now=now,
    )
