"""Connected rooms: their control channels, liveness, and commands waiting for an answer.

Every command to a room goes through :class:`Connections`, which records it
under an unguessable id and matches the answer only against the sender's own
commands. What the rooms do in meetings is not known here: listeners hear
when a room connects, says hello, answers a command or goes away.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel
from starlette.websockets import WebSocket, WebSocketState

from coordinator.models import utcnow
from coordinator.registry import Registry
from phonghop.protocol import (
    CLOSE_HEARTBEAT_TIMEOUT,
    CLOSE_REPLACED,
    CLOSE_RESTART,
    CLOSE_ROOM_REMOVED,
    CLOSE_TOKEN_REISSUED,
    Ack,
    Action,
    Command,
    DeviceName,
    Error,
    Heartbeat,
    Hello,
    MediaStatus,
    MeetingRef,
    Welcome,
)

log = logging.getLogger(__name__)


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


@dataclass
class PendingCommand:
    """A command sent to a room and not yet answered."""

    room: str
    action: Action
    meeting_id: int | None = None
    reply: asyncio.Future[Ack] | None = None


class RoomListener(Protocol):
    """Who needs to know when rooms come, go and answer (the live meetings, the outage history)."""

    async def room_connected(self, room_id: str) -> None: ...

    async def room_ready(self, room_id: str) -> None: ...

    async def room_answered(self, command: PendingCommand, ack: Ack) -> None: ...

    async def room_disconnected(self, room_id: str, reason: str) -> None: ...


def _device_map(devices: Mapping[DeviceName, bool]) -> dict[str, bool]:
    return {str(name): ok for name, ok in devices.items()}


class Connections:
    def __init__(self, registry: Registry, heartbeat_interval: float, missed_heartbeats: int) -> None:
        self.registry = registry
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_interval * missed_heartbeats
        self.connections: dict[str, Connection] = {}
        self.connects_total: dict[str, int] = {}
        self.listeners: list[RoomListener] = []
        self._pending: dict[str, PendingCommand] = {}

    # --- queries ------------------------------------------------------------

    def get(self, room_id: str) -> Connection | None:
        return self.connections.get(room_id)

    def is_up(self, room_id: str) -> bool:
        conn = self.connections.get(room_id)
        return (
            conn is not None
            and conn.hello is not None
            and time.monotonic() - conn.last_heartbeat <= self.heartbeat_timeout
        )

    def receive_kbps(self, room_id: str) -> int | None:
        """The budget the room's hello stated for what it receives, if any."""
        conn = self.get(room_id)
        return conn.hello.receive_kbps if conn is not None and conn.hello is not None else None

    def greeted(self, room_id: str) -> bool:
        """Connected and said hello: it can take commands."""
        conn = self.connections.get(room_id)
        return conn is not None and conn.hello is not None

    # --- coming and going ---------------------------------------------------

    async def attach(self, conn: Connection) -> None:
        self.connects_total[conn.room_id] = self.connects_total.get(conn.room_id, 0) + 1
        old = self.connections.get(conn.room_id)
        self.connections[conn.room_id] = conn
        if old is not None:
            log.warning(
                "room %s: new control connection from %s replaces the one from %s",
                conn.room_id,
                conn.peer,
                old.peer,
            )
            await self._gone(conn.room_id, "replaced by a newer connection")
            await old.close(CLOSE_REPLACED, "replaced by a newer connection from the same room")
        log.info("room %s: control channel connected from %s", conn.room_id, conn.peer)
        for listener in list(self.listeners):
            await listener.room_connected(conn.room_id)

    async def detach(self, conn: Connection, reason: str) -> None:
        if self.connections.get(conn.room_id) is not conn:
            return  # already replaced; the newer connection owns the room's state
        del self.connections[conn.room_id]
        log.info("room %s: control channel closed (%s)", conn.room_id, reason)
        await self._gone(conn.room_id, reason)
        await self.registry.record_agent(conn.room_id, seen=utcnow())

    async def _gone(self, room_id: str, reason: str) -> None:
        """The room's connection ended (or was replaced): fail its pending commands, tell the listeners."""
        for command_id in [cid for cid, pending in self._pending.items() if pending.room == room_id]:
            reply = self._pending.pop(command_id).reply
            if reply is not None and not reply.done():
                reply.set_result(Ack(command_id=command_id, ok=False, detail=f"the room disconnected ({reason})"))
        for listener in list(self.listeners):
            await listener.room_disconnected(room_id, reason)

    async def close_room(self, room_id: str, code: int, reason: str) -> None:
        conn = self.connections.get(room_id)
        if conn is not None:
            await self.detach(conn, reason)
            await conn.close(code, reason)

    async def room_removed(self, room_id: str) -> None:
        await self.close_room(room_id, CLOSE_ROOM_REMOVED, "room removed; re-enroll it")

    async def token_reissued(self, room_id: str) -> None:
        await self.close_room(room_id, CLOSE_TOKEN_REISSUED, "token re-issued: reconnect with the new token")

    async def check_liveness(self) -> None:
        """Close connections whose heartbeats stopped; that makes the room down."""
        now = time.monotonic()
        for conn in list(self.connections.values()):
            silent = now - conn.last_heartbeat
            if silent > self.heartbeat_timeout:
                log.warning("room %s: no heartbeat for %.1f s, closing its control channel", conn.room_id, silent)
                await self.detach(conn, f"no heartbeat for {silent:.0f} s")
                await conn.close(CLOSE_HEARTBEAT_TIMEOUT, "heartbeat timeout")

    async def shutdown(self) -> None:
        for conn in list(self.connections.values()):
            await conn.close(CLOSE_RESTART, "coordinator stopping")
        self.connections.clear()

    # --- what the agent tells about itself -----------------------------------

    async def hello(self, conn: Connection, message: Hello) -> None:
        conn.hello = message
        conn.last_heartbeat = time.monotonic()
        devices = _device_map(message.devices)
        await self.registry.record_agent(conn.room_id, seen=utcnow(), version=message.version, devices=devices)
        log.info("room %s: hello from agent %s, devices %s", conn.room_id, message.version, devices)
        await conn.send(Welcome(room=conn.room_id, heartbeat_interval=self.heartbeat_interval))
        for listener in list(self.listeners):
            await listener.room_ready(conn.room_id)

    async def heartbeat(self, conn: Connection, message: Heartbeat) -> None:
        conn.last_heartbeat = time.monotonic()
        record = self.registry.rooms.get(conn.room_id)
        if record is None:
            return
        record.last_seen = utcnow()
        if message.devices is not None and _device_map(message.devices) != record.devices:
            log.info("room %s: devices now %s", conn.room_id, _device_map(message.devices))
            await self.registry.record_agent(conn.room_id, seen=record.last_seen, devices=_device_map(message.devices))

    # --- messages, commands and their answers ---------------------------------

    async def send(self, room_id: str, message: BaseModel) -> bool:
        conn = self.connections.get(room_id)
        return conn is not None and await conn.send(message)

    async def command(self, room_id: str, action: Action, meeting: MeetingRef | None = None) -> bool:
        """Send a command whose answer the listeners hear about; False if the room is not connected."""
        conn = self.connections.get(room_id)
        if conn is None:
            return False
        command_id = self._new_id()
        self._pending[command_id] = PendingCommand(room_id, action, meeting.id if meeting is not None else None)
        if not await conn.send(Command(id=command_id, action=action, meeting=meeting)):
            self._pending.pop(command_id, None)
            return False
        return True

    async def ask(self, room_id: str, action: Action, wait_seconds: float) -> Ack:
        """Send a command and wait for its answer (self-test, config reload)."""
        conn = self.connections.get(room_id)
        if conn is None or not self.is_up(room_id):
            raise RoomOffline(room_id)
        command_id = self._new_id()
        reply: asyncio.Future[Ack] = asyncio.get_running_loop().create_future()
        self._pending[command_id] = PendingCommand(room_id, action, reply=reply)
        try:
            await conn.send(Command(id=command_id, action=action))
            return await asyncio.wait_for(reply, wait_seconds)
        finally:
            self._pending.pop(command_id, None)

    async def answer(self, conn: Connection, ack: Ack) -> Error | None:
        """Match an answer to one of the sender's own commands, never another room's."""
        pending = self._pending.get(ack.command_id)
        if pending is None or pending.room != conn.room_id:
            return Error(
                code="unexpected", message=f"no command {ack.command_id!r} is waiting for this room's acknowledgement"
            )
        del self._pending[ack.command_id]
        if not ack.ok:
            log.warning("room %s: command %s (%s) failed: %s", conn.room_id, ack.command_id, pending.action, ack.detail)
        # The listeners first: whoever waits for the answer then finds it stored.
        for listener in list(self.listeners):
            await listener.room_answered(pending, ack)
        if pending.reply is not None and not pending.reply.done():
            pending.reply.set_result(ack)
        return None

    @staticmethod
    def _new_id() -> str:
        return secrets.token_urlsafe(12)
