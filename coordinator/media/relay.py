"""A meeting relayed from another level, as its router sees it: a source that is no room, and a way up.

A commune running a province meeting has no room for the chair. The packets
of the province's program and chair's sound arrive on the commune's uplink
peer and enter the router as the source ``name``; the sound of whoever holds
the floor elsewhere enters as ``floor_name``. The other way, the router feeds
the two ``up`` streams (picture, sound) from ``up_source``, a room of this
commune, while the province asks for them; the uplink sends those packets up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from coordinator.media.rewriter import SlotStream


@dataclass
class Relay:
    name: str
    request_keyframe: Callable[[], None]  # from the other level's program
    up: dict[str, SlotStream] = field(default_factory=dict)  # kind ("video", "audio") -> stream going up
    live: bool = False  # packets from the other level are arriving
    picture: bool = True  # the other level sends its picture (it holds it back while over this one's budget)
    up_source: str | None = None  # the room whose picture and sound go up
    wanted: dict[str, bool] = field(default_factory=dict)  # kind -> the other level receives it

    @property
    def floor_name(self) -> str:
        return f"{self.name}/floor"

    def up_source_for(self, kind: str, rooms: set[str]) -> str | None:
        source = self.up_source
        return source if self.wanted.get(kind) and source in rooms else None

    def restart_up(self) -> None:
        """A new uplink peer: its streams start again at a keyframe; the other level sends its picture
        until it says otherwise."""
        self.picture = True
        for stream in self.up.values():
            stream.switch(None)
