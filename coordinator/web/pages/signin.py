"""Sign-in (/dang-nhap) and sign-out (/dang-xuat)."""

from __future__ import annotations

import logging
import math
import secrets

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from coordinator.web.security import SESSION_CSRF, SESSION_GENERATION, SESSION_USER, Viewer, check_csrf, safe_next
from coordinator.web.state import web_state
from coordinator.web.templating import render

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)


@router.get("/dang-nhap", response_class=HTMLResponse)
async def sign_in_page(request: Request, next: str = "/") -> HTMLResponse:
    return render(request, "signin.html", None, next=safe_next(next), name="", error=None)


@router.post("/dang-nhap", response_model=None)
async def sign_in(request: Request) -> Response:
    await check_csrf(request)
    form = await request.form()
    name = str(form.get("name") or "").strip()
    password = str(form.get("password") or "")
    target = safe_next(str(form.get("next") or "/"))
    state = web_state(request)
    address = request.client.host if request.client else "?"
    wait = state.sign_in_limits.wait(address, name)
    if wait > 0:
        log.warning("web sign-in for %r from %s throttled for %.0f s", name, address, wait)
        seconds = max(1, math.ceil(wait))
        response = render(
            request,
            "signin.html",
            None,
            status_code=429,
            next=target,
            name=name,
            error=f"Đăng nhập sai quá nhiều lần. Hãy chờ {seconds} giây rồi thử lại.",
        )
        response.headers["Retry-After"] = str(seconds)
        return response
    user = await state.users.authenticate(name, password)
    if user is None:
        state.sign_in_limits.failed(address, name)
        log.warning("web sign-in refused for %r from %s", name, address)
        return render(
            request,
            "signin.html",
            None,
            status_code=401,
            next=target,
            name=name,
            error="Sai tên đăng nhập hoặc mật khẩu.",
        )
    # A fresh session (and CSRF token) on sign-in, so a cookie planted before it is worth nothing.
    request.session.clear()
    request.session[SESSION_USER] = user.name
    request.session[SESSION_GENERATION] = user.session_generation
    request.session[SESSION_CSRF] = secrets.token_urlsafe(32)
    log.info("web user %s signed in (%s)", user.name, user.role)
    return RedirectResponse(target, status_code=303)


@router.post("/dang-xuat")
async def sign_out(request: Request, user: Viewer) -> RedirectResponse:
    await check_csrf(request)
    await web_state(request).users.end_sessions(user.name)  # a copy of the cookie is worth nothing now
    request.session.clear()
    log.info("web user %s signed out (all of its sessions ended)", user.name)
    return RedirectResponse("/dang-nhap", status_code=303)
