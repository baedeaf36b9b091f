"""The guest's pages: entering with an invitation (/khach) and the meeting itself (/khach/phong).

A guest has no account: entering puts the invitation's id in the session
cookie, which then opens the guest's control channel (coordinator.guests.channel)
and nothing else (every operator page asks for a signed-in user).
"""

from __future__ import annotations

import logging
import math
from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from coordinator.guests.channel import SESSION_GUEST, session_invitation
from coordinator.guests.invitations import CODE_DIGITS, normal_code
from coordinator.guests.turn import IceServer, turn_server
from coordinator.models import Invitation
from coordinator.participants import guest_id
from coordinator.services import Svc
from coordinator.settings import Settings
from coordinator.web.pages.schedule import _meeting
from coordinator.web.security import check_csrf, read_form
from coordinator.web.state import web_state
from coordinator.web.templating import render

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

REFUSED_VI = {
    "unknown": "Mã mời hoặc đường dẫn không đúng. Hãy kiểm tra lại với người đã mời bạn.",
    "revoked": "Lời mời này đã bị thu hồi. Nếu bạn vẫn cần dự họp, hãy liên hệ người đã mời bạn.",
    "expired": "Lời mời này đã hết hạn: lần họp đó đã kết thúc.",
}


def _entry(request: Request, error: str | None = None, status_code: int = 200, code: str = "") -> HTMLResponse:
    return render(
        request, "guest_entry.html", None, status_code=status_code, error=error, code=code, digits=CODE_DIGITS
    )


@router.get("/khach", response_class=HTMLResponse)
async def entry_page(request: Request) -> HTMLResponse:
    return _entry(request)


@router.post("/khach", response_model=None)
async def enter(request: Request, services: Svc) -> Response:
    """The link's secret (posted by the page from after the '#') or the code typed in."""
    await check_csrf(request)
    form = await read_form(request)
    secret = str(form.get("secret") or "").strip()
    typed = str(form.get("code") or "").strip()
    entries = services.control_metrics.guest_entries
    limits = web_state(request).guest_entries
    address = request.client.host if request.client else "?"
    wait = limits.wait(address)
    if wait > 0:
        entries.labels("throttled").inc()
        log.warning("guest entry from %s throttled for %.0f s", address, wait)
        response = _entry(
            request,
            f"Nhập sai quá nhiều lần. Hãy chờ {max(1, math.ceil(wait))} giây rồi thử lại.",
            status_code=429,
            code=typed,
        )
        response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
        return response
    code = normal_code(typed)
    if not secret and code is None:
        return _entry(request, f"Mã mời gồm {CODE_DIGITS} chữ số; hãy nhập lại.", status_code=422, code=typed)
    invitation: Invitation | None
    if secret:
        invitation = await services.guests.by_secret(secret)
    else:
        assert code is not None
        invitation = await services.guests.by_code(code)
    standing = "unknown" if invitation is None else (await services.guests.standing(invitation, services.live))[0]
    if invitation is None or standing in REFUSED_VI:
        limits.spend(address)
        entries.labels(standing).inc()
        log.warning("guest entry from %s refused: %s invitation", address, standing)
        return _entry(request, REFUSED_VI[standing], status_code=403 if standing == "unknown" else 410, code=typed)
    request.session[SESSION_GUEST] = invitation.id
    entries.labels("admitted").inc()
    log.info(
        "guest %s (invitation for meeting %s) entered from %s", guest_id(invitation.id), invitation.meeting_id, address
    )
    return RedirectResponse("/khach/phong", status_code=303)


@router.get("/khach/phong", response_model=None)
async def meeting_page(request: Request, services: Svc) -> Response:
    number = session_invitation(request.session)
    invitation = await services.guests.get(number) if number is not None else None
    if invitation is None:
        return RedirectResponse("/khach", status_code=303)
    standing, active = await services.guests.standing(invitation, services.live)
    if standing in REFUSED_VI:
        return _entry(request, REFUSED_VI[standing], status_code=410)
    meeting = await _meeting(services, invitation.meeting_id)
    ends_at = active.ends_at if active is not None else invitation.expires_at
    return render(
        request,
        "guest.html",
        None,
        invitation=invitation,
        meeting=meeting,
        standing=standing,
        ends_at=ends_at,
        ice_servers=_ice_servers(services.settings, invitation, ends_at),
    )


def _ice_servers(settings: Settings, invitation: Invitation, until: datetime) -> list[IceServer]:
    """The TURN server with this invitation's credentials, when the coordinator has one."""
    if not settings.turn_url or settings.turn_secret_file is None:
        return []
    try:
        secret = settings.turn_secret_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        log.error("cannot read the TURN secret %s (%s): guests connect without TURN", settings.turn_secret_file, exc)
        return []
    return [turn_server(settings.turn_url, secret, f"khach-{invitation.id}", until)]
