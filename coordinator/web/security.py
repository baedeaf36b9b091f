"""Signing in to the pages: a signed session cookie, a per-session CSRF token, two roles.

Every page needs a signed-in user; every POST needs the session's CSRF token
in the form, and changes need the operator role. Refusals are exceptions that
``coordinator.web`` turns into a redirect to the sign-in page or an error page.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException

from coordinator.web.state import web_state

SESSION_USER = "user"
SESSION_GENERATION = "generation"
SESSION_CSRF = "csrf"
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True)
class SignedIn:
    name: str
    role: str

    @property
    def can_change(self) -> bool:
        return self.role == "operator"


class SignInRequired(Exception):
    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path

    @property
    def location(self) -> str:
        return f"/dang-nhap?next={quote(self.next_path, safe='/')}"


class Refused(Exception):
    """A request the signed-in user may not make; the message is shown to them."""

    def __init__(self, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def csrf_token(request: Request) -> str:
    token = request.session.get(SESSION_CSRF)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session[SESSION_CSRF] = token
    return token


MAX_FORM_FIELDS = 300  # the meeting form with every room ticked stays far below


async def read_form(request: Request) -> FormData:
    """The posted form: plain fields only (a file part is refused before anything is spooled to disk)."""
    try:
        return await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
    except HTTPException as exc:
        if exc.status_code == 413:
            raise Refused("Biểu mẫu gửi lên quá lớn. Hãy tải lại trang và thử lại.", status=413) from None
        raise Refused(
            f"Biểu mẫu không hợp lệ ({exc.detail}): trang này chỉ nhận các ô nhập, không nhận tệp đính kèm "
            f"và tối đa {MAX_FORM_FIELDS} ô.",
            status=400,
        ) from None


async def check_csrf(request: Request) -> None:
    form = await read_form(request)
    sent = form.get(CSRF_FIELD)
    expected = request.session.get(SESSION_CSRF)
    if not isinstance(sent, str) or not isinstance(expected, str) or not hmac.compare_digest(sent, expected):
        raise Refused(
            "Biểu mẫu đã hết hạn hoặc không hợp lệ (thiếu mã chống giả mạo CSRF). Hãy tải lại trang và thử lại."
        )


def safe_next(path: str | None) -> str:
    """Only a path on this site: no scheme, no other host."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


async def current_user(request: Request) -> SignedIn:
    name = request.session.get(SESSION_USER)
    generation = request.session.get(SESSION_GENERATION)
    user = await web_state(request).users.get(name) if isinstance(name, str) else None
    if user is not None and not (
        isinstance(generation, str)
        and user.session_generation
        and hmac.compare_digest(generation.encode(), user.session_generation.encode())
    ):
        user = None  # signed out since, a new password, or removed and made again: this session has ended
    if user is None:
        request.session.pop(SESSION_USER, None)
        request.session.pop(SESSION_GENERATION, None)
        target = request.url.path if request.method == "GET" else "/"
        if request.url.query and request.method == "GET":
            target += "?" + request.url.query
        raise SignInRequired(target)
    return SignedIn(user.name, user.role)


async def operator(request: Request, user: Annotated[SignedIn, Depends(current_user)]) -> SignedIn:
    """A change: the CSRF token first, then the role."""
    await check_csrf(request)
    if not user.can_change:
        raise Refused("Tài khoản của bạn chỉ có quyền xem; việc này cần tài khoản vận hành (operator).")
    return user


Viewer = Annotated[SignedIn, Depends(current_user)]
Changer = Annotated[SignedIn, Depends(operator)]
