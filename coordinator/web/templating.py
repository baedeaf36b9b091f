"""Jinja2 set-up for the pages: Vietnamese labels, local times, the render helper."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from coordinator.services import Services
from coordinator.web.security import CSRF_FIELD, SignedIn, csrf_token

TEMPLATES = Jinja2Templates(directory=Path(__file__).resolve().parent / "templates")

GROUP_LABELS = {
    "hall": "Trụ sở UBND xã",
    "residential_group": "Tổ dân phố",
    "school": "Trường học",
    "public_service": "Cơ quan, đơn vị",
    "commune": "Xã, phường (đường lên tỉnh)",
}
DEVICE_LABELS = {"camera": "Camera", "microphone": "Micrô", "speaker": "Loa", "display": "Màn hình"}
ROLE_LABELS = {"operator": "vận hành", "viewer": "chỉ xem"}
WEEKDAYS = ("Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ nhật")

# The coordinator and the agents word their reasons in English for the logs; the pages say them in Vietnamese.
_REASONS = (
    ("no heartbeat", "mất tín hiệu định kỳ (heartbeat)"),
    ("rate limited", "máy phòng gửi tin điều khiển quá dồn dập"),
    ("agent disconnected", "máy phòng ngắt kết nối"),
    ("connection error", "lỗi kết nối mạng"),
    ("coordinator stopped", "máy chủ điều phối dừng"),
    ("coordinator restarted", "máy chủ điều phối khởi động lại"),
    ("replaced by a newer connection", "máy phòng kết nối lại"),
    ("token re-issued", "cấp lại mã phòng"),
    ("room removed", "phòng bị xóa khỏi danh sách"),
    ("meeting ended", "cuộc họp kết thúc"),
    ("meeting deleted", "cuộc họp bị hủy"),
    ("ended by the operator", "người vận hành kết thúc họp"),
    ("removed by the operator", "người vận hành mời ra"),
    ("no longer invited", "không còn được mời"),
    ("connection failed or closed", "kết nối hình/tiếng bị đứt"),
    ("connection closed", "kết nối đóng"),
)


def reason_vi(reason: str | None) -> str:
    if not reason:
        return ""
    for english, vietnamese in _REASONS:
        if reason.startswith(english):
            return vietnamese
    return reason


def _local(services: Services, value: datetime | None, pattern: str) -> str:
    if value is None:
        return "—"
    return value.astimezone(services.settings.zone).strftime(pattern)


def ago(value: datetime | None, now: datetime) -> str:
    if value is None:
        return "chưa bao giờ"
    return "cách đây " + duration_vi(now - value)


def duration_vi(length: timedelta) -> str:
    seconds = max(0, int(length.total_seconds()))
    if seconds < 60:
        return f"{seconds} giây"
    if seconds < 3600:
        return f"{seconds // 60} phút"
    if seconds < 86400:
        return f"{seconds // 3600} giờ {seconds % 3600 // 60} phút"
    return f"{seconds // 86400} ngày {seconds % 86400 // 3600} giờ"


def render(
    request: Request,
    template: str,
    user: SignedIn | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    services: Services = request.app.state.services
    base: dict[str, Any] = {
        "user": user,
        "csrf_field": CSRF_FIELD,
        "csrf": csrf_token(request),
        "group_labels": GROUP_LABELS,
        "device_labels": DEVICE_LABELS,
        "role_labels": ROLE_LABELS,
        "when": lambda value: _local(services, value, "%H:%M:%S %d/%m/%Y"),
        "hour": lambda value: _local(services, value, "%H:%M"),
        "day": lambda value: _local(services, value, "%d/%m/%Y"),
        "reason_vi": reason_vi,
        "duration_vi": duration_vi,
        "timedelta": timedelta,
        "flash": request.session.pop("flash", None),
        "province_page": bool(services.settings.prometheus_url),
    }
    return TEMPLATES.TemplateResponse(request, template, {**base, **context}, status_code=status_code)
