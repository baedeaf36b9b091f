"""The live meeting console (/cuoc-hop/{id}): who is in or missing, hands, floor, mute, end; the program picture
and the live view (the program with its sound, received by the page itself)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from coordinator.errors import ApiError
from coordinator.guests.invitations import MAX_NAME
from coordinator.live_meetings import MAX_VIEWERS, ActiveMeeting, WatchRefused, holder_of
from coordinator.media.peer import OfferError
from coordinator.models import Meeting
from coordinator.participants import CLOSE_GUEST_REMOVED, guest_id, viewer_id
from coordinator.recurrence import next_start
from coordinator.schedule import expected_rooms, timing_of
from coordinator.services import Services, Svc
from coordinator.web.pages.recordings import recordings_of
from coordinator.web.pages.schedule import _meeting
from coordinator.web.security import Changer, Refused, Viewer, check_csrf, read_form
from coordinator.web.templating import ago, render
from coordinator.web.views import console_guests, console_rooms, program_of

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
ISSUED = "invitation_issued"  # the session key holding a new invitation's link and code until the console shows them


def _running(services: Services, meeting_id: int) -> ActiveMeeting:
    active = services.live.meetings.get(meeting_id)
    if active is None:
        raise Refused("Cuộc họp này không diễn ra lúc này.", status=409)
    return active


async def _room_field(request: Request, active: ActiveMeeting, commune_rooms: bool = False) -> str:
    """The form's room or guest; with ``commune_rooms`` also "commune/room" of an invited commune (the floor)."""
    room = str((await request.form()).get("room") or "")
    if not active.takes_part(holder_of(room) if commune_rooms else room):
        raise Refused(
            f"Phòng {room!r} không được mời vào cuộc họp này (hoặc khách đó không còn trong họp).", status=422
        )
    return room


def _occurrence_of(meeting: Meeting, active: ActiveMeeting | None, now: datetime) -> tuple[datetime, datetime] | None:
    """The occurrence the console's invitations are for: the running one, else the next; its start and end."""
    if active is not None:
        return active.scheduled_start, active.ends_at
    start = next_start(timing_of(meeting), now)
    return (start, start + timedelta(seconds=meeting.duration_seconds)) if start is not None else None


def _who(active: ActiveMeeting, participant: str) -> str:
    """A room or a guest as a flash message names them."""
    guest = active.guests.get(participant)
    return f"khách {guest}" if guest is not None else f"phòng {participant}"


def _back(meeting_id: int, message: str, request: Request) -> RedirectResponse:
    request.session["flash"] = message
    return RedirectResponse(f"/cuoc-hop/{meeting_id}", status_code=303)


@router.get("/cuoc-hop/{meeting_id}", response_class=HTMLResponse)
async def console(
    request: Request, meeting_id: int, services: Svc, user: Viewer, fragment: bool = False
) -> HTMLResponse:
    meeting = await _meeting(services, meeting_id)
    active = services.live.meetings.get(meeting_id)
    now = datetime.now(UTC)
    rooms = console_rooms(services, active) if active is not None else []
    occurrence = _occurrence_of(meeting, active, now)
    invitations = await services.guests.for_occurrence(meeting_id, occurrence[0]) if occurrence else []
    guests = console_guests(invitations, active, now)
    names = {r.id: r.name for r in services.registry.rooms.values()}
    names.update({g.participant: f"Khách: {g.name}" for g in guests})
    return render(
        request,
        "_console_live.html" if fragment else "console.html",
        user,
        meeting=meeting,
        active=active,
        rooms=rooms,
        joined=[r for r in rooms if r.joined],
        missing=[r for r in rooms if not r.joined],
        hands=list(active.hands) if active else [],
        program=program_of(services, active) if active else None,
        names=names,
        guests=guests,
        occurrence=occurrence,
        issued=request.session.pop(ISSUED, None) if not fragment else None,
        recordings=recordings_of(services, meeting_id) if not fragment else [],
        occurrences=[occ for occ, _ in await services.book.history(meeting_id)][::-1][:20] if not fragment else [],
        next_start=next_start(timing_of(meeting), now),
        invited=len(expected_rooms(meeting, services.registry)),
        ago=lambda value: ago(value, now),
    )


@router.post("/cuoc-hop/{meeting_id}/trao-loi")
async def give_floor(request: Request, meeting_id: int, services: Svc, user: Changer) -> RedirectResponse:
    active = _running(services, meeting_id)
    room = await _room_field(request, active, commune_rooms=True)
    await services.live.set_floor(meeting_id, room)
    log.info("web user %s gave the floor of meeting %s to %s", user.name, meeting_id, room)
    return _back(meeting_id, f"Đã trao lời cho {_who(active, room)}.", request)


@router.post("/cuoc-hop/{meeting_id}/lay-loi")
async def take_floor(request: Request, meeting_id: int, services: Svc, user: Changer) -> RedirectResponse:
    _running(services, meeting_id)
    await services.live.set_floor(meeting_id, None)
    log.info("web user %s took the floor of meeting %s back to the chair", user.name, meeting_id)
    return _back(meeting_id, "Đã lấy lại lời về phòng chủ trì.", request)


