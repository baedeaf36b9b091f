"""The test source's fingerprints: a picture code and a tone that name the room.

The picture carries a 32-bit code (CRC-32 of the room id) as big black and
white cells that survive VP8 at low bitrates; the tone's frequency is chosen
from the same code. A receiver that decodes them can tell which room it sees
and hears, which is how the tests and the demo check the routing.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Any

import numpy as np
from numpy.typing import NDArray

SYNC = 0b10101010
COLUMNS = 8
ROWS = 5  # one sync row, then four bytes of code
TONE_BASE_HZ = 300
TONE_STEP_HZ = 50
TONE_STEPS = 64


def room_code(room_id: str) -> int:
    return zlib.crc32(room_id.encode("utf-8"))


def tone_hz(room_id: str) -> int:
    return TONE_BASE_HZ + TONE_STEP_HZ * (room_code(room_id) % TONE_STEPS)


def room_with_code(code: int | None, rooms: Iterable[str]) -> str | None:
    if code is None:
        return None
    return next((room for room in sorted(rooms) if room_code(room) == code), None)


def room_with_tone(hz: float | None, rooms: Iterable[str]) -> str | None:
    """The room whose tone this is (tones are 50 Hz apart); the first by id if two share one."""
    if hz is None:
        return None
    return next((room for room in sorted(rooms) if abs(tone_hz(room) - hz) < TONE_STEP_HZ / 2), None)


def _cell(height: int) -> int:
    return max(8, height // 9)


def _bits(code: int) -> list[list[int]]:
    rows = [[(SYNC >> (7 - i)) & 1 for i in range(COLUMNS)]]
    for byte_index in range(4):
        byte = (code >> (24 - 8 * byte_index)) & 0xFF
        rows.append([(byte >> (7 - i)) & 1 for i in range(COLUMNS)])
    return rows


def draw_frame(code: int, index: int, width: int, height: int) -> NDArray[np.uint8]:
    """One yuv420p picture (as PyAV's from_ndarray wants it): code cells, a moving bar, a room colour."""
    yuv = np.empty((height * 3 // 2, width), dtype=np.uint8)
    luma = yuv[:height]
    luma[:] = 110
    cell = _cell(height)
    for row, bits in enumerate(_bits(code)):
        for col, bit in enumerate(bits):
            y, x = cell // 2 + row * cell, cell // 2 + col * cell
            luma[y : y + cell, x : x + cell] = 235 if bit else 16
    bar = (index * 8) % width
    luma[height * 3 // 4 :, bar : bar + max(4, width // 40)] = 235
    quarter = (height // 2) * (width // 2)
    flat = yuv[height:].reshape(-1)
    flat[:quarter] = 64 + (code & 0x7F)
    flat[quarter:] = 64 + ((code >> 8) & 0x7F)
    return yuv


def read_code(luma: NDArray[Any]) -> int | None:
    """The code in a decoded picture's luma plane, or None if it shows no test pattern."""
    height = luma.shape[0]
    cell = _cell(height)
    margin = cell // 4
    rows: list[int] = []
    for row in range(ROWS):
        value = 0
        for col in range(COLUMNS):
            y, x = cell // 2 + row * cell, cell // 2 + col * cell
            patch = luma[y + margin : y + cell - margin, x + margin : x + cell - margin]
            if patch.size == 0:
                return None
            value = (value << 1) | int(patch.mean() > 128)
        rows.append(value)
    if rows[0] != SYNC:
        return None
    return (rows[1] << 24) | (rows[2] << 16) | (rows[3] << 8) | rows[4]


def dominant_hz(samples: NDArray[np.float32], rate: int) -> float | None:
    """The strongest frequency in a block of mono samples, or None for silence."""
    if samples.size < rate // 50 or float(np.abs(samples).max(initial=0.0)) < 1e-3:
        return None
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    peak = int(np.argmax(spectrum[1:])) + 1
    return peak * rate / samples.size


SLATE_CODE = 0  # what a receiver reports for the "no camera" slate (no room's code is 0 in practice)


def is_slate(luma: NDArray[Any]) -> bool:
    """True for the agent's camera slate: a flat light band on top, a flat dark band at the bottom."""
    height = luma.shape[0]
    band = max(2, height // 8 - 2)  # a margin for the codec's blur at the band's edge
    top, bottom = luma[:band].astype(np.float32), luma[height - band :].astype(np.float32)
    return bool(top.mean() > 150 and top.std() < 12 and bottom.mean() < 50 and bottom.std() < 12)
