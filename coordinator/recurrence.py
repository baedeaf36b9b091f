"""When meetings happen: recurrence (RFC 5545 RRULE) evaluated in the meeting's zone.

Pure functions over plain values, so the scheduler loop stays small and these
rules are tested without a clock.

dateutil searches a rule that never matches up to the year 9999 (21 s for
``FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30``), so a rule is checked before it is
stored: only the parts a meeting schedule needs, a day-level check that some
day in the first ``SEARCH_YEARS`` matches its filters, then a search for its
first start that is cut off by the calendar's 400-year cycle (see
``_first_start``). A stored rule has a start in that window, so later searches
find the next candidate within one cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule, rrulestr

MAX_RRULE_LENGTH = 500
SEARCH_YEARS = 5
ALLOWED_PARTS = {"FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "BYMONTH", "BYSETPOS", "WKST"}
REFUSED_PARTS = {"BYHOUR", "BYMINUTE", "BYSECOND", "BYYEARDAY", "BYWEEKNO", "BYEASTER"}
REFUSED_FREQS = {"HOURLY", "MINUTELY", "SECONDLY"}
MAX_INTERVAL = 100
MAX_COUNT = 10_000
_EXAMPLE = "ví dụ FREQ=WEEKLY;BYDAY=MO (thứ Hai hằng tuần)"
# The Gregorian calendar, weekdays included, repeats every 400 years (146097 days, a whole number of weeks).
_CYCLE_YEARS = 400


class RecurrenceError(ValueError):
    """An RRULE that cannot be used, with the reason in words."""


@dataclass(frozen=True)
class Timing:
    start: datetime  # aware
    duration: timedelta
    rrule: str | None
    timezone: str


def _clean(text: str) -> str:
    cleaned = text.strip()
    if cleaned.upper().startswith("RRULE:"):
        cleaned = cleaned[len("RRULE:") :]
    return cleaned


def _check_parts(cleaned: str) -> None:
    """Only what a meeting schedule needs: the rule's parts and frequency, before dateutil sees it."""
    if len(cleaned) > MAX_RRULE_LENGTH:
        raise RecurrenceError(f"quy tắc lặp lại dài {len(cleaned)} ký tự, tối đa {MAX_RRULE_LENGTH}; {_EXAMPLE}")
    parts: dict[str, str] = {}
    for item in cleaned.upper().split(";"):
        name, _, value = item.partition("=")
        name = name.strip()
        if name == "DTSTART":
            continue  # refused below, with its own reason
        if name in REFUSED_PARTS:
            raise RecurrenceError(
                f"quy tắc lặp lại không được có {name!r}: lịch họp chỉ dùng "
                f"{', '.join(sorted(ALLOWED_PARTS))} (giờ họp lấy theo giờ bắt đầu); {_EXAMPLE}"
            )
        parts[name] = value.strip()
    freq = parts.get("FREQ")
    if freq in REFUSED_FREQS:
        raise RecurrenceError(
            f"tần suất FREQ={freq} không dùng cho lịch họp: chọn DAILY (hằng ngày), "
            f"WEEKLY (hằng tuần), MONTHLY (hằng tháng) hoặc YEARLY (hằng năm); {_EXAMPLE}"
        )
    if "BYSETPOS" in parts and freq in ("DAILY", "WEEKLY"):
        raise RecurrenceError(
            f"BYSETPOS chỉ dùng với FREQ=MONTHLY hoặc YEARLY, ví dụ FREQ=MONTHLY;BYDAY=FR;BYSETPOS=-1 "
            f"(thứ Sáu cuối tháng); FREQ={freq} không cần nó"
        )
    for name, top in (("INTERVAL", MAX_INTERVAL), ("COUNT", MAX_COUNT)):
        if name in parts and parts[name].isdigit() and not 1 <= int(parts[name]) <= top:
            raise RecurrenceError(f"{name}={parts[name]} không hợp lệ: dùng một số nguyên từ 1 đến {top}")


def parse_rrule(text: str, start: datetime, timezone: str) -> rrule:
    """The rule anchored at ``start`` in local time, so '7:30 every Monday' stays 7:30 (no search)."""
    cleaned = _clean(text)
    if "DTSTART" in cleaned.upper():
        raise RecurrenceError("leave DTSTART out of the RRULE: the meeting's start gives it")
    _check_parts(cleaned)
    local_start = start.astimezone(ZoneInfo(timezone))
    try:
        rule = rrulestr(cleaned, dtstart=local_start)
    except (ValueError, TypeError) as exc:
        raise RecurrenceError(f"RRULE {text!r} does not parse ({exc}); example: FREQ=WEEKLY;BYDAY=MO") from exc
    if not isinstance(rule, rrule):
        raise RecurrenceError("give one RRULE, not a set of rules")
    return rule


