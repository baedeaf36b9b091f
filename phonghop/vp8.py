"""Just enough of the VP8 RTP payload descriptor (RFC 7741) to forward and switch streams, and to see
where a keyframe starts."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Vp8Info:
    frame_start: bool
    keyframe: bool
    picture_id: int | None  # 15-bit picture id, or None when absent or 7-bit
    picture_id_at: int  # byte offset of the 2-byte picture id, or -1


NOT_VP8 = Vp8Info(False, False, None, -1)


def inspect(payload: bytes) -> Vp8Info:
    """Where a frame starts, whether it is a keyframe, and where its picture id sits."""
    if not payload:
        return NOT_VP8
    first = payload[0]
    start = bool(first & 0x10) and (first & 0x0F) == 0
    pos = 1
    picture_id = None
    picture_id_at = -1
    if first & 0x80:
        if len(payload) < 2:
            return NOT_VP8
        ext = payload[1]
        pos = 2
        if ext & 0x80:
            if len(payload) <= pos:
                return NOT_VP8
            if payload[pos] & 0x80:
                if len(payload) < pos + 2:
                    return NOT_VP8
                picture_id = ((payload[pos] & 0x7F) << 8) | payload[pos + 1]
                picture_id_at = pos
                pos += 2
            else:
                pos += 1
        if ext & 0x40:
            pos += 1
        if ext & 0x30:
            pos += 1
    keyframe = start and len(payload) > pos and not payload[pos] & 0x01
    return Vp8Info(start, keyframe, picture_id, picture_id_at)


def with_picture_id(payload: bytes, at: int, picture_id: int) -> bytes:
    """The payload with its 15-bit picture id replaced (M bit kept set)."""
    value = 0x8000 | (picture_id & 0x7FFF)
    return payload[:at] + bytes((value >> 8, value & 0xFF)) + payload[at + 2 :]
