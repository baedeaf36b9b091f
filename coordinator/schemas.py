"""Request and response bodies of the REST API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from phonghop.identity import ROOM_ID_PATTERN, RoomGroup
from phonghop.protocol import CheckItem

RoomId = Annotated[
    str,
    Field(
        pattern=ROOM_ID_PATTERN,
        description="the room laptop's inventory hostname, e.g. tdp-01",
        examples=["tdp-01"],
    ),
]
_ROOM_ID = ROOM_ID_PATTERN.removeprefix("^").removesuffix("$")
MeetingMode = Literal["presentation", "discussion"]


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}; use e.g. Asia/Ho_Chi_Minh") from None
    return value


def _sane_start(value: datetime) -> datetime:
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueError(f"the start must be between the years {FIRST_YEAR} and {LAST_YEAR}")
    return value


FIRST_YEAR, LAST_YEAR = 2000, 2200
MeetingStart = Annotated[datetime, AfterValidator(_sane_start)]
RRule = Annotated[
    str,
    Field(
        max_length=500,
        description="RFC 5545 recurrence without DTSTART, e.g. FREQ=WEEKLY;BYDAY=MO",
        examples=["FREQ=WEEKLY;BYDAY=MO"],
    ),
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RoomEnroll(_Body):
    id: RoomId
    name: str = Field(min_length=1, max_length=200, examples=["Tổ dân phố 1"])
    group: RoomGroup


class RoomPatch(_Body):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    group: RoomGroup | None = None


class MediaOut(BaseModel):
    """What the meeting's router sends the room, and whether media arrives there."""

    receiving: bool = Field(description="the room's agent reports media arriving from the coordinator")
    program: str | None = Field(default=None, description="room whose picture the router sends on the program slot")
    audio: list[str | None] = Field(
        default_factory=list,
        description="rooms whose sound the router sends on the chair's and the floor's slot (null: nothing)",
    )


class RoomOut(BaseModel):
    id: str
    name: str
    group: str
    enrolled_at: datetime
    token_issued_at: datetime
    last_seen: datetime | None
    agent_version: str | None
    devices: dict[str, bool]
    up: bool = False
    meeting: int | None = Field(default=None, description="meeting the room is in now")
    media: MediaOut | None = None


class RoomWithToken(RoomOut):
    token: str = Field(description="shown once: store it in the room agent's token file")


class MeetingFields(_Body):
    title: str = Field(min_length=1, max_length=200, examples=["Giao ban tuần"])
    chair_room: RoomId = Field(examples=["ubnd"])
    invited_rooms: list[RoomId] = Field(default_factory=list, max_length=500)
    invited_groups: list[RoomGroup] = Field(default_factory=list)
    start: MeetingStart = Field(description="first start; without an offset it is read in `timezone`")
    duration_seconds: int = Field(ge=10, le=24 * 3600)
    rrule: RRule | None = None
    timezone: Annotated[str, AfterValidator(_zone)] = "Asia/Ho_Chi_Minh"
    mode: MeetingMode = "presentation"
    record: bool = Field(default=True, description="record each occurrence (program picture and sound)")


class MeetingCreate(MeetingFields):
    @model_validator(mode="after")
    def _someone_invited(self) -> MeetingCreate:
        if not self.invited_rooms and not self.invited_groups:
            raise ValueError("invite at least one room or group (invited_rooms / invited_groups)")
        return self


class MeetingPatch(_Body):
    """Only the fields sent change; ``rrule: null`` makes the meeting a one-off, other fields cannot be null."""

    title: str | None = Field(default=None, min_length=1, max_length=200)
    chair_room: RoomId | None = None
    invited_rooms: list[RoomId] | None = Field(default=None, max_length=500)
    invited_groups: list[RoomGroup] | None = None
    start: MeetingStart | None = None
    duration_seconds: int | None = Field(default=None, ge=10, le=24 * 3600)
    rrule: RRule | None = None
    timezone: Annotated[str, AfterValidator(_zone)] | None = None
    mode: MeetingMode | None = None
    record: bool | None = None

    @field_validator(
        "title",
        "chair_room",
        "invited_rooms",
        "invited_groups",
        "start",
        "duration_seconds",
        "timezone",
        "mode",
        "record",
    )
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("cannot be null: leave the field out to keep its value")
        return value


class Running(BaseModel):
    occurrence: int
    started_at: datetime
    ends_at: datetime
    floor: str | None
    joined: list[str]
    missing: list[str]


class MeetingOut(BaseModel):
    id: int
    title: str
    chair_room: str
    invited_rooms: list[str]
    invited_groups: list[str]
    start: datetime
    duration_seconds: int
    rrule: str | None
    timezone: str
    mode: str
    record: bool
    expected_rooms: list[str]
    next_start: datetime | None
    running: Running | None = None


class CommandRequest(_Body):
    action: Literal["run_check", "reload_config"]
    timeout_seconds: float = Field(default=30, gt=0, le=300)


class CommandResult(BaseModel):
    room: str
    action: str
    ok: bool
    detail: str
    checks: list[CheckItem] = Field(default_factory=list)  # run_check's checklist (Vietnamese)


class FloorRequest(_Body):
    room: str = Field(
        pattern=f"^{_ROOM_ID}(?:/{_ROOM_ID})?$",
        description='a room, or a room of a commune taking part: "commune/room"',
        examples=["tdp-01", "xa-phong-son/tdp-01"],
    )


class FloorOut(BaseModel):
    meeting: int
    floor: str | None
    hands: list[str] = Field(default_factory=list, description="rooms with a raised hand, first come first")
    speaker: str | None = Field(default=None, description="active speaker (discussion mode)")


class AttendanceOut(BaseModel):
    room: str  # a room's id, or a guest's participant id ("khach:<invitation>")
    guest: str | None = None  # the guest's name, for a guest
    joined_at: datetime
    left_at: datetime | None
    left_reason: str | None


class OccurrenceOut(BaseModel):
    id: int
    scheduled_start: datetime
    started_at: datetime
    ends_at: datetime
    ended_at: datetime | None
    floor: str | None
    attendance: list[AttendanceOut]
