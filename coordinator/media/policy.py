"""Who each room sees and hears: the routing policy as a pure function of the meeting's state.

Every room receives three slots: the program picture, the chair's sound and
the floor's sound. The program shows the room holding the floor (in
discussion mode: the active speaker), or the chair when nobody does; the
room on the program sees the chair. No room ever receives its own media.

A meeting relayed from another level (a province meeting inside a commune)
has a chair that is not a room: while its link is down the ``fallback`` room
(the commune hall) takes the chair's place, and while nobody here has the
floor the floor's sound is ``relay_floor`` (whoever speaks at the other level).
``pictures`` are the sources whose picture can be shown, when fewer than those
that send sound: the other level holds its picture back while it does not fit
this commune's budget, and the fallback room's picture is shown with the
chair's sound.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Slots:
    program: str | None
    chair_audio: str | None
    floor_audio: str | None


def talker(mode: str, floor: str | None, speaker: str | None) -> str | None:
    """Who speaks besides the chair: the floor holder, or the active speaker in discussion mode."""
    if mode == "discussion" and speaker is not None:
        return speaker
    return floor


def slots_for(
    room: str,
    chair: str,
    speaking: str | None,
    publishing: set[str],
    previous: str | None = None,
    fallback: str | None = None,
    relay_floor: str | None = None,
    pictures: set[str] | None = None,
) -> Slots:
    shown = publishing if pictures is None else pictures

    def usable(candidate: str | None, among: set[str] = publishing) -> str | None:
        return candidate if candidate is not None and candidate != room and candidate in among else None

    def seen(candidate: str | None) -> str | None:
        return usable(candidate, shown)

    picture_stand_in = seen(fallback) if chair not in shown else None
    program = seen(speaking) or seen(chair) or picture_stand_in or seen(previous)
    if program is None and room == chair:
        program = next(iter(sorted(shown - {room})), None)
    floor_audio = usable(speaking) if speaking != chair else None
    if speaking is None:
        floor_audio = usable(relay_floor)
    sound_stand_in = usable(fallback) if chair not in publishing else None
    return Slots(program=program, chair_audio=usable(chair) or sound_stand_in, floor_audio=floor_audio)
