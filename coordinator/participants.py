"""Who takes part in a meeting besides rooms: guests admitted by an invitation, web pages watching, the recorder.

Their ids cannot be room ids (room ids have no colon), so the router, the
floor and the hands treat them alike while the metrics, the attendance and the
pages can tell them apart.
"""

from __future__ import annotations

from typing import Literal

GUEST_PREFIX = "khach:"
VIEWER_PREFIX = "xem:"  # a signed-in user's page watching a meeting (the console's live view)
RECORDER = "ghi:hinh"  # the recorder's place among a meeting's subscribers (it gets what the audience gets)
Kind = Literal["room", "guest", "viewer", "recorder"]

# Why a guest's page was refused or sent away: WebSocket close codes, which the page words in Vietnamese
# (a browser shows a page no HTTP refusal of a WebSocket, only the close code after it opened).
CLOSE_GUEST_REMOVED = 4003  # the operator removed the guest (its invitation is revoked)
CLOSE_NO_INVITATION = 4401  # this browser holds no invitation that admits anyone
CLOSE_FOREIGN_ORIGIN = 4403  # opened from another site's page
CLOSE_MEETING_ENDED = 4010  # the occurrence ended, and the invitation with it
CLOSE_NOT_STARTED = 4011  # the occurrence has not started yet: try again later


def guest_id(invitation_id: int) -> str:
    return f"{GUEST_PREFIX}{invitation_id}"


def viewer_id(user_name: str) -> str:
    return f"{VIEWER_PREFIX}{user_name}"


def is_guest(participant: str) -> bool:
    return participant.startswith(GUEST_PREFIX)


def kind_of(participant: str) -> Kind:
    if is_guest(participant):
        return "guest"
    if participant.startswith(VIEWER_PREFIX):
        return "viewer"
    return "recorder" if participant == RECORDER else "room"


def invitation_of(participant: str) -> int | None:
    """The invitation behind a guest's participant id; None for a room."""
    if not is_guest(participant):
        return None
    number = participant.removeprefix(GUEST_PREFIX)
    return int(number) if number.isdigit() else None
