"""Messages on the control channel between a room agent and the coordinator.

One JSON object per WebSocket text message, discriminated by ``type``. Both
sides validate with these models, so a malformed message is rejected with a
message that names the field, instead of failing somewhere deeper.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

# WebSocket close codes of the control channel (4000-4999 are the application's).
CLOSE_REPLACED = 4000  # another connection for the same room took over
CLOSE_TOKEN_REISSUED = 4001  # reconnect with the new token from the token file
CLOSE_ROOM_REMOVED = 4004
CLOSE_HEARTBEAT_TIMEOUT = 4008
CLOSE_RESTART = 1012  # "service restart": the coordinator is stopping; reconnect soon

DeviceName = Literal["camera", "microphone", "speaker", "display"]
DEVICE_NAMES: tuple[DeviceName, ...] = ("camera", "microphone", "speaker", "display")
Action = Literal["join", "leave", "run_check", "reload_config"]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- agent -> coordinator -------------------------------------------------


class Hello(_Message):
    type: Literal["hello"] = "hello"
    version: str = Field(min_length=1, max_length=64)
    capabilities: list[str] = Field(default_factory=list, max_length=32)
    devices: dict[DeviceName, bool] = Field(default_factory=dict)
    # The most this participant's link takes from the coordinator, in kbit/s (a commune's budget for what
    # the province sends it): the program picture is held back while it does not fit; sound always goes.
    receive_kbps: int | None = Field(default=None, ge=64, le=1_000_000)


class Heartbeat(_Message):
    type: Literal["heartbeat"] = "heartbeat"
    devices: dict[DeviceName, bool] | None = None


class CheckItem(_Message):
    """One line of a room's self-test: a machine name, the result, and in Vietnamese what to do."""

    name: str = Field(min_length=1, max_length=32)
    ok: bool
    message: str = Field(default="", max_length=500)
    fix: str = Field(default="", max_length=500)


class Ack(_Message):
    type: Literal["ack"] = "ack"
    command_id: str = Field(min_length=1, max_length=64)
    ok: bool = True
    detail: str = Field(default="", max_length=2000)
    checks: list[CheckItem] = Field(default_factory=list, max_length=32)  # run_check's checklist


class Offer(_Message):
    """The agent's WebRTC offer for the meeting occurrence it was told to join."""

    type: Literal["offer"] = "offer"
    occurrence: int
    sdp: str = Field(min_length=1, max_length=60_000)


class MediaStatus(_Message):
    """Whether media from the coordinator reaches the room (what it is, the coordinator's router knows)."""

    type: Literal["media_status"] = "media_status"
    receiving: bool


class Hand(_Message):
    """A raised (or lowered) hand; a commune's uplink names which of its rooms raised it."""

    type: Literal["hand"] = "hand"
    raised: bool
    room: str | None = Field(default=None, max_length=32)


class GiveFloor(_Message):
    """The chair room gives the floor to a room (or "commune/room"), or takes it back (room None)."""

    type: Literal["give_floor"] = "give_floor"
    room: str | None = Field(default=None, max_length=65)


AnyAgentMessage = Hello | Heartbeat | Ack | Offer | MediaStatus | Hand | GiveFloor
AgentMessage = Annotated[AnyAgentMessage, Field(discriminator="type")]


# --- coordinator -> agent -------------------------------------------------


class MeetingRef(_Message):
    """What a room needs to know about the meeting it is told to join.

    A commune's uplink also needs when it ends and which groups it invites, to
    run the meeting inside the commune (no group but ``commune``: all rooms).
    """

    id: int
    occurrence: int
    title: str
    chair: str
    mode: str
    ends_at: datetime | None = None
    invited_groups: list[str] = Field(default_factory=list, max_length=16)
    recording: bool = False  # the coordinator records it: the TV says so


class Welcome(_Message):
    type: Literal["welcome"] = "welcome"
    room: str
    heartbeat_interval: float


class Command(_Message):
    type: Literal["command"] = "command"
    id: str
    action: Action
    meeting: MeetingRef | None = None


class Floor(_Message):
    type: Literal["floor"] = "floor"
    meeting: int
    room: str | None


class Publish(_Message):
    """Which of its media the room should send: only what some room is shown or played."""

    type: Literal["publish"] = "publish"
    video: bool
    audio: bool


class ProgramPicture(_Message):
    """Whether the program picture is sent: held back while it does not fit the receiver's budget."""

    type: Literal["program_picture"] = "program_picture"
    sent: bool
    reason: str = Field(default="", max_length=200)


class ProgramQuality(_Message):
    """Which quality of the program picture the room gets: the lower one while its link loses the higher
    one's packets (the TV says "Mạng yếu"); ``reason`` says what the router saw, in Vietnamese."""

    type: Literal["program_quality"] = "program_quality"
    low: bool
    reason: str = Field(default="", max_length=200)


class Answer(_Message):
    type: Literal["answer"] = "answer"
    occurrence: int
    sdp: str


class Error(_Message):
    type: Literal["error"] = "error"
    code: str
    message: str


AnyCoordinatorMessage = Welcome | Command | Floor | Answer | Publish | ProgramPicture | ProgramQuality | Error
CoordinatorMessage = Annotated[AnyCoordinatorMessage, Field(discriminator="type")]

agent_message: TypeAdapter[AnyAgentMessage] = TypeAdapter(AgentMessage)
coordinator_message: TypeAdapter[AnyCoordinatorMessage] = TypeAdapter(CoordinatorMessage)


def explain(error: ValidationError) -> str:
    """One line a person can act on, from pydantic's structured errors."""
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(p) for p in item["loc"]) or "message"
        if item["type"] == "union_tag_invalid":
            ctx = item.get("ctx", {})
            parts.append(f"unknown message type {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}")
        elif item["type"] == "union_tag_not_found":
            parts.append("the message has no 'type' field")
        elif item["type"] == "json_invalid":
            parts.append(f"malformed JSON: {item['msg']}")
        else:
            parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)
