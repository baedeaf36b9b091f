"""The test source: a synthetic camera and microphone that cost next to nothing.

The picture (room code, room colour, a moving bar and a noisy strip that
keeps the bitrate realistic) and the room's tone are encoded once at start;
the tracks then loop the encoded packets in real time. A keyframe request
restarts the video loop at its keyframe.
"""

from __future__ import annotations

import asyncio
import fractions
import math
import time
from typing import Any

import av
import numpy as np
from aiortc import MediaStreamTrack
from av.packet import Packet

from phonghop.testpattern import draw_frame, room_code, tone_hz

VIDEO_CLOCK = 90000
AUDIO_RATE = 48000
AUDIO_FRAME = 960  # 20 ms
SPEAKING_DBOV = -20
SILENT_DBOV = -127


def encode_video_loop(
    room_id: str,
    width: int,
    height: int,
    fps: int,
    seconds: float,
    bitrate: int,
    picture: np.ndarray | None = None,
) -> list[bytes]:
    """VP8 frames of the room's test picture (or of a fixed yuv420p ``picture``); the first one is a keyframe."""
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.bit_rate = bitrate
    codec.time_base = fractions.Fraction(1, fps)
    codec.framerate = fractions.Fraction(fps, 1)
    codec.options = {
        "deadline": "realtime",
        "cpu-used": "16",
        "lag-in-frames": "0",
        "minrate": str(bitrate),
        "maxrate": str(bitrate),
        "bufsize": str(bitrate),
        "undershoot-pct": "100",
        "overshoot-pct": "15",
    }
    code = room_code(room_id)
    noise = np.random.default_rng(code)
    strip = slice(height * 3 // 4, height), slice(width // 2, width)
    packets: list[bytes] = []
    for index in range(max(1, int(fps * seconds))):
        if picture is None:
            image = draw_frame(code, index, width, height)
            image[strip] = noise.integers(0, 255, (height - height * 3 // 4, width - width // 2), dtype=np.uint8)
        else:
            image = picture
        frame = av.VideoFrame.from_ndarray(image, format="yuv420p")
        frame.pts = index
        if index == 0:
            frame.pict_type = av.video.frame.PictureType.I
        packets.extend(bytes(p) for p in codec.encode(frame))
    packets.extend(bytes(p) for p in codec.encode(None))
    return packets


def encode_tone_loop(room_id: str | None, seconds: float = 1.0) -> list[bytes]:
    """Opus packets of the room's tone (or of silence); a whole number of periods, so it loops cleanly."""
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate = AUDIO_RATE
    codec.layout = "stereo"
    codec.format = "s16"
    codec.bit_rate = 32000
    frequency = tone_hz(room_id) if room_id else 0
    packets: list[bytes] = []
    total = int(AUDIO_RATE * seconds)
    for start in range(0, total + 2 * AUDIO_FRAME, AUDIO_FRAME):
        t = (np.arange(start, start + AUDIO_FRAME) % total) / AUDIO_RATE
        mono = (0.3 * 32767 * np.sin(2 * math.pi * frequency * t)).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(np.repeat(mono, 2).reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate = AUDIO_RATE
        frame.pts = start
        packets.extend(bytes(p) for p in codec.encode(frame))
    return packets[: total // AUDIO_FRAME]


async def pace(start: float | None, sent: int, interval: float) -> float:
    """Wait until item number ``sent`` is due; returns the clock's start (reset after a stall: no burst)."""
    now = time.monotonic()
    if start is None:
        start = now - sent * interval
    due = start + sent * interval
    if due > now:
        await asyncio.sleep(due - now)
    elif now - due > 1.0:  # starved for a while: do not burst to catch up
        start = now - sent * interval
    return start


class LoopTrack(MediaStreamTrack):
    """Plays a list of encoded packets in a loop, paced in real time."""

    def __init__(self, kind: str, packets: list[bytes], interval: float, clock_rate: int) -> None:
        super().__init__()
        self.kind = kind
        self._packets = packets
        self._interval = interval
        self._step = round(interval * clock_rate)
        self._time_base = fractions.Fraction(1, clock_rate)
        self._index = 0
        self._sent = 0
        self._start: float | None = None
        self._running = asyncio.Event()
        self._running.set()

    def pause(self, paused: bool) -> None:
        """A paused track blocks its sender instead of feeding it frames it would drop."""
        if paused:
            self._running.clear()
        elif not self._running.is_set():
            self._start = None  # pace from now, do not catch up
            self._running.set()

    def replace(self, packets: list[bytes]) -> None:
        self._packets = packets
        self._index = 0

    def request_keyframe(self) -> None:
        self._index = 0

    async def recv(self) -> Packet[Any]:
        await self._running.wait()
        self._start = await pace(self._start, self._sent, self._interval)
        packet = Packet(self._packets[self._index % len(self._packets)])
        packet.pts = self._sent * self._step
        packet.time_base = self._time_base
        self._index = (self._index + 1) % len(self._packets)
        self._sent += 1
        return packet


class TestSource:
    """The room's simulated camera and microphone."""

    __test__ = False  # not a pytest class

    def __init__(
        self, room_id: str, width: int = 640, height: int = 360, fps: int = 15, bitrate: int = 500_000
    ) -> None:
        self.room_id = room_id
        self.video = LoopTrack(
            "video", encode_video_loop(room_id, width, height, fps, 2.0, bitrate), 1 / fps, VIDEO_CLOCK
        )
        self._tone = encode_tone_loop(room_id)
        self._silence = encode_tone_loop(None)
        self.audio = LoopTrack("audio", self._tone, AUDIO_FRAME / AUDIO_RATE, AUDIO_RATE)
        self.talking = True

    def set_talking(self, talking: bool) -> None:
        if talking != self.talking:
            self.talking = talking
            self.audio.replace(self._tone if talking else self._silence)

    def audio_level(self) -> int:
        return SPEAKING_DBOV if self.talking else SILENT_DBOV
