"""Running meetings: who should be in each, who is, the floor, raised hands and mute.

This is the one place that decides a room's duty (the meeting it should be
in) and tells the room. It reaches rooms only through :class:`RoomChannels`
(send a message, send a command), never a socket, and hears about them as a
:class:`coordinator.connections.RoomListener`. Everything runs on the event
loop; loops over shared state iterate over copies because every ``await``
lets another event change it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

from coordinator.attendance import AttendanceBook
from coordinator.connections import Connection, PendingCommand
from coordinator.media.peer import VIEWER_LAYOUT, OfferError, check_offer, sending_layout
from coordinator.media.router import MediaCounters, MeetingRouter
from coordinator.models import Meeting, Occurrence, utcnow
from coordinator.participants import CLOSE_MEETING_ENDED, RECORDER, kind_of
from coordinator.ratelimit import TokenBuckets
from coordinator.recording.recorder import Recorder
from phonghop.protocol import (
    CLOSE_REPLACED,
    Ack,
    Action,
    Answer,
    Command,
    Error,
    Floor,
    MeetingRef,
    Offer,
    ProgramPicture,
    ProgramQuality,
    Publish,
    Welcome,
)

log = logging.getLogger(__name__)

# Offers that pass the check make a peer connection each: a room gets a few at once (a reconnect after a
# failed link), then about one every few seconds.
OFFER_BURST = 3
OFFER_EVERY_SECONDS = 3.0
# Web pages watching one meeting at once (the console's live view): each costs the router a room's copies.
MAX_VIEWERS = 4


class WatchRefused(Exception):
    """A page may not watch now; ``reason`` is "full" or "too_often", ``wait`` the seconds to wait."""

    def __init__(self, reason: str, wait: float = 0.0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait = wait


class RoomChannels(Protocol):
    """What the meetings need of the rooms' control channels."""

    def greeted(self, room_id: str) -> bool: ...

    def receive_kbps(self, room_id: str) -> int | None: ...

    async def send(self, room_id: str, message: BaseModel) -> bool: ...

    async def command(self, room_id: str, action: Action, meeting: MeetingRef | None = None) -> bool: ...


@dataclass
class ActiveMeeting:
    """A running occurrence. Chair, mode and floor live in its router, which routes by them."""

    occurrence_id: int
    meeting_id: int
    title: str
    scheduled_start: datetime
    started_at: datetime
    ends_at: datetime
    expected: set[str]
    router: MeetingRouter
    joined: set[str] = field(default_factory=set)
    hands: list[str] = field(default_factory=list)  # raised hands, first come first ("commune/room" from a commune)
    groups: list[str] = field(default_factory=list)  # invited groups, for communes running it inside
    guests: dict[str, str] = field(default_factory=dict)  # guest participant id -> name, while its page is in
    floor_target: str | None = None  # as given: a room, or "commune/room" (the router's floor is the commune)
    recorder: Recorder | None = None  # while the occurrence is recorded

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

    async def close_media(self) -> None:
        """The router's peers and the recording's last piece."""
        await self.router.close()
        if self.recorder is not None:
            await self.recorder.close()

    def takes_part(self, participant: str) -> bool:
        """A room invited, or a guest whose page is in: who may hold the floor."""
        return participant in self.expected or participant in self.guests

    def ref(self) -> MeetingRef:
        return MeetingRef(
            id=self.meeting_id,
            occurrence=self.occurrence_id,
            title=self.title,
            chair=self.chair,
            mode=self.mode,
            ends_at=self.ends_at,
            invited_groups=self.groups,
            recording=self.recorder is not None,
        )


def holder_of(target: str) -> str:
    """The participant that holds the floor for ``target``: a room, or the commune of "commune/room"."""
    return target.partition("/")[0]


HandListener = Callable[[ActiveMeeting, str, bool], None]