@router.post("/cuoc-hop/{meeting_id}/tat-tieng")
async def mute(request: Request, meeting_id: int, services: Svc, user: Changer) -> RedirectResponse:
    active = _running(services, meeting_id)
    room = await _room_field(request, active)
    muted = (await request.form()).get("muted") == "1"
    services.live.set_muted(meeting_id, room, muted)
    log.info("web user %s %s room %s in meeting %s", user.name, "muted" if muted else "unmuted", room, meeting_id)
    return _back(meeting_id, f"Đã {'tắt' if muted else 'bật'} tiếng {_who(active, room)}.", request)


@router.post("/cuoc-hop/{meeting_id}/ket-thuc")
async def end(request: Request, meeting_id: int, services: Svc, user: Changer) -> RedirectResponse:
    _running(services, meeting_id)
    await services.scheduler.end_now(meeting_id)
    log.info("web user %s ended meeting %s", user.name, meeting_id)
    return _back(meeting_id, "Đã kết thúc cuộc họp.", request)


@router.post("/cuoc-hop/{meeting_id}/bat-dau")
async def start(request: Request, meeting_id: int, services: Svc, user: Changer) -> RedirectResponse:
    meeting = await _meeting(services, meeting_id)
    try:
        await services.scheduler.start_now(meeting)
    except ApiError:
        raise Refused("Cuộc họp này đang diễn ra rồi.", status=409) from None
    log.info("web user %s started meeting %s now", user.name, meeting_id)
    return _back(meeting_id, "Đã bắt đầu cuộc họp.", request)


@router.post("/cuoc-hop/{meeting_id}/moi-khach")
async def invite(request: Request, meeting_id: int, services: Svc, user: Changer) -> RedirectResponse:
    """An invitation for one named guest to the running occurrence, or else the next one."""
    meeting = await _meeting(services, meeting_id)
    name = " ".join(str((await read_form(request)).get("name") or "").split())
    if not name or len(name) > MAX_NAME:
        raise Refused(f"Hãy nhập tên khách mời (từ 1 đến {MAX_NAME} ký tự).", status=422)
    occurrence = _occurrence_of(meeting, services.live.meetings.get(meeting_id), datetime.now(UTC))
    if occurrence is None:
        raise Refused("Cuộc họp này không còn lần họp nào sắp tới để mời khách.", status=409)
    issued = await services.guests.issue(meeting_id, occurrence[0], occurrence[1], name, user.name)
    log.info("web user %s invited guest %s to meeting %s", user.name, guest_id(issued.invitation.id), meeting_id)
    request.session[ISSUED] = {"name": name, "link": f"{request.base_url}khach#{issued.secret}", "code": issued.code}
    return RedirectResponse(f"/cuoc-hop/{meeting_id}#khach-moi", status_code=303)


@router.post("/cuoc-hop/{meeting_id}/khach/{invitation_id}/moi-ra")
async def remove_guest(
    request: Request, meeting_id: int, invitation_id: int, services: Svc, user: Changer
) -> RedirectResponse:
    """Revoke the invitation; a guest in the meeting is sent away at once."""
    invitation = await services.guests.get(invitation_id)
    if invitation is None or invitation.meeting_id != meeting_id:
        raise Refused(f"Cuộc họp này không có lời mời số {invitation_id}.", status=404)
    await services.guests.revoke(invitation_id)
    guest = guest_id(invitation_id)
    await services.live.send_guest_away(guest, CLOSE_GUEST_REMOVED, "removed by the operator")
    log.info("web user %s removed guest %s from meeting %s", user.name, guest, meeting_id)
    return _back(meeting_id, f"Đã thu hồi lời mời của {invitation.guest_name}.", request)


@router.post("/cuoc-hop/{meeting_id}/xem-truc-tiep")
async def watch(request: Request, meeting_id: int, services: Svc, user: Viewer) -> JSONResponse:
    """The live view: the page's receive-only offer (form field ``sdp``) in, the router's answer out."""
    await check_csrf(request)
    active = services.live.meetings.get(meeting_id)
    if active is None:
        return JSONResponse({"message": "Cuộc họp này không diễn ra lúc này."}, status_code=409)
    offer = str((await read_form(request)).get("sdp") or "")
    try:
        answer = await services.live.watch(active, viewer_id(user.name), offer)
    except OfferError as exc:
        log.warning("web user %s: live view offer refused: %s", user.name, exc)
        message = (
            f"Trình duyệt gửi lời mời kết nối không dùng được ({exc}). Hãy dùng Chromium, Firefox hoặc Safari bản mới."
        )
        return JSONResponse({"message": message}, status_code=422)
    except WatchRefused as exc:
        if exc.reason == "full":
            message = f"Đã có {MAX_VIEWERS} người đang xem trực tiếp cuộc họp này; hãy thử lại sau."
        else:
            message = f"Vừa kết nối lại quá nhiều lần; hãy chờ {exc.wait:.0f} giây rồi thử lại."
        return JSONResponse({"message": message, "retry_after": exc.wait}, status_code=429)
    return JSONResponse({"sdp": answer})
