"""The schedule (/lich-hop): list, create, edit and cancel meetings with plain forms (POST-redirect-GET)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from coordinator.errors import ApiError
from coordinator.models import Meeting
from coordinator.recurrence import next_start
from coordinator.schedule import expected_rooms, timing_of
from coordinator.schemas import MeetingCreate, MeetingPatch
from coordinator.services import Services, Svc
from coordinator.web.forms import DAY_CODES, MeetingForm, describe_rrule, schedule_errors, validation_errors
from coordinator.web.security import Changer, Refused, SignedIn, Viewer
from coordinator.web.templating import WEEKDAYS, render
from phonghop.identity import ROOM_GROUPS

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)


async def _meeting(services: Services, meeting_id: int) -> Meeting:
    try:
        return await services.schedule.get(meeting_id)
    except ApiError:
        raise Refused(f"Không có cuộc họp số {meeting_id}; có thể nó đã bị hủy.", status=404) from None


@router.get("/lich-hop", response_class=HTMLResponse)
async def schedule_list(request: Request, services: Svc, user: Viewer) -> HTMLResponse:
    now = datetime.now(UTC)
    zone = services.settings.zone
    rows = []
    for meeting in await services.schedule.all():
        rows.append(
            {
                "meeting": meeting,
                "when": describe_rrule(meeting.rrule, meeting.start, zone),
                "minutes": meeting.duration_seconds // 60,
                "next": next_start(timing_of(meeting), now),
                "running": meeting.id in services.live.meetings,
                "rooms": len(expected_rooms(meeting, services.registry)),
            }
        )
    rows.sort(key=lambda r: (not r["running"], r["next"] is None, r["next"] or now))
    return render(request, "schedule.html", user, rows=rows)


def _form_page(
    request: Request,
    services: Services,
    user: SignedIn,
    form: MeetingForm,
    errors: dict[str, str],
    meeting_id: int | None,
) -> HTMLResponse:
    rooms = sorted(services.registry.rooms.values(), key=lambda r: (ROOM_GROUPS.index(r.group), r.id))
    return render(
        request,
        "meeting_form.html",
        user,
        status_code=422 if errors else 200,
        form=form,
        errors=errors,
        meeting_id=meeting_id,
        rooms=rooms,
        groups=ROOM_GROUPS,
        days=list(zip(DAY_CODES, WEEKDAYS, strict=True)),
    )


@router.get("/lich-hop/moi", response_class=HTMLResponse)
async def new_meeting(request: Request, services: Svc, user: Viewer) -> HTMLResponse:
    if not user.can_change:
        raise Refused("Tài khoản của bạn chỉ có quyền xem; tạo cuộc họp cần tài khoản vận hành.")
    today = datetime.now(services.settings.zone)
    form = MeetingForm(date=today.date().isoformat(), start_time="07:30", end_time="09:00")
    return _form_page(request, services, user, form, {}, None)


@router.post("/lich-hop/moi", response_model=None)
async def create_meeting(request: Request, services: Svc, user: Changer) -> Response:
    form = MeetingForm.from_post(await request.form())
    body, errors = form.body(services.settings.timezone)
    if not errors:
        try:
            meeting = await services.schedule.create(MeetingCreate.model_validate(body))
        except ValidationError as exc:
            errors = validation_errors(exc, form)
        except ApiError as exc:
            errors = schedule_errors(exc, form, set(services.registry.rooms))
    if errors:
        return _form_page(request, services, user, form, errors, None)
    services.scheduler.poke()
    log.info("web user %s scheduled meeting %s", user.name, meeting.id)
    request.session["flash"] = f"Đã lưu cuộc họp “{meeting.title}”."
    return RedirectResponse("/lich-hop", status_code=303)


@router.get("/lich-hop/{meeting_id}/sua", response_class=HTMLResponse)
async def edit_meeting(request: Request, meeting_id: int, services: Svc, user: Viewer) -> HTMLResponse:
    if not user.can_change:
        raise Refused("Tài khoản của bạn chỉ có quyền xem; sửa cuộc họp cần tài khoản vận hành.")
    meeting = await _meeting(services, meeting_id)
    return _form_page(
        request, services, user, MeetingForm.from_meeting(meeting, services.settings.zone), {}, meeting_id
    )


@router.post("/lich-hop/{meeting_id}/sua", response_model=None)
async def update_meeting(request: Request, meeting_id: int, services: Svc, user: Changer) -> Response:
    await _meeting(services, meeting_id)
    form = MeetingForm.from_post(await request.form())
    body, errors = form.body(services.settings.timezone)
    if not errors:
        try:
            meeting = await services.schedule.update(meeting_id, MeetingPatch.model_validate(body))
        except ValidationError as exc:
            errors = validation_errors(exc, form)
        except ApiError as exc:
            errors = schedule_errors(exc, form, set(services.registry.rooms))
    if errors:
        return _form_page(request, services, user, form, errors, meeting_id)
    services.scheduler.poke()
    log.info("web user %s changed meeting %s", user.name, meeting_id)
    request.session["flash"] = f"Đã lưu thay đổi của cuộc họp “{meeting.title}”."
    return RedirectResponse("/lich-hop", status_code=303)


@router.post("/lich-hop/{meeting_id}/huy")
async def cancel_meeting(request: Request, meeting_id: int, services: Svc, user: Changer) -> RedirectResponse:
    meeting = await _meeting(services, meeting_id)
    await services.schedule.delete(meeting_id)
    await services.live.stop(meeting_id, "meeting deleted")
    log.info("web user %s cancelled meeting %s", user.name, meeting_id)
    request.session["flash"] = f"Đã hủy cuộc họp “{meeting.title}”."
    return RedirectResponse("/lich-hop", status_code=303)