class LiveMeetings:
    def __init__(
        self,
        channels: RoomChannels,
        book: AttendanceBook,
        recordings: Path | None = None,
        piece_seconds: float = 3600,
        min_free_bytes: int = 0,
    ) -> None:
        self._channels = channels
        self.book = book
        self.recordings = recordings  # where recorded meetings are written; None: nothing is recorded
        self.piece_seconds = piece_seconds
        self.min_free_bytes = min_free_bytes
        self.meetings: dict[int, ActiveMeeting] = {}
        self.media_counters = MediaCounters()
        self._told: dict[str, int | None] = {}  # room -> meeting id of the last join sent (None: leave)
        self._background: set[asyncio.Future[object]] = set()
        self._offers = TokenBuckets(rate=1 / OFFER_EVERY_SECONDS, burst=OFFER_BURST)
        self.hand_listeners: list[HandListener] = []  # a commune's uplink passes its rooms' hands up
        self._guest_channels: dict[str, Connection] = {}  # guest participant id -> its page's control channel

    # --- queries ------------------------------------------------------------

    def duty_of(self, room_id: str) -> ActiveMeeting | None:
        """The meeting the room should be in: the earliest started that invites it."""
        candidates = [m for m in self.meetings.values() if room_id in m.expected]
        return min(candidates, key=lambda m: m.started_at) if candidates else None

    def meeting_with(self, room_id: str) -> ActiveMeeting | None:
        """The meeting a room has joined, or a guest is in."""
        return next((m for m in self.meetings.values() if room_id in m.joined or room_id in m.guests), None)

    # --- what rooms do (RoomListener) -------------------------------------------

    async def room_connected(self, room_id: str) -> None:
        self._told.pop(room_id, None)

    async def room_ready(self, room_id: str) -> None:
        self._told.pop(room_id, None)
        await self._update_duty(room_id)

    async def room_disconnected(self, room_id: str, reason: str) -> None:
        self._told.pop(room_id, None)
        for meeting in list(self.meetings.values()):
            await self._leave(meeting, room_id, reason)

    async def room_answered(self, command: PendingCommand, ack: Ack) -> None:
        if command.action == "leave" and ack.ok:
            log.info("room %s: confirmed it left its meeting", command.room)
        if command.action != "join" or not ack.ok or command.meeting_id is None:
            return
        meeting = self.meetings.get(command.meeting_id)
        room_id = command.room
        if meeting is None or self._told.get(room_id) != meeting.meeting_id or room_id in meeting.joined:
            return
        meeting.joined.add(room_id)
        await self.book.joined(meeting.occurrence_id, room_id, utcnow())
        log.info("room %s: joined meeting %s (%s)", room_id, meeting.meeting_id, meeting.title)

    async def offer(self, room_id: str, offer: Offer) -> Error | None:
        meeting = self.meeting_with(room_id)
        if meeting is None or meeting.occurrence_id != offer.occurrence:
            return Error(
                code="bad_offer",
                message=f"room {room_id} is not in meeting occurrence {offer.occurrence}; offer after a join command",
            )
        try:
            check_offer(offer.sdp, sending_layout(offer.sdp))  # before the room's running peer is replaced
        except OfferError as exc:
            return Error(code="bad_offer", message=str(exc))
        wait = self._offers.take(room_id)
        if wait > 0:
            return Error(
                code="bad_offer",
                message=f"room {room_id} sends offers too often (limit: {OFFER_BURST} at once, then one every "
                f"{OFFER_EVERY_SECONDS:.0f} s); offer again in {wait:.1f} s",
            )
        try:
            sdp = await meeting.router.add(room_id, offer.sdp)
        except OfferError as exc:
            return Error(code="bad_offer", message=str(exc))
        meeting.router.set_budget(room_id, self._channels.receive_kbps(room_id))
        await self._send(room_id, Answer(occurrence=offer.occurrence, sdp=sdp))
        log.info("room %s: media offer for meeting %s answered", room_id, meeting.meeting_id)
        return None

    async def watch(self, meeting: ActiveMeeting, viewer: str, offer_sdp: str) -> str:
        """The answer to a web page's receive-only offer: it gets what a room in the audience gets.
        Raises OfferError for an offer the router cannot serve, WatchRefused when it may not watch now."""
        router = meeting.router
        if viewer not in router.viewers and len(router.viewers) >= MAX_VIEWERS:
            raise WatchRefused("full")
        check_offer(offer_sdp, VIEWER_LAYOUT)  # before the page's running peer is replaced
        wait = self._offers.take(viewer)
        if wait > 0:
            raise WatchRefused("too_often", wait)
        answer = await router.add_viewer(viewer, offer_sdp)
        log.info("%s watches meeting %s", viewer, meeting.meeting_id)
        return answer

    def hand(self, room_id: str, raised: bool, for_room: str | None = None) -> Error | None:
        """A room's hand; a commune raises one for its room ``for_room``, queued as "commune/room"."""
        meeting = self.meeting_with(room_id)
        if meeting is None:
            return Error(code="not_in_meeting", message="a hand can be raised only during a meeting")
        entry = f"{room_id}/{for_room}" if for_room else room_id
        if raised and entry not in meeting.hands and entry != meeting.floor_target:
            meeting.hands.append(entry)
            log.info("room %s raised its hand in meeting %s", entry, meeting.meeting_id)
            self._later(self.book.hand(meeting.occurrence_id, entry, True))
        elif not raised and entry in meeting.hands:
            meeting.hands.remove(entry)
            self._later(self.book.hand(meeting.occurrence_id, entry, False))
        for listener in list(self.hand_listeners):
            listener(meeting, entry, raised)
        return None

    async def give_floor(self, room_id: str, target: str | None) -> Error | None:
        """The chair room gives the floor (or takes it back)."""
        meeting = self.meeting_with(room_id)
        if meeting is None or meeting.chair != room_id:
            return Error(code="not_chair", message="only the chair room of a running meeting can give the floor")
        if target is not None and not meeting.takes_part(holder_of(target)):
            return Error(code="not_invited", message=f"room {target} is not invited to this meeting")
        await self.set_floor(meeting.meeting_id, target)
        return None

    # --- what the schedule and the operator do ----------------------------------

    async def start(self, meeting: Meeting, occurrence: Occurrence, expected: set[str]) -> ActiveMeeting:
        active = ActiveMeeting(
            occurrence_id=occurrence.id,
            meeting_id=meeting.id,
            title=meeting.title,
            scheduled_start=occurrence.scheduled_start,
            started_at=occurrence.started_at,
            ends_at=occurrence.ends_at,
            expected=expected,
            router=MeetingRouter(
                occurrence.id,
                meeting.chair_room,
                meeting.mode,
                self.media_counters,
                self._tell_publish,
                self._tell_picture,
                self._tell_quality,
            ),
            groups=list(meeting.invited_groups),
        )
        active.floor_target = occurrence.floor_room
        active.router.set_floor(holder_of(occurrence.floor_room) if occurrence.floor_room else None)
        self.meetings[meeting.id] = active
        if meeting.record and self.recordings is not None:
            router = active.router
            active.recorder = Recorder(
                self.recordings / f"cuoc-hop-{meeting.id}",
                occurrence.id,
                self.piece_seconds,
                partial(router.keyframe_for, RECORDER),
                self.min_free_bytes,
            )
            router.add_recorder(RECORDER, active.recorder.sends)
            active.recorder.start()
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
        for guest in list(active.guests):
            channel = self._guest_channels.pop(guest, None)
            if channel is not None:
                await channel.close(CLOSE_MEETING_ENDED, "meeting ended")
        active.guests.clear()
        await active.close_media()
        log.info("meeting %s (%s) ended: %s", meeting_id, active.title, reason)
        active.joined.clear()
        await self._update_duties(active.expected)

    async def revise(self, meeting_id: int, title: str, ends_at: datetime) -> None:
        """A running meeting's new title or end; the rooms in it are told again (a commune carries
        the new end to the meeting it runs for its rooms)."""
        active = self.meetings[meeting_id]
        if (active.title, active.ends_at) == (title, ends_at):
            return
        if active.ends_at != ends_at:
            await self.book.set_end(active.occurrence_id, ends_at)
            log.info("meeting %s (%s) now runs until %s", meeting_id, title, ends_at.isoformat())
        active.title, active.ends_at = title, ends_at
        for room in sorted(active.joined):
            await self._channels.command(room, "join", active.ref())

    async def set_expected(self, meeting_id: int, expected: set[str]) -> None:
        active = self.meetings[meeting_id]
        changed = active.expected ^ expected
        if changed:
            active.expected = expected
            await self._update_duties(changed)

    def room_removed(self, room_id: str) -> None:
        for meeting in self.meetings.values():
            meeting.expected.discard(room_id)

    async def set_floor(self, meeting_id: int, room_id: str | None) -> None:
        """Give the floor to a room or "commune/room" (the commune's peer holds it), or take it back."""
        active = self.meetings[meeting_id]
        if room_id in active.hands:
            active.hands.remove(room_id)
        active.floor_target = room_id
        active.router.set_floor(holder_of(room_id) if room_id else None)
        await self.book.set_floor(active.occurrence_id, room_id)
        log.info("meeting %s: floor %s", meeting_id, f"given to {room_id}" if room_id else "back to the chair")
        message = Floor(meeting=meeting_id, room=room_id)
        for participant in sorted(active.joined | set(active.guests)):
            await self._send(participant, message)

    def set_muted(self, meeting_id: int, room_id: str, muted: bool) -> None:
        """A muted room's sound is not forwarded to anyone (its picture still is)."""
        self.meetings[meeting_id].router.set_muted(room_id, muted)
        log.info("meeting %s: room %s %s", meeting_id, room_id, "muted" if muted else "unmuted")

    async def shutdown(self) -> None:
        for meeting in list(self.meetings.values()):
            for room in sorted(meeting.joined | set(meeting.guests)):
                await self.book.left(meeting.occurrence_id, room, utcnow(), "coordinator stopped")
            meeting.joined.clear()
            meeting.guests.clear()
            await meeting.close_media()

    # --- guests ---------------------------------------------------------------

    async def guest_arrived(self, meeting: ActiveMeeting, channel: Connection, name: str) -> None:
        """A guest's page opened its control channel: it is in, and told to join like a room."""
        guest = channel.room_id
        older = self._guest_channels.get(guest)
        if older is not None:  # the same invitation opened again (another tab, a reload): the newer one stays
            await self.guest_left(guest, "replaced by a newer connection")
            await older.close(CLOSE_REPLACED, "the invitation was opened again elsewhere")
        self._guest_channels[guest] = channel
        meeting.guests[guest] = name
        await self.book.joined(meeting.occurrence_id, guest, utcnow())
        log.info("guest %s (%s) joined meeting %s", guest, name, meeting.meeting_id)
        await channel.send(Welcome(room=guest, heartbeat_interval=0))
        await channel.send(Command(id=f"{guest}-join", action="join", meeting=meeting.ref()))
        if meeting.floor_target is not None:
            await channel.send(Floor(meeting=meeting.meeting_id, room=meeting.floor_target))

    async def guest_left(self, guest: str, reason: str, channel: Connection | None = None) -> None:
        """The guest's page went away (``channel``: only if that is still its current one)."""
        if channel is not None and self._guest_channels.get(guest) is not channel:
            return
        self._guest_channels.pop(guest, None)
        meeting = self.meeting_with(guest)
        if meeting is None:
            return
        meeting.guests.pop(guest, None)
        await self._leave(meeting, guest, reason)
        await self.book.left(meeting.occurrence_id, guest, utcnow(), reason)
        log.info("guest %s left meeting %s (%s)", guest, meeting.meeting_id, reason)

    async def send_guest_away(self, guest: str, code: int, reason: str) -> None:
        """The operator removed the guest, or the meeting ended: its page is told why and leaves."""
        channel = self._guest_channels.get(guest)
        await self.guest_left(guest, reason)
        if channel is not None:
            await channel.close(code, reason)

    # --- duty ---------------------------------------------------------------

    def _tell_publish(self, room_id: str, video: bool, audio: bool) -> None:
        self._send_soon(room_id, Publish(video=video, audio=audio))

    def _tell_picture(self, room_id: str, sent: bool, reason: str) -> None:
        self._send_soon(room_id, ProgramPicture(sent=sent, reason=reason))

    def _tell_quality(self, room_id: str, low: bool, reason: str) -> None:
        if kind_of(room_id) == "room":
            self._send_soon(room_id, ProgramQuality(low=low, reason=reason))

    async def _send(self, participant: str, message: BaseModel) -> bool:
        """To a room's agent, or a guest's page."""
        guest = self._guest_channels.get(participant)
        if guest is not None:
            return await guest.send(message)
        return await self._channels.send(participant, message)

    def _send_soon(self, room_id: str, message: BaseModel) -> None:
        """Send from the router's synchronous routing code, without waiting for the room's socket."""
        self._later(self._send(room_id, message))

    def _later(self, work: Coroutine[Any, Any, object]) -> None:
        """Run ``work`` from synchronous code, kept until it is done."""
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _update_duties(self, rooms: Iterable[str]) -> None:
        for room in sorted(rooms):
            await self._update_duty(room)

    async def _update_duty(self, room_id: str) -> None:
        """Send join or leave so that the room ends up in the meeting it should be in."""
        if not self._channels.greeted(room_id):
            return
        duty = self.duty_of(room_id)
        current = self.meeting_with(room_id)
        if current is not None and current is not duty:
            await self._leave(current, room_id, "no longer invited")
        wanted = duty.meeting_id if duty is not None else None
        if self._told.get(room_id) == wanted:
            return  # a room that just said hello and has no duty needs no leave either
        self._told[room_id] = wanted
        if duty is None:
            await self._channels.command(room_id, "leave")
            return
        await self._channels.command(room_id, "join", duty.ref())
        if duty.floor_target is not None:
            await self._channels.send(room_id, Floor(meeting=duty.meeting_id, room=duty.floor_target))

    async def _leave(self, meeting: ActiveMeeting, room_id: str, reason: str) -> None:
        if room_id in meeting.hands:
            meeting.hands.remove(room_id)
        await meeting.router.remove(room_id, reason)
        if room_id in meeting.joined:
            meeting.joined.discard(room_id)
            await self.book.left(meeting.occurrence_id, room_id, utcnow(), reason)
            log.info("room %s: left meeting %s (%s)", room_id, meeting.meeting_id, reason)