_WEEKDAY_CODES = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


def _numbers(parts: dict[str, str], name: str) -> set[int]:
    try:
        return {int(v) for v in parts.get(name, "").split(",") if v.strip()}
    except ValueError:
        return set()  # dateutil explains it


def _day_filter(cleaned: str) -> Callable[[date], bool]:
    """The rule's day filters (month, day of month, weekday), without nth weekdays, positions or interval."""
    parts = dict(item.partition("=")[::2] for item in cleaned.upper().split(";"))
    months = _numbers(parts, "BYMONTH")
    monthdays = _numbers(parts, "BYMONTHDAY")
    weekdays = {
        i for i, code in enumerate(_WEEKDAY_CODES) for v in parts.get("BYDAY", "").split(",") if v.endswith(code)
    }

    def matches(day: date) -> bool:
        if months and day.month not in months:
            return False
        if monthdays:
            month_end = date(day.year + day.month // 12, day.month % 12 + 1, 1) - timedelta(days=1)
            if day.day not in monthdays and day.day - month_end.day - 1 not in monthdays:
                return False
        return not weekdays or day.weekday() in weekdays

    return matches


def _first_start(rule: rrule, local_start: datetime) -> datetime | None:
    """The rule's first start, searched for at most about ``_CYCLE_YEARS`` years.

    dateutil gives up only after the year 9999; the same rule moved forward by whole 400-year cycles (same
    weekdays, same leap years, same distance to UNTIL) reaches that year within one cycle.
    """
    cycles = (9999 - SEARCH_YEARS - local_start.year) // _CYCLE_YEARS
    shift = cycles * _CYCLE_YEARS
    naive = local_start.replace(tzinfo=None)
    moved_start = naive.replace(year=naive.year + shift)
    until: datetime | None = getattr(rule, "_until", None)  # dateutil keeps the parsed UNTIL only there
    if until is not None:
        if until.tzinfo is not None:
            until = until.astimezone(local_start.tzinfo).replace(tzinfo=None)
        until = until.replace(year=until.year + shift) if until.year + shift <= 9999 else None
    moved = rule.replace(dtstart=moved_start, until=until)
    found = moved.after(moved_start, inc=True)
    if found is None:
        return None
    return found.replace(year=found.year - shift, tzinfo=local_start.tzinfo)


def check_rrule(text: str, start: datetime, timezone: str) -> rrule:
    """``parse_rrule``, and the rule must start within ``SEARCH_YEARS`` years of ``start`` (bounded work)."""
    rule = parse_rrule(text, start, timezone)
    local_start = start.astimezone(ZoneInfo(timezone))
    if not 1900 <= local_start.year <= 9000:
        raise RecurrenceError(f"năm bắt đầu {local_start.year} không hợp lệ cho một lịch họp lặp lại")
    matches = _day_filter(_clean(text))
    horizon = local_start + timedelta(days=366 * SEARCH_YEARS)
    first_day = local_start.date()
    days = (horizon.date() - first_day).days
    if not any(matches(first_day + timedelta(days=n)) for n in range(days + 1)):
        raise RecurrenceError(
            f"quy tắc lặp lại {text!r} không rơi vào ngày nào trong {SEARCH_YEARS} năm từ ngày bắt đầu "
            "(ví dụ ngày 30 tháng 2 không có); hãy sửa BYMONTH / BYMONTHDAY / BYDAY"
        )
    first = _first_start(rule, local_start)
    if first is None or first > horizon:
        raise RecurrenceError(
            f"RRULE {text!r} never occurs on or after the start within {SEARCH_YEARS} years "
            f"(quy tắc lặp lại không có lần họp nào trong {SEARCH_YEARS} năm từ ngày bắt đầu)"
        )
    return rule


def _starts_between(timing: Timing, lower: datetime, upper: datetime) -> Iterator[datetime]:
    if timing.rrule is None:
        if lower <= timing.start <= upper:
            yield timing.start
        return
    rule = parse_rrule(timing.rrule, timing.start, timing.timezone)
    for start in rule.between(lower, upper, inc=True):
        yield start.astimezone(UTC)


def current_start(timing: Timing, now: datetime) -> datetime | None:
    """Start of the occurrence running at ``now`` (start <= now < end), if any."""
    running = [s for s in _starts_between(timing, now - timing.duration, now) if now < s + timing.duration]
    return max(running) if running else None


def next_start(timing: Timing, after: datetime) -> datetime | None:
    """First occurrence that starts strictly after ``after``."""
    if timing.rrule is None:
        return timing.start if timing.start > after else None
    rule = parse_rrule(timing.rrule, timing.start, timing.timezone)
    found = rule.after(after.astimezone(ZoneInfo(timing.timezone)), inc=False)
    return found.astimezone(UTC) if found is not None else None
