"""Persistent state: rooms, meetings, meeting occurrences, attendance and guests' invitations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint, true
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite drops the zone otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; attach a time zone")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime, dict[str, Any]: JSON}


class Room(Base):
    __tablename__ = "rooms"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    group: Mapped[str] = mapped_column("room_group", String(32))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    enrolled_at: Mapped[datetime] = mapped_column(default=utcnow)
    token_issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime | None]
    agent_version: Mapped[str | None] = mapped_column(String(64))
    devices: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Meeting(Base):
    __tablename__ = "meetings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    chair_room: Mapped[str] = mapped_column(String(32))
    invited_rooms: Mapped[list[str]] = mapped_column(JSON, default=list)
    invited_groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    start: Mapped[datetime]
    duration_seconds: Mapped[int]
    rrule: Mapped[str | None] = mapped_column(Text)
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Ho_Chi_Minh")
    mode: Mapped[str] = mapped_column(String(16), default="presentation")
    record: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())  # "ghi hình"
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Deleting keeps the row (and so the attendance history); it only stops scheduling.
    deleted_at: Mapped[datetime | None]


class Occurrence(Base):
    """One run of a meeting: created when it starts, closed when it ends."""

    __tablename__ = "occurrences"
    __table_args__ = (UniqueConstraint("meeting_id", "scheduled_start"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id"), index=True)
    scheduled_start: Mapped[datetime]
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ends_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    floor_room: Mapped[str | None] = mapped_column(String(32))
    invited_rooms: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")  # as it started


class Attendance(Base):
    """A room's stay in an occurrence: from its join to its leave or loss."""

    __tablename__ = "attendance"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    occurrence_id: Mapped[int] = mapped_column(ForeignKey("occurrences.id"), index=True)
    room_id: Mapped[str] = mapped_column(String(32), index=True)
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)
    left_at: Mapped[datetime | None]
    left_reason: Mapped[str | None] = mapped_column(String(64))


class Invitation(Base):
    """One named guest's admission to one occurrence of a meeting (known by its scheduled start, so it can be
    made before the meeting starts): a link and a short code, both stored only as hashes."""

    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id"), index=True)
    scheduled_start: Mapped[datetime]
    # The occurrence's end as scheduled; once it runs, its own end (which the operator may move) counts.
    expires_at: Mapped[datetime]
    guest_name: Mapped[str] = mapped_column(String(100))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    code_hash: Mapped[str] = mapped_column(String(64), index=True)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class MeetingEvent(Base):
    """What the minutes tell besides attendance: the floor given or taken back, hands raised and lowered."""

    __tablename__ = "meeting_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    occurrence_id: Mapped[int] = mapped_column(ForeignKey("occurrences.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(16))  # "floor", "hand_up", "hand_down"
    participant: Mapped[str | None] = mapped_column(String(65))  # room, "commune/room" or guest; None: the chair


class User(Base):
    """A person who signs in to the web pages: an operator (may change things) or a viewer (reads only)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Every session cookie carries the generation it was signed in under; a new one (sign-out, a new password)
    # ends all older sessions of the user. Random, so a user removed and made again gets none of the old ones.
    session_generation: Mapped[str] = mapped_column(String(32), default="", server_default="")


class PresenceEvent(Base):
    """A room's control channel came up or went down: the outage history and the uptime figure."""

    __tablename__ = "presence_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room_id: Mapped[str] = mapped_column(String(32), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    up: Mapped[bool]
    reason: Mapped[str | None] = mapped_column(String(200))


class SelfTest(Base):
    """The last self-test (run_check) answer of each room."""

    __tablename__ = "self_tests"

    room_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    at: Mapped[datetime]
    ok: Mapped[bool]
    detail: Mapped[str] = mapped_column(Text)


class ReadinessCheck(Base):
    """A room's self-test result before one scheduled start of a meeting (the readiness check)."""

    __tablename__ = "readiness_checks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id"), index=True)
    scheduled_start: Mapped[datetime]
    ends_at: Mapped[datetime]
    stage: Mapped[str] = mapped_column(String(16))  # "lead" (about an hour ahead) or "final" (shortly before)
    room_id: Mapped[str] = mapped_column(String(32))
    checked_at: Mapped[datetime] = mapped_column(default=utcnow)
    ok: Mapped[bool]
    failed_check: Mapped[str | None] = mapped_column(String(32))
    checks: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
