"""Live state of the commune: which rooms are connected, which meetings run, who is in.

The hub is the one place that decides a room's duty (the meeting it should be
in) and tells the room; the scheduler, the API and the control channel only
report events to it. Everything runs on the event loop, so no locks are needed
around this state.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Protocol

from coordinator.attendance import AttendanceBook
from coordinator.live import (
    ActiveMeeting,
    Connection,
    PendingCommand,
    RoomOffline,
)
from coordinator.media.peer import OfferError
from coordinator.media.router import MediaCounters, MeetingRouter
from coordinator.models import Meeting, Occurrence, utcnow
from coordinator.registry import Registry
from phonghop.protocol import (
    CLOSE_HEARTBEAT_TIMEOUT,
    CLOSE_REPLACED,
    CLOSE_RESTART,
    CLOSE_ROOM_REMOVED,
    CLOSE_TOKEN_REISSUED,
    Ack,
    Action,
    Answer,
    AnyAgentMessage,
    Command,
    DeviceName,
    Error,
    Floor,
    GiveFloor,
    Hand,
    Heartbeat,
    Hello,
    MediaStatus,
    Offer,
    Publish,
    Welcome,
)

log = logging.getLogger(__name__)


class HubObserver(Protocol):
    """Who keeps history of what the hub sees (the web pages' outage history and self-test results)."""

    async def room_connected(self, room_id: str) -> None: ...

    async def room_disconnected(self, room_id: str, reason: str) -> None: ...

    async def check_answered(self, room_id: str, ack: Ack) -> None: ...


def _device_map(devices: Mapping[DeviceName, bool]) -> dict[str, bool]:
    return {str(name): ok for name, ok in devices.items()}


class Hub:
    def __init__(
        self,
        registry: Registry,
        book: AttendanceBook,
        heartbeat_interval: float,
        missed_heartbeats: int,
    ) -> None:
        self.registry = registry
        self.book = book
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_interval * missed_heartbeats
        self.connections: dict[str, Connection] = {}
        self.meetings: dict[int, ActiveMeeting] = {}
        self.connects_total: dict[str, int] = {}
        self.media_counters = MediaCounters()
        self._background: set[asyncio.Future[bool]] = set()
        self._pending: dict[str, PendingCommand] = {}
        self._ids = itertools.count(1)
        self.observer: HubObserver | None = None

    # --- queries ------------------------------------------------------------

    def is_up(self, room_id: str) -> bool:
        conn = self.connections.get(room_id)
        return (
            conn is not None
            and conn.hello is not None
            and time.monotonic() - conn.last_heartbeat <= self.heartbeat_timeout
        )

    def duty_of(self, room_id: str) -> ActiveMeeting | None:
        """The meeting the room should be in: the earliest started that invites it."""
        candidates = [m for m in self.meetings.values() if room_id in m.expected]
        return min(candidates, key=lambda m: m.started_at) if candidates else None

    def meeting_with(self, room_id: str) -> ActiveMeeting | None:
        return next((m for m in self.meetings.values() if room_id in m.joined), None)

    # --- connections ----------------------------------------------------------

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
            await self._leave_all(conn.room_id, "replaced by a newer connection")
            await old.close(CLOSE_REPLACED, "replaced by a newer connection from the same room")
        log.info("room %s: control channel connected from %s", conn.room_id, conn.peer)
        if old is None and self.observer is not None:
            await self.observer.room_connected(conn.room_id)

    async def detach(self, conn: Connection, reason: str) -> None:
        if self.connections.get(conn.room_id) is not conn:
            return  # already replaced; the newer connection owns the room's state
        del self.connections[conn.room_id]
        log.info("room %s: control channel closed (%s)", conn.room_id, reason)
        await self._leave_all(conn.room_id, reason)
        await self.registry.record_agent(conn.room_id, seen=utcnow())
        if self.observer is not None:
            await self.observer.room_disconnected(conn.room_id, reason)

    async def on_message(self, conn: Connection, message: AnyAgentMessage) -> Error | None:
        """Handle one valid message; returns the error to tell the agent, or None."""
        if isinstance(message, Hello):
            conn.hello = message
            conn.last_heartbeat = time.monotonic()
            await self.registry.record_agent(
                conn.room_id, seen=utcnow(), version=message.version, devices=_device_map(message.devices)
            )
            log.info(
                "room %s: hello from agent %s, devices %s",
                conn.room_id,
                message.version,
                _device_map(message.devices),
            )
            await conn.send(Welcome(room=conn.room_id, heartbeat_interval=self.heartbeat_interval))
            conn.told_meeting = None
            await self._update_duty(conn.room_id)
            return None
        if conn.hello is None:
            return Error(
                code="unexpected", message="send 'hello' first: the coordinator needs the agent's version and devices"
            )
        if isinstance(message, Heartbeat):
            conn.last_heartbeat = time.monotonic()
            record = self.registry.rooms.get(conn.room_id)
            if record is not None:
                record.last_seen = utcnow()
                if message.devices is not None and _device_map(message.devices) != record.devices:
                    log.info("room %s: devices now %s", conn.room_id, _device_map(message.devices))
                    await self.registry.record_agent(
                        conn.room_id, seen=record.last_seen, devices=_device_map(message.devices)
                    )
            return None
        if isinstance(message, Offer):
            return await self._on_offer(conn, message)
        if isinstance(message, MediaStatus):
            conn.media_status = message
            return None
        if isinstance(message, Hand):
            return self._on_hand(conn.room_id, message.raised)
        if isinstance(message, GiveFloor):
            return await self._on_give_floor(conn.room_id, message.room)
        return await self._on_ack(conn, message)

    async def _on_offer(self, conn: Connection, offer: Offer) -> Error | None:
        meeting = self.meeting_with(conn.room_id)
        if meeting is None or meeting.occurrence_id != offer.occurrence:
            return Error(
                code="bad_offer",
                message=f"room {conn.room_id} is not in meeting occurrence {offer.occurrence}; "
                "offer after a join command",
            )
        try:
            sdp = await meeting.router.add(conn.room_id, offer.sdp)
        except OfferError as exc:
            return Error(code="bad_offer", message=str(exc))
        await conn.send(Answer(occurrence=offer.occurrence, sdp=sdp))
        log.info("room %s: media offer for meeting %s answered", conn.room_id, meeting.meeting_id)
        return None

    def _tell_publish(self, room_id: str, video: bool, audio: bool) -> None:
        conn = self.connections.get(room_id)
        if conn is not None:
            task = asyncio.ensure_future(conn.send(Publish(video=video, audio=audio)))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _on_give_floor(self, room_id: str, target: str | None) -> Error | None:
        meeting = self.meeting_with(room_id)
        if meeting is None or meeting.chair != room_id:
            return Error(code="not_chair", message="only the chair room of a running meeting can give the floor")
        if target is not None and target not in meeting.expected:
            return Error(code="not_invited", message=f"room {target} is not invited to this meeting")
        await self.set_floor(meeting.meeting_id, target)
        return None

    def _on_hand(self, room_id: str, raised: bool) -> Error | None:
        meeting = self.meeting_with(room_id)
        if meeting is None:
            return Error(code="not_in_meeting", message="a hand can be raised only during a meeting")
        if raised and room_id not in meeting.hands and room_id != meeting.floor:
            meeting.hands.append(room_id)
            log.info("room %s raised its hand in meeting %s", room_id, meeting.meeting_id)
        elif not raised and room_id in meeting.hands:
            meeting.hands.remove(room_id)
        return None

    async def _on_ack(self, conn: Connection, ack: Ack) -> Error | None:
        pending = self._pending.pop(ack.command_id, None)
        if pending is None or pending.room != conn.room_id:
            return Error(
                code="unexpected", message=f"no command {ack.command_id!r} is waiting for this room's acknowledgement"
            )
        if pending.reply is not None and not pending.reply.done():
            pending.reply.set_result(ack)
        if pending.action != "join":
            return None
        meeting = self.meetings.get(pending.meeting_id) if pending.meeting_id is not None else None
        if not ack.ok:
            log.warning("room %s: command %s failed: %s", conn.room_id, ack.command_id, ack.detail)
            return None
        if meeting is not None and conn.told_meeting == meeting.meeting_id and conn.room_id not in meeting.joined:
            meeting.joined.add(conn.room_id)
            await self.book.joined(meeting.occurrence_id, conn.room_id, utcnow())
            log.info("room %s: joined meeting %s (%s)", conn.room_id, meeting.meeting_id, meeting.title)
        return None

    async def ask(self, room_id: str, action: Action, wait_seconds: float) -> Ack:
        """Send a command that is not a duty (self-test, config reload) and wait for the answer."""
        conn = self.connections.get(room_id)
        if conn is None or not self.is_up(room_id):
            raise RoomOffline(room_id)
        command_id = f"c{next(self._ids)}"
        reply: asyncio.Future[Ack] = asyncio.get_running_loop().create_future()
        self._pending[command_id] = PendingCommand(room_id, action, reply=reply)
        try:
            await conn.send(Command(id=command_id, action=action))
            ack = await asyncio.wait_for(reply, wait_seconds)
        finally:
            self._pending.pop(command_id, None)
        if action == "run_check" and self.observer is not None:
            await self.observer.check_answered(room_id, ack)
        return ack

    async def check_liveness(self) -> None:
        """Close connections whose heartbeats stopped; that makes the room down."""
        now = time.monotonic()
        for conn in list(self.connections.values()):
            silent = now - conn.last_heartbeat
            if silent > self.heartbeat_timeout:
                log.warning(
                    "room %s: no heartbeat for %.1f s, closing its control channel",
                    conn.room_id,
                    silent,
                )
                await self.detach(conn, f"no heartbeat for {silent:.0f} s")
                await conn.close(CLOSE_HEARTBEAT_TIMEOUT, "heartbeat timeout")

    async def room_removed(self, room_id: str) -> None:
        for meeting in self.meetings.values():
            meeting.expected.discard(room_id)
        conn = self.connections.get(room_id)
        if conn is not None:
            await self.detach(conn, "room removed from the registry")
            await conn.close(CLOSE_ROOM_REMOVED, "room removed; re-enroll it")

    async def token_reissued(self, room_id: str) -> None:
        conn = self.connections.get(room_id)
        if conn is not None:
            await self.detach(conn, "token re-issued")
            await conn.close(CLOSE_TOKEN_REISSUED, "token re-issued: reconnect with the new token")

    # --- meetings -----------------------------------------------------------

    async def start(self, meeting: Meeting, occurrence: Occurrence, expected: set[str]) -> ActiveMeeting:
        active = ActiveMeeting(
            occurrence_id=occurrence.id,
            meeting_id=meeting.id,
            title=meeting.title,
            started_at=occurrence.started_at,
            ends_at=occurrence.ends_at,
            expected=expected,
            router=MeetingRouter(
                occurrence.id, meeting.chair_room, meeting.mode, self.media_counters, self._tell_publish
            ),
        )
        active.router.set_floor(occurrence.floor_room)
        self.meetings[meeting.id] = active
        log.info(
            "meeting %s (%s) running until %s, %d rooms invited",
            meeting.id,
            meeting.title,
            active.ends_at.isoformat(),
            len(expected),
        )
        await self._update_duties(expected)
        return active

    async def stop(self, meeting_id: int, reason: str) -> None:
        active = self.meetings.pop(meeting_id, None)
        if active is None:
            return
        await self.book.end_occurrence(active.occurrence_id, utcnow())
        await active.router.close()
        log.info("meeting %s (%s) ended: %s", meeting_id, active.title, reason)
        active.joined.clear()
        await self._update_duties(active.expected)

    async def set_expected(self, meeting_id: int, expected: set[str]) -> None:
        active = self.meetings[meeting_id]
        changed = active.expected ^ expected
        if changed:
            active.expected = expected
            await self._update_duties(changed)

    async def set_floor(self, meeting_id: int, room_id: str | None) -> None:
        active = self.meetings[meeting_id]
        if room_id in active.hands:
            active.hands.remove(room_id)
        active.router.set_floor(room_id)
        await self.book.set_floor(active.occurrence_id, room_id)
        log.info(
            "meeting %s: floor %s",
            meeting_id,
            f"given to {room_id}" if room_id else "back to the chair",
        )
        message = Floor(meeting=meeting_id, room=room_id)
        for room in active.joined:
            conn = self.connections.get(room)
            if conn is not None:
                await conn.send(message)

    def set_muted(self, meeting_id: int, room_id: str, muted: bool) -> None:
        """A muted room's sound is not forwarded to anyone (its picture still is)."""
        self.meetings[meeting_id].router.set_muted(room_id, muted)
        log.info("meeting %s: room %s %s", meeting_id, room_id, "muted" if muted else "unmuted")

    async def shutdown(self) -> None:
        for meeting in self.meetings.values():
            for room in list(meeting.joined):
                await self.book.left(meeting.occurrence_id, room, utcnow(), "coordinator stopped")
            meeting.joined.clear()
            await meeting.router.close()
        for conn in list(self.connections.values()):
            await conn.close(CLOSE_RESTART, "coordinator stopping")
        self.connections.clear()

    # --- duty ---------------------------------------------------------------

    async def _update_duties(self, rooms: Iterable[str]) -> None:
        for room in sorted(rooms):
            await self._update_duty(room)

    async def _update_duty(self, room_id: str) -> None:
        """Send join or leave so that the room ends up in the meeting it should be in."""
        conn = self.connections.get(room_id)
        if conn is None or conn.hello is None:
            return
        duty = self.duty_of(room_id)
        current = self.meeting_with(room_id)
        if current is not None and current is not duty:
            await self._leave(current, room_id, "no longer invited")
        wanted = duty.meeting_id if duty is not None else None
        if conn.told_meeting == wanted:
            return
        command_id = f"c{next(self._ids)}"
        if duty is None:
            conn.told_meeting = None
            await conn.send(Command(id=command_id, action="leave"))
            return
        conn.told_meeting = duty.meeting_id
        self._pending[command_id] = PendingCommand(room_id, "join", duty.meeting_id)
        await conn.send(Command(id=command_id, action="join", meeting=duty.ref()))
        if duty.floor is not None:
            await conn.send(Floor(meeting=duty.meeting_id, room=duty.floor))

    async def _leave(self, meeting: ActiveMeeting, room_id: str, reason: str) -> None:
        if room_id in meeting.hands:
            meeting.hands.remove(room_id)
        await meeting.router.remove(room_id, reason)
        if room_id in meeting.joined:
            meeting.joined.discard(room_id)
            await self.book.left(meeting.occurrence_id, room_id, utcnow(), reason)
            log.info("room %s: left meeting %s (%s)", room_id, meeting.meeting_id, reason)

    async def _leave_all(self, room_id: str, reason: str) -> None:
        for meeting in self.meetings.values():
            await self._leave(meeting, room_id, reason)
        for cid in [cid for cid, pending in self._pending.items() if pending.room == room_id]:
            reply = self._pending.pop(cid).reply
            if reply is not None and not reply.done():
                reply.set_result(Ack(command_id=cid, ok=False, detail=f"the room disconnected ({reason})"))
