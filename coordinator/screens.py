"""What each room's TV shows now: the last composed frame its agent uploaded.

Kept in memory only: after a restart the agents upload a fresh one within
seconds, and an old picture would mislead the operator.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

from starlette.responses import Response

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_SCREEN_BYTES = 1_000_000
# A TV picture is at most 4K; a small PNG can declare 30000x30000 pixels (2.7 GB in the operator's browser).
MAX_SCREEN_SIDE = 4096
MAX_SCREEN_PIXELS = 3840 * 2160


class NotAPicture(ValueError):
    pass


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height from the PNG's first chunk, which must be its IHDR header."""
    if len(png) < 24 or png[12:16] != b"IHDR":
        raise NotAPicture("the PNG has no IHDR header right after its signature; send a whole PNG file")
    width, height = struct.unpack(">II", png[16:24])
    return int(width), int(height)


@dataclass(frozen=True)
class Screen:
    png: bytes
    captured_at: datetime

    def response(self) -> Response:
        """The picture as the API and the pages serve it: never cached, never sniffed as anything else."""
        return Response(
            self.png,
            media_type="image/png",
            headers={
                "Last-Modified": format_datetime(self.captured_at, usegmt=True),
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
            },
        )


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
        width, height = png_size(png)
        if not (0 < width <= MAX_SCREEN_SIDE and 0 < height <= MAX_SCREEN_SIDE and width * height <= MAX_SCREEN_PIXELS):
            raise NotAPicture(
                f"the picture declares {width}x{height} pixels; the limit is {MAX_SCREEN_SIDE} pixels a side and "
                f"{MAX_SCREEN_PIXELS} in all (a 4K frame); send a smaller thumbnail"
            )
        screen = Screen(png, datetime.now(UTC))
        self._latest[room_id] = screen
        return screen

    def get(self, room_id: str) -> Screen | None:
        return self._latest.get(room_id)

    def forget(self, room_id: str) -> None:
        self._latest.pop(room_id, None)
