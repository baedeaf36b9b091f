"""The province meeting inside the commune: a local meeting whose chair is the province.

When the province tells the commune to join, this creates (or, after a
restart, adopts) a one-off local meeting for the invited rooms, chaired by
the relay source, and attaches the relay to its router: every room receives
the province's program as it would receive a chair. Floor and hands map
between the levels here: a local hand goes up as "commune/room", and the
province's floor for "commune/room" gives that room the local floor and
sends its picture and sound up. A cut link changes nothing here but the
relay's ``live`` flag; only the province's leave (or the end time) ends it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from aiortc.rtp import RtpPacket
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import async_sessionmaker

from coordinator.database import AsyncSession
from coordinator.live_meetings import ActiveMeeting, LiveMeetings
from coordinator.media.relay import Relay
from coordinator.media.rewriter import SlotStream
from coordinator.models import Meeting, utcnow
from coordinator.registry import Registry
from coordinator.schedule import Schedule
from coordinator.scheduler import Scheduler
from phonghop.identity import ROOM_KINDS
from phonghop.protocol import Hand, MeetingRef

log = logging.getLogger(__name__)

LOCAL_GROUPS = ROOM_KINDS
DEFAULT_SECONDS = 4 * 3600  # a province meeting that names no end
SendUp = Callable[[BaseModel], Awaitable[bool]]
SendPacket = Callable[[str, int, int, int, bytes], int]


class RelayedMeeting:
    def __init__(
        self,
        commune: str,
        source: str,
        fallback: str | None,
        sessions: async_sessionmaker[AsyncSession],
        schedule: Schedule,
        scheduler: Scheduler,
        live: LiveMeetings,
        registry: Registry,
    ) -> None:
        self.commune = commune
        self._fallback = fallback
        self._sessions = sessions
        self._schedule = schedule
        self._scheduler = scheduler
        self._live = live
        self._registry = registry
        self.ref: MeetingRef | None = None  # the province meeting, as the province described it
        self.local_id: int | None = None
        self.send_up: SendUp | None = None  # the uplink's control channel
        self.send_packet: SendPacket | None = None  # the uplink's media peer (kind, seq, ts, marker, payload)
        self.request_keyframe: Callable[[], None] | None = None  # from the province's program
        self.relay = Relay(
            source,
            self._keyframe_from_province,
            up={
                "video": SlotStream(source, "up_video", "video", 90000, self._up_video),
                "audio": SlotStream(source, "up_audio", "audio", 48000, self._up_audio),
            },
        )
        self._tasks: set[asyncio.Future[bool]] = set()
        live.hand_listeners.append(self._local_hand)

    # --- the local meeting ---------------------------------------------------------

    @property
    def active(self) -> ActiveMeeting | None:
        return self._live.meetings.get(self.local_id) if self.local_id is not None else None

    @property
    def fallback(self) -> str | None:
        """The room shown while the province's media does not arrive: the configured one, else the hall."""
        if self._fallback:
            return self._fallback
        halls = sorted(r.id for r in self._registry.rooms.values() if r.group == "hall")
        return halls[0] if halls else None

    async def join(self, ref: MeetingRef) -> None:
        """Run the province meeting ``ref`` here (again: the same occurrence is kept as it is)."""
        if self.ref is not None and self.ref.occurrence == ref.occurrence and self.local_id is not None:
            # The link came back (the local meeting never stopped), or the province changed its title or end.
            if (ref.title, ref.ends_at) != (self.ref.title, self.ref.ends_at):
                await self._revise(self.local_id, ref)
            self.ref = ref
            self.attach()
            return
        if self.ref is not None and self.ref.occurrence != ref.occurrence:
            await self.leave("the province moved on to another meeting")
        self.ref = ref
        adopted = self._adopt()
        self.local_id = adopted.meeting_id if adopted is not None else await self._create(ref)
        self.attach()

    def attach(self) -> None:
        """Once the scheduler runs the local meeting, its chair's media comes from the relay."""
        active = self.active
        if active is None or active.router.relay is self.relay:
            return
        active.router.attach_relay(self.relay, self.fallback)
        log.info(
            "province meeting %s runs here as meeting %s for %d rooms; %s stands in while the link is down",
            self.ref.id if self.ref else "?",
            active.meeting_id,
            len(active.expected),
            self.fallback or "nobody",
        )

    def _adopt(self) -> ActiveMeeting | None:
        """A relayed meeting already running here (this coordinator restarted, or the link came back)."""
        mine = [m for m in self._live.meetings.values() if m.chair == self.relay.name]
        return mine[0] if mine else None

    async def _create(self, ref: MeetingRef) -> int:
        """A one-off local meeting from now to the province meeting's end; the scheduler starts it."""
        now = utcnow()
        groups = [g for g in ref.invited_groups if g in LOCAL_GROUPS] or list(LOCAL_GROUPS)
        meeting = Meeting(
            title=ref.title,
            chair_room=self.relay.name,
            invited_rooms=[],
            invited_groups=groups,
            start=now,
            duration_seconds=_seconds_until(ref.ends_at, now),
            rrule=None,
            mode="presentation",
        )
        async with self._sessions() as session, session.begin():
            session.add(meeting)
        log.info("meeting %s created for province meeting %s: %r, groups %s", meeting.id, ref.id, ref.title, groups)
        self._scheduler.poke()
        return meeting.id

    async def _revise(self, local_id: int, ref: MeetingRef) -> None:
        """The local meeting takes the province meeting's new title and end; the scheduler applies them."""
        async with self._sessions() as session, session.begin():
            meeting = await session.get(Meeting, local_id)
            if meeting is None:
                return
            meeting.title = ref.title
            meeting.duration_seconds = _seconds_until(ref.ends_at, meeting.start)
        log.info("meeting %s follows province meeting %s: %r until %s", local_id, ref.id, ref.title, ref.ends_at)
        self._scheduler.poke()

    async def leave(self, reason: str) -> None:
        """The province meeting is over for this commune: end the local one (it is never started again)."""
        local, self.local_id, self.ref = self.local_id, None, None
        self.relay.live = False
        if local is None:
            return
        if local in self._live.meetings:
            await self._live.stop(local, f"province: {reason}")
        await self._schedule.delete(local)

    # --- what the province says -------------------------------------------------------

    async def floor(self, target: str | None) -> None:
        """The province's floor: "commune/room" (or this commune) here gives that room the local floor."""
        active = self.active
        if active is None:
            return
        holder, _, room = (target or "").partition("/")
        ours = holder == self.commune
        local = room if ours and room in active.expected else None
        # What goes up switches in the same reroute as the local program, so the keyframe the room starts
        # with goes up too (the province shows its floor everywhere and will ask for this picture); asked
        # for a moment later, the next keyframe would be a second away.
        if local is not None:
            self.relay.wanted["video"] = True
        self.relay.up_source = local or self.fallback
        if active.floor_target != local:
            await self._live.set_floor(active.meeting_id, local)
        active.router.reroute()
        log.info("province floor: %s; sending up %s when asked", target or "the chair", self.relay.up_source)

    def publish(self, video: bool, audio: bool) -> None:
        """What the province receives from this commune (its routing says who watches us)."""
        self.relay.wanted = {"video": video, "audio": audio}
        if self.relay.up_source is None:
            self.relay.up_source = self.fallback
        if self.active is not None:
            self.active.router.reroute()

    def set_live(self, live: bool) -> None:
        """Whether the province's media arrives; while not, the fallback room stands in for the chair."""
        if live == self.relay.live:
            return
        self.relay.live = live
        if live:
            log.info("province media arriving: the rooms show the province again")
        else:
            log.warning("province media stopped: the rooms show %s instead", self.fallback or "nothing")
        if self.active is not None:
            self.active.router.reroute()

    def set_picture(self, sent: bool, reason: str) -> None:
        """The province holds its picture back while it does not fit this commune's budget (its sound still
        comes): the rooms see the fallback room meanwhile."""
        if sent == self.relay.picture:
            return
        self.relay.picture = sent
        if sent:
            log.info("province picture sent again (%s): the rooms show the province again", reason)
        else:
            log.warning("province picture held back (%s): the rooms see %s, hear the province", reason, self.fallback)
        if self.active is not None:
            self.active.router.reroute()

    def new_peer(self) -> None:
        """A new uplink peer: what goes up starts again at a keyframe."""
        self.relay.restart_up()
        if self.active is not None:
            self.active.router.reroute()

    def inject(self, slot: str, kind: str, packet: RtpPacket) -> None:
        """A packet from the province: the program and chair's sound as the chair, the floor's sound apart."""
        active = self.active
        if active is None:
            return
        name = self.relay.floor_name if slot == "floor_audio" else self.relay.name
        active.router.on_packet(name, kind, packet)

    def keyframe_wanted(self) -> None:
        """The province asked for a keyframe of what this commune sends up."""
        if self.active is not None:
            self.active.router.relay_wants_keyframe()

    # --- plumbing -------------------------------------------------------------------

    def _keyframe_from_province(self) -> None:
        if self.request_keyframe is not None:
            self.request_keyframe()

    def _up_video(self, seq: int, ts: int, marker: int, payload: bytes) -> int:
        return self.send_packet("video", seq, ts, marker, payload) if self.send_packet else 0

    def _up_audio(self, seq: int, ts: int, marker: int, payload: bytes) -> int:
        return self.send_packet("audio", seq, ts, marker, payload) if self.send_packet else 0

    def _local_hand(self, meeting: ActiveMeeting, room: str, raised: bool) -> None:
        """A room's hand in the relayed meeting goes up to the province chair's queue."""
        if meeting.meeting_id != self.local_id or self.send_up is None:
            return
        task = asyncio.ensure_future(self.send_up(Hand(raised=raised, room=room)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _seconds_until(ends_at: datetime | None, start: datetime) -> int:
    """The local meeting's length from ``start`` to the province meeting's end (at least the shortest allowed)."""
    return max(10, int((ends_at - start).total_seconds())) if ends_at is not None else DEFAULT_SECONDS
