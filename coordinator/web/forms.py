"""The meeting form: browser fields to the schedule's body and back, and the schedule's errors to fields.

The rules themselves live in ``coordinator.schemas`` and ``coordinator.schedule``;
this module only translates: weekday boxes to an RRULE, a start and an end
time to a duration, and each refusal to the form field it belongs to, in Vietnamese.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import FormData

from coordinator.errors import ApiError
from coordinator.models import Meeting

DAY_CODES = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_WEEKLY = re.compile(r"^FREQ=WEEKLY;BYDAY=((?:MO|TU|WE|TH|FR|SA|SU)(?:,(?:MO|TU|WE|TH|FR|SA|SU))*)$")
REPEATS = ("none", "daily", "weekly", "custom")


@dataclass
class MeetingForm:
    """What the person typed, kept as text so a refused form comes back as they left it."""

    title: str = ""
    chair_room: str = "ubnd"
    invited_rooms: list[str] = field(default_factory=list)
    invited_groups: list[str] = field(default_factory=list)
    date: str = ""
    start_time: str = ""
    end_time: str = ""
    repeat: str = "none"
    weekdays: list[str] = field(default_factory=list)
    rrule_text: str = ""
    mode: str = "presentation"
    record: bool = True

    @classmethod
    def from_post(cls, form: FormData) -> MeetingForm:
        def text(name: str) -> str:
            value = form.get(name)
            return value.strip() if isinstance(value, str) else ""

        def many(name: str) -> list[str]:
            return [v.strip() for v in form.getlist(name) if isinstance(v, str) and v.strip()]

        return cls(
            title=text("title"),
            chair_room=text("chair_room"),
            invited_rooms=many("invited_rooms"),
            invited_groups=many("invited_groups"),
            date=text("date"),
            start_time=text("start_time"),
            end_time=text("end_time"),
            repeat=text("repeat") or "none",
            weekdays=many("weekdays"),
            rrule_text=text("rrule_text"),
            mode=text("mode") or "presentation",
            record=text("record") == "1",
        )

    @classmethod
    def from_meeting(cls, meeting: Meeting, zone: Any) -> MeetingForm:
        start = meeting.start.astimezone(zone)
        end = start + timedelta(seconds=meeting.duration_seconds)
        weekdays: list[str] = []
        repeat, text = "custom", meeting.rrule or ""
        if not meeting.rrule:
            repeat = "none"
        elif meeting.rrule == "FREQ=DAILY":
            repeat, text = "daily", ""
        elif (match := _WEEKLY.match(meeting.rrule)) is not None:
            repeat, weekdays, text = "weekly", match.group(1).split(","), ""
        return cls(
            title=meeting.title,
            chair_room=meeting.chair_room,
            invited_rooms=list(meeting.invited_rooms),
            invited_groups=list(meeting.invited_groups),
            date=start.date().isoformat(),
            start_time=start.strftime("%H:%M:%S" if start.second else "%H:%M"),
            end_time=end.strftime("%H:%M:%S" if end.second else "%H:%M"),
            repeat=repeat,
            weekdays=weekdays,
            rrule_text=text,
            mode=meeting.mode,
            record=meeting.record,
        )

    def body(self, timezone: str) -> tuple[dict[str, Any], dict[str, str]]:
        """The schedule's body, or the fields the browser sent in a shape nothing can read."""
        errors: dict[str, str] = {}
        try:
            day = date.fromisoformat(self.date)
        except ValueError:
            errors["date"] = "Chọn ngày họp (ngày/tháng/năm)."
            day = None
        start = _time(self.start_time)
        end = _time(self.end_time)
        if start is None:
            errors["start_time"] = "Nhập giờ bắt đầu, ví dụ 07:30."
        if end is None:
            errors["end_time"] = "Nhập giờ kết thúc, ví dụ 09:00."
        rrule: str | None = None
        if self.repeat == "daily":
            rrule = "FREQ=DAILY"
        elif self.repeat == "weekly":
            days = [d for d in DAY_CODES if d in self.weekdays]
            if not days:
                errors["repeat"] = "Họp hằng tuần: chọn ít nhất một thứ trong tuần."
            rrule = f"FREQ=WEEKLY;BYDAY={','.join(days)}"
        elif self.repeat == "custom":
            rrule = self.rrule_text
            if not rrule:
                errors["repeat"] = "Nhập quy tắc lặp lại (RRULE), ví dụ FREQ=WEEKLY;BYDAY=MO."
        elif self.repeat != "none":
            errors["repeat"] = "Chọn một cách lặp lại trong danh sách."
        if errors or day is None or start is None or end is None:
            return {}, errors
        starts = datetime.combine(day, start)
        return {
            "title": self.title,
            "chair_room": self.chair_room,
            "invited_rooms": self.invited_rooms,
            "invited_groups": self.invited_groups,
            "start": starts,
            "duration_seconds": int((datetime.combine(day, end) - starts).total_seconds()),
            "rrule": rrule,
            "timezone": timezone,
            "mode": self.mode,
            "record": self.record,
        }, {}


