"""What each room's TV shows now: the last composed frame its agent uploaded.

Kept in memory only: after a restart the agents upload a fresh one within
seconds, and an old picture would mislead the operator.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_SCREEN_BYTES = 1_000_000


class NotAPicture(ValueError):
    pass


@dataclass(frozen=True)
class Screen:
    png: bytes
    captured_at: datetime


class Screens:
    def __init__(self) -> None:
        self._latest: dict[str, Screen] = {}

    def put(self, room_id: str, png: bytes) -> Screen:
        if not png.startswith(PNG_SIGNATURE):
            raise NotAPicture("the body is not a PNG picture; send the composed frame as image/png")
        if len(png) > MAX_SCREEN_BYTES:
            raise NotAPicture(
                f"the picture has {len(png)} bytes, more than {MAX_SCREEN_BYTES}; send a smaller thumbnail"
            )
        screen = Screen(png, datetime.now(UTC))
        self._latest[room_id] = screen
        return screen

    def get(self, room_id: str) -> Screen | None:
        return self._latest.get(room_id)

    def forget(self, room_id: str) -> None:
        self._latest.pop(room_id, None)
