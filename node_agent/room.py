"""What the room is doing: the meeting it is in and who holds the floor.

The control client tells this object what the coordinator wants; media
(sending the camera, playing the program) hooks in here.
"""

from __future__ import annotations

import logging
from typing import Literal

from phonghop.logs import set_meeting
from phonghop.protocol import MeetingRef

log = logging.getLogger(__name__)

# What became of a request the room makes to the coordinator (a raised hand, the floor given).
Outcome = Literal["sent", "not_in_meeting", "not_chair", "offline"]


class Room:
    def __init__(self, room_id: str) -> None:
        self.room_id = room_id
        self.meeting: MeetingRef | None = None
        self.floor: str | None = None
        self.connected = False
        self.hand_raised = False
        self.weak_link: str | None = None  # why the router sends the lower quality of the program, if it does

    async def join(self, meeting: MeetingRef) -> None:
        if self.meeting is not None and self.meeting.occurrence == meeting.occurrence:
            log.info("still in meeting %s (%s)", meeting.id, meeting.title)
            return
        if self.meeting is not None:
            await self.leave()
        self.meeting = meeting
        set_meeting(meeting.id)
        self.floor = None
        self.hand_raised = False
        self.weak_link = None
        log.info("joined meeting %s (%s), chaired by %s", meeting.id, meeting.title, meeting.chair)

    async def leave(self) -> None:
        if self.meeting is not None:
            log.info("left meeting %s (%s)", self.meeting.id, self.meeting.title)
        self.meeting = None
        set_meeting(None)
        self.floor = None
        self.hand_raised = False
        self.weak_link = None

    def set_floor(self, meeting_id: int, room: str | None) -> None:
        if self.meeting is None or self.meeting.id != meeting_id:
            return
        self.floor = room
        if room == self.room_id:
            self.hand_raised = False
        log.info("floor: %s", room or f"the chair ({self.meeting.chair})")

    def status(self) -> dict[str, object]:
        return {
            "room": self.room_id,
            "connected": self.connected,
            "meeting": self.meeting.model_dump() if self.meeting else None,
            "floor": self.floor,
            "hand_raised": self.hand_raised,
            "weak_link": self.weak_link,
        }