def _time(text: str) -> time | None:
    try:
        return time.fromisoformat(text)
    except ValueError:
        return None


# Which form field shows a refusal of each schedule field, and what it says there.
_FIELD = {
    "title": ("title", "Nhập tên cuộc họp (1–200 ký tự)."),
    "chair_room": ("chair_room", "Chọn phòng chủ trì trong danh sách phòng đã đăng ký."),
    "invited_rooms": ("invited", "Có phòng không nằm trong danh sách phòng đã đăng ký: {detail}."),
    "invited_groups": ("invited", "Nhóm phòng không hợp lệ: {detail}."),
    "start": ("start_time", "Ngày giờ bắt đầu không hợp lệ."),
    "timezone": ("start_time", "Múi giờ không hợp lệ."),
    "duration_seconds": ("end_time", "Giờ kết thúc phải sau giờ bắt đầu ít nhất 10 giây, và họp tối đa 24 giờ."),
    "rrule": ("repeat", "Quy tắc lặp lại không dùng được ({detail})."),
    "mode": ("mode", "Chọn một chế độ họp trong danh sách."),
}
_NOBODY = "Mời ít nhất một phòng hoặc một nhóm phòng."


def _message(schema_field: str, detail: str) -> tuple[str, str]:
    form_field, text = _FIELD.get(schema_field, ("title", "Giá trị không hợp lệ ({detail})."))
    return form_field, text.format(detail=detail)


def validation_errors(exc: ValidationError, form: MeetingForm) -> dict[str, str]:
    """pydantic's refusals of the body, by form field."""
    errors: dict[str, str] = {}
    for item in exc.errors():
        loc = item.get("loc", ())
        if not loc:  # the model-level rule: nobody invited
            errors.setdefault("invited", _NOBODY)
            continue
        name = str(loc[0])
        detail = item["msg"]
        if name in ("invited_rooms", "invited_groups") and len(loc) > 1 and isinstance(loc[1], int):
            values = form.invited_rooms if name == "invited_rooms" else form.invited_groups
            detail = values[loc[1]] if loc[1] < len(values) else detail
        form_field, text = _message(name, detail)
        errors.setdefault(form_field, text)
    return errors


def schedule_errors(exc: ApiError, form: MeetingForm, enrolled: set[str]) -> dict[str, str]:
    """The schedule's own refusals (registry and recurrence checks), by form field."""
    errors: dict[str, str] = {}
    for name, detail in exc.fields.items():
        if name == "invited_rooms" and not (set(form.invited_rooms) - enrolled):
            errors.setdefault("invited", _NOBODY)
            continue
        if name == "invited_rooms":
            detail = ", ".join(r for r in form.invited_rooms if r not in enrolled)
        form_field, text = _message(name, detail)
        errors.setdefault(form_field, text)
    if not errors:
        errors["title"] = f"Không lưu được: {exc.message}"
    return errors


def describe_rrule(rrule: str | None, start: datetime, zone: Any) -> str:
    """'Thứ Hai hằng tuần lúc 07:30' for the schedule list."""
    from coordinator.web.templating import WEEKDAYS

    local = start.astimezone(zone)
    at = local.strftime("%H:%M")
    if not rrule:
        return f"Một lần, {at} {local.strftime('%d/%m/%Y')}"
    if rrule == "FREQ=DAILY":
        return f"Hằng ngày lúc {at}"
    match = _WEEKLY.match(rrule)
    if match is not None:
        names = [WEEKDAYS[DAY_CODES.index(code)] for code in match.group(1).split(",")]
        return f"{', '.join(names)} hằng tuần lúc {at}"
    return f"Lặp lại theo quy tắc {rrule}, lúc {at}"
