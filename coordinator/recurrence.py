"""When meetings happen: recurrence (RFC 5545 RRULE) evaluated in the meeting's zone.

Pure functions over plain values, so the scheduler loop stays small and these
rules are tested without a clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule, rrulestr


class RecurrenceError(ValueError):
    """An RRULE that cannot be used, with the reason in words."""


@dataclass(frozen=True)
class Timing:
    start: datetime  # aware
    duration: timedelta
    rrule: str | None
    timezone: str


def parse_rrule(text: str, start: datetime, timezone: str) -> rrule:
    """The rule anchored at ``start`` in local time, so '7:30 every Monday' stays 7:30."""
    cleaned = text.strip()
    if cleaned.upper().startswith("RRULE:"):
        cleaned = cleaned[len("RRULE:") :]
    if "DTSTART" in cleaned.upper():
        raise RecurrenceError("leave DTSTART out of the RRULE: the meeting's start gives it")
    local_start = start.astimezone(ZoneInfo(timezone))
    try:
        rule = rrulestr(cleaned, dtstart=local_start)
    except (ValueError, TypeError) as exc:
        raise RecurrenceError(f"RRULE {text!r} does not parse ({exc}); example: FREQ=WEEKLY;BYDAY=MO") from exc
    if not isinstance(rule, rrule):
        raise RecurrenceError("give one RRULE, not a set of rules")
    if rule.after(local_start, inc=True) is None:
        raise RecurrenceError(f"RRULE {text!r} never occurs on or after the start")
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
