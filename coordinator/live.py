"""The live state's parts: a running meeting, an agent's connection, a pending command."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel
from starlette.websockets import WebSocket, WebSocketState

from coordinator.media.router import MeetingRouter
from phonghop.protocol import Ack, Action, Hello, MediaStatus, MeetingRef

log = logging.getLogger(__name__)


@dataclass
class ActiveMeeting:
    """A running occurrence. Chair, mode and floor live in its router, which routes by them."""

    occurrence_id: int
    meeting_id: int
    title: str
    started_at: datetime
    ends_at: datetime
    expected: set[str]
    router: MeetingRouter
    joined: set[str] = field(default_factory=set)
    hands: list[str] = field(default_factory=list)  # raised hands, first come first

    @property
    def chair(self) -> str:
        return self.router.chair

    @property
    def mode(self) -> str:
        return self.router.mode

    @property
    def floor(self) -> str | None:
        return self.router.floor

    def in_meeting(self, room_id: str) -> bool:
        """Joined, and its media is flowing."""
        return room_id in self.joined and self.router.flowing(room_id)

    def ref(self) -> MeetingRef:
        return MeetingRef(
            id=self.meeting_id,
            occurrence=self.occurrence_id,
            title=self.title,
            chair=self.chair,
            mode=self.mode,
        )


@dataclass
class PendingCommand:
    """A command sent to a room and not yet acknowledged."""

    room: str
    action: Action
    meeting_id: int | None = None
    reply: asyncio.Future[Ack] | None = None


class RoomOffline(Exception):
    pass


class Connection:
    """One agent's control WebSocket, after authentication."""

    def __init__(self, room_id: str, websocket: WebSocket) -> None:
        self.room_id = room_id
        self.websocket = websocket
        self.peer = f"{websocket.client.host}:{websocket.client.port}" if websocket.client else "?"
        self.last_heartbeat = time.monotonic()
        self.hello: Hello | None = None
        self.media_status: MediaStatus | None = None
        self.told_meeting: int | None = None  # meeting id of the last join we sent
        self._send_lock = asyncio.Lock()

    async def send(self, message: BaseModel) -> bool:
        if self.websocket.application_state != WebSocketState.CONNECTED:
            return False
        try:
            async with self._send_lock:
                await self.websocket.send_text(message.model_dump_json())
        except Exception as exc:  # the socket died under us; the receive loop will notice
            log.info("room %s: send failed (%s)", self.room_id, exc)
            return False
        return True

    async def close(self, code: int, reason: str) -> None:
        if self.websocket.application_state == WebSocketState.CONNECTED:
            try:
                await self.websocket.close(code=code, reason=reason)
            except Exception as exc:
                log.debug("room %s: close failed (%s)", self.room_id, exc)
