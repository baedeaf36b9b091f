"""Where each control message from an agent goes: the room's connection, or its meeting."""

from __future__ import annotations

from coordinator.connections import Connection, Connections
from coordinator.live_meetings import LiveMeetings
from phonghop.protocol import Ack, AnyAgentMessage, Error, Hand, Heartbeat, Hello, MediaStatus, Offer


class ControlDispatch:
    def __init__(self, connections: Connections, live: LiveMeetings) -> None:
        self._connections = connections
        self._live = live

    def _group(self, room_id: str) -> str | None:
        record = self._connections.registry.rooms.get(room_id)
        return record.group if record is not None else None

    async def handle(self, conn: Connection, message: AnyAgentMessage) -> Error | None:
        """Handle one valid message; returns the error to tell the agent, or None."""
        if isinstance(message, Hello):
            await self._connections.hello(conn, message)
            return None
        if conn.hello is None:
            return Error(
                code="unexpected", message="send 'hello' first: the coordinator needs the agent's version and devices"
            )
        if isinstance(message, Heartbeat):
            await self._connections.heartbeat(conn, message)
            return None
        if isinstance(message, MediaStatus):
            conn.media_status = message
            return None
        if isinstance(message, Ack):
            return await self._connections.answer(conn, message)
        if isinstance(message, Offer):
            return await self._live.offer(conn.room_id, message)
        if isinstance(message, Hand):
            if message.room is not None and self._group(conn.room_id) != "commune":
                return Error(code="not_commune", message="only a commune's uplink raises a hand for another room")
            return self._live.hand(conn.room_id, message.raised, message.room)
        return await self._live.give_floor(conn.room_id, message.room)
