"""The room page (/phong/{id}): identity, agent, devices, TV picture, self-test, outages and uptime."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from coordinator.connections import RoomOffline
from coordinator.registry import RoomRecord
from coordinator.services import Services, Svc
from coordinator.web.history import UPTIME_WINDOW, outages, uptime
from coordinator.web.security import Changer, Refused, Viewer
from coordinator.web.state import web_state
from coordinator.web.templating import ago, render
from coordinator.web.views import room_row

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

CHECK_TIMEOUT = 60.0


def _record(services: Services, room_id: str) -> RoomRecord:
    record = services.registry.rooms.get(room_id)
    if record is None:
        raise Refused(f"Không có phòng {room_id!r} trong danh sách phòng đã đăng ký.", status=404)
    return record


@router.get("/phong/{room_id}", response_class=HTMLResponse)
async def room_page(request: Request, room_id: str, services: Svc, user: Viewer) -> HTMLResponse:
    record = _record(services, room_id)
    history = web_state(request).history
    now = datetime.now(UTC)
    since = max(now - UPTIME_WINDOW, record.enrolled_at)
    events = await history.events(room_id, since)
    return render(
        request,
        "room.html",
        user,
        record=record,
        row=room_row(services, record),
        screen=services.screens.get(room_id),
        check=await history.last_check(room_id),
        uptime=uptime(events, since, now),
        uptime_since=since,
        outages=outages(events)[:50],
        stays=await history.stays(room_id),
        ago=lambda value: ago(value, now),
        now=now,
    )


@router.get("/phong/{room_id}/man-hinh.png")
async def room_screen(room_id: str, services: Svc, user: Viewer) -> Response:
    screen = services.screens.get(room_id)
    if screen is None:
        return RedirectResponse("/static/chua-co-hinh.svg", status_code=303)
    return screen.response()


@router.post("/phong/{room_id}/tu-kiem-tra")
async def run_check(request: Request, room_id: str, services: Svc, user: Changer) -> RedirectResponse:
    _record(services, room_id)
    try:
        ack = await services.connections.ask(room_id, "run_check", CHECK_TIMEOUT)
    except RoomOffline:
        message = f"Phòng {room_id} đang mất kết nối; không chạy được tự kiểm tra."
    except TimeoutError:
        message = f"Phòng {room_id} không trả lời trong {CHECK_TIMEOUT:.0f} giây."
    else:
        message = "Tự kiểm tra: đạt." if ack.ok else "Tự kiểm tra: có lỗi, xem kết quả bên dưới."
    log.info("web user %s ran the self-test of %s", user.name, room_id)
    request.session["flash"] = message
    return RedirectResponse(f"/phong/{room_id}", status_code=303)
