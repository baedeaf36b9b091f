"""The minutes of one occurrence (/cuoc-hop/{id}/bien-ban/{occurrence}): who was invited, who attended from
when to when and who was absent, who had the floor and when, raised hands, and the recording's pieces.
A page to print, and the same as CSV for the office's spreadsheet."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from coordinator.models import Attendance, MeetingEvent
from coordinator.participants import invitation_of
from coordinator.services import Services, Svc
from coordinator.web.pages.recordings import RecordingRow, recordings_of
from coordinator.web.pages.schedule import _meeting
from coordinator.web.security import Refused, Viewer
from coordinator.web.templating import reason_vi, render

router = APIRouter(include_in_schema=False)


@dataclass
class Presence:
    participant: str
    name: str
    invited: bool
    stays: list[Attendance] = field(default_factory=list)

    @property
    def absent(self) -> bool:
        return not self.stays


@dataclass(frozen=True)
class Happening:
    at: datetime
    what: str


async def _names(services: Services, participants: set[str]) -> dict[str, str]:
    names = {room_id: record.name for room_id, record in services.registry.rooms.items()}
    numbers = {n for p in participants if (n := invitation_of(p)) is not None}
    guests = await services.guests.names(numbers)
    for participant in participants:
        number = invitation_of(participant)
        if number is not None:
            names[participant] = f"Khách: {guests.get(number, participant)}"
    return names


def _happenings(events: list[MeetingEvent], names: dict[str, str]) -> list[Happening]:
    said = []
    for event in events:
        who = names.get(event.participant or "", event.participant or "")
        if event.kind == "floor":
            said.append(Happening(event.at, f"Trao lời cho {who}" if event.participant else "Lấy lại lời về chủ trì"))
        elif event.kind == "hand_up":
            said.append(Happening(event.at, f"{who} xin phát biểu (giơ tay)"))
        elif event.kind == "hand_down":
            said.append(Happening(event.at, f"{who} hạ tay"))
    return said


@router.get("/cuoc-hop/{meeting_id}/bien-ban/{occurrence_id}", response_model=None)
async def minutes(
    request: Request,
    meeting_id: int,
    occurrence_id: int,
    services: Svc,
    user: Viewer,
    as_csv: Annotated[bool, Query(alias="csv")] = False,
) -> Response:
    meeting = await _meeting(services, meeting_id)
    found = await services.book.occurrence(occurrence_id) if 1 <= occurrence_id <= 2**31 - 1 else None
    if found is None or found[0].meeting_id != meeting_id:
        raise Refused(f"Cuộc họp này không có lần họp số {occurrence_id}.", status=404)
    occurrence, stays, events = found
    everyone = (
        set(occurrence.invited_rooms) | {s.room_id for s in stays} | {e.participant for e in events if e.participant}
    )
    names = await _names(services, everyone)
    people: dict[str, Presence] = {
        room: Presence(room, names.get(room, room), True) for room in sorted(occurrence.invited_rooms)
    }
    for stay in stays:
        people.setdefault(stay.room_id, Presence(stay.room_id, names.get(stay.room_id, stay.room_id), False))
        people[stay.room_id].stays.append(stay)
    happenings = _happenings(events, names)
    pieces: list[RecordingRow] = [r for r in recordings_of(services, meeting_id) if f"-lan-{occurrence_id}-" in r.name]
    if as_csv:
        return _as_csv(occurrence_id, list(people.values()), happenings, pieces)
    return render(
        request,
        "minutes.html",
        user,
        meeting=meeting,
        occurrence=occurrence,
        chair=names.get(meeting.chair_room, meeting.chair_room),
        people=list(people.values()),
        happenings=happenings,
        pieces=sorted(pieces, key=lambda r: r.name),
    )


def _as_csv(
    occurrence_id: int, people: list[Presence], happenings: list[Happening], pieces: list[RecordingRow]
) -> Response:
    out = io.StringIO()
    out.write("\ufeff")  # so that a spreadsheet reads the Vietnamese letters as UTF-8
    rows = csv.writer(out)
    rows.writerow(["muc", "ma", "ten", "thoi_diem", "den", "ghi_chu"])
    for person in people:
        if person.absent:
            rows.writerow(["vang", person.participant, person.name, "", "", "không vào họp"])
        for stay in person.stays:
            left = stay.left_at.isoformat() if stay.left_at else ""
            rows.writerow(
                [
                    "co_mat",
                    person.participant,
                    person.name,
                    stay.joined_at.isoformat(),
                    left,
                    reason_vi(stay.left_reason),
                ]
            )
    for happening in happenings:
        rows.writerow(["dien_bien", "", "", happening.at.isoformat(), "", happening.what])
    for piece in pieces:
        rows.writerow(
            ["ghi_hinh", piece.name, "", piece.started.isoformat() if piece.started else "", "", f"{piece.size} byte"]
        )
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="bien-ban-{occurrence_id}.csv"'},
    )
