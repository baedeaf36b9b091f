"""What the pages show, gathered from the live state (connections, meetings, registry, screens) into plain rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from coordinator.live_meetings import ActiveMeeting
from coordinator.models import Invitation
from coordinator.participants import guest_id
from coordinator.registry import RoomRecord
from coordinator.services import Services
from coordinator.web.readiness import ReadinessMark, readiness_of
from phonghop.identity import ROOM_GROUPS
from phonghop.protocol import DEVICE_NAMES


@dataclass(frozen=True)
class QualityRow:
    rtt_ms: float | None
    loss_in_pct: float | None
    loss_out_pct: float | None
    jitter_ms: float | None
    weak: str | None = None  # why the room gets the lower quality of the program picture, if it does

    @property
    def poor(self) -> bool:
        loss = max(self.loss_in_pct or 0, self.loss_out_pct or 0)
        return (self.rtt_ms or 0) > 300 or loss > 5 or (self.jitter_ms or 0) > 50


@dataclass(frozen=True)
class RoomRow:
    id: str
    name: str
    group: str
    up: bool
    meeting: ActiveMeeting | None
    in_meeting: bool
    devices: list[tuple[str, bool | None]]
    quality: QualityRow | None
    last_seen: datetime | None
    readiness: ReadinessMark | None
    receives: str | None  # room whose picture the router sends it on the program slot


@dataclass
class RoomGroupRows:
    group: str
    rooms: list[RoomRow] = field(default_factory=list)


def _pct(value: float | None) -> float | None:
    return None if value is None else value * 100


def _ms(value: float | None) -> float | None:
    return None if value is None else value * 1000


def quality_of(services: Services, room_id: str) -> QualityRow | None:
    for meeting in services.live.meetings.values():
        peer = meeting.router.peers.get(room_id)
        if peer is not None:
            q = peer.quality
            choice = meeting.router.qualities.choices.get(room_id)
            weak = choice.reason or "mạng yếu" if choice is not None and choice.low else None
            return QualityRow(_ms(q.rtt), _pct(q.loss_in), _pct(q.loss_out), _ms(q.jitter), weak)
    return None


def receives(services: Services, room_id: str) -> str | None:
    meeting = services.live.meeting_with(room_id)
    slots = meeting.router.routed_to(room_id) if meeting is not None else None
    return slots.program if slots is not None else None


def room_row(services: Services, record: RoomRecord) -> RoomRow:
    meeting = services.live.meeting_with(record.id)
    return RoomRow(
        id=record.id,
        name=record.name,
        group=record.group,
        up=services.connections.is_up(record.id),
        meeting=meeting,
        in_meeting=meeting is not None and meeting.in_meeting(record.id),
        devices=[(name, record.devices.get(name)) for name in DEVICE_NAMES],
        quality=quality_of(services, record.id),
        last_seen=record.last_seen,
        readiness=readiness_of(services, record.id),
        receives=receives(services, record.id),
    )


def grouped_rooms(services: Services) -> list[RoomGroupRows]:
    """Rooms in the inventory's groups and order: the hall, residential groups, schools, public services."""
    groups = {name: RoomGroupRows(name) for name in ROOM_GROUPS}
    for record in sorted(services.registry.rooms.values(), key=lambda r: r.id):
        groups.setdefault(record.group, RoomGroupRows(record.group)).rooms.append(room_row(services, record))
    return [g for g in groups.values() if g.rooms]


@dataclass(frozen=True)
class ConsoleRoom:
    row: RoomRow
    joined: bool
    muted: bool
    hand: int | None  # place in the raise-hand queue, from 1
    on_floor: bool
    is_chair: bool


@dataclass(frozen=True)
class Program:
    on_program: str  # the room the audience sees
    screen_room: str | None  # whose TV picture is shown, None: placeholder
    screen_at: datetime | None


def program_of(services: Services, meeting: ActiveMeeting) -> Program:
    """Who is on the program, and a TV that shows it (a room that receives the program, not the speaker's own)."""
    on_program = meeting.router.talker() or meeting.chair
    candidates = sorted(
        meeting.joined, key=lambda r: (r == on_program, r == meeting.chair, receives(services, r) != on_program, r)
    )
    for room_id in candidates:
        screen = services.screens.get(room_id)
        if screen is not None:
            return Program(on_program, room_id, screen.captured_at)
    return Program(on_program, None, None)


def console_rooms(services: Services, meeting: ActiveMeeting) -> list[ConsoleRoom]:
    rows = []
    for room_id in sorted(meeting.expected, key=lambda r: (r != meeting.chair, r)):
        record = services.registry.rooms.get(room_id)
        if record is None:
            continue
        rows.append(
            ConsoleRoom(
                row=room_row(services, record),
                joined=room_id in meeting.joined,
                muted=room_id in meeting.router.muted,
                hand=meeting.hands.index(room_id) + 1 if room_id in meeting.hands else None,
                on_floor=meeting.floor == room_id,
                is_chair=meeting.chair == room_id,
            )
        )
    return rows


@dataclass(frozen=True)
class ConsoleGuest:
    """One invitation of the occurrence the console shows, and what its guest does now."""

    invitation_id: int
    participant: str
    name: str
    state: str  # "in", "connecting", "not_in", "revoked", "expired"
    hand: int | None
    on_floor: bool
    muted: bool


def console_guests(invitations: list[Invitation], meeting: ActiveMeeting | None, at: datetime) -> list[ConsoleGuest]:
    rows = []
    for invitation in invitations:
        guest = guest_id(invitation.id)
        inside = meeting is not None and guest in meeting.guests
        if invitation.revoked_at is not None:
            state = "revoked"
        elif inside:
            state = "in" if meeting is not None and meeting.router.flowing(guest) else "connecting"
        elif meeting is None and at >= invitation.expires_at:
            state = "expired"
        else:
            state = "not_in"
        rows.append(
            ConsoleGuest(
                invitation_id=invitation.id,
                participant=guest,
                name=invitation.guest_name,
                state=state,
                hand=meeting.hands.index(guest) + 1 if meeting is not None and guest in meeting.hands else None,
                on_floor=meeting is not None and meeting.floor == guest,
                muted=meeting is not None and guest in meeting.router.muted,
            )
        )
    return rows


def now() -> datetime:
    return datetime.now(UTC)
