"""Pictures and sound encoded once and looped: the camera slate, silence, and the pacing of paced tracks.

A loop of encoded packets costs no encoder while it plays; the first video
packet is a keyframe, so the loop can restart at any time with a whole picture.
"""

from __future__ import annotations

import asyncio
import fractions
import math
import time
from collections.abc import Iterable
from typing import Any, Generic, Protocol, TypeVar

import av
import numpy as np
from aiortc.codecs.opus import OpusEncoder
from numpy.typing import NDArray

from node_agent.config import Voice

VIDEO_CLOCK = 90000
AUDIO_RATE = 48000
AUDIO_FRAME = 960  # 20 ms
SPEAKING_DBOV = -20
SILENT_DBOV = -127


class PausableTrack(Protocol):
    def pause(self, paused: bool) -> None: ...

    def request_keyframe(self) -> None: ...


TrackT = TypeVar("TrackT", bound=PausableTrack)


def voice_codec(voice: Voice) -> av.AudioCodecContext:
    codec = av.CodecContext.create("libopus", "w")
    assert isinstance(codec, av.AudioCodecContext)
    codec.sample_rate = AUDIO_RATE
    codec.layout = "mono"
    codec.format = "s16"
    codec.bit_rate = voice.bitrate
    codec.time_base = fractions.Fraction(1, AUDIO_RATE)
    codec.options = {
        "application": "voip",
        "fec": "1" if voice.fec else "0",
        "packet_loss": str(voice.expected_loss),
    }
    return codec


class VoiceOpusEncoder(OpusEncoder):
    """aiortc's encoder for raw microphone frames, with a ``Voice``'s settings."""

    def __init__(self, voice: Voice) -> None:
        super().__init__()
        self.codec = voice_codec(voice)
        self.resampler = av.AudioResampler(format="s16", layout="mono", rate=AUDIO_RATE, frame_size=AUDIO_FRAME)


class TrackPair(Generic[TrackT]):
    """A room's picture and sound as two paced tracks, paused and restarted together by the router's wishes."""

    def __init__(self, video: TrackT, audio: TrackT, voice: Voice, low: PausableTrack | None = None) -> None:
        self.video = video
        self.audio = audio
        self.voice = voice  # how raw sound is encoded (looped sound was encoded so already)
        self.low = low  # the picture in a lower quality too, for subscribers on weak links

    def request_keyframe(self) -> None:
        self.video.request_keyframe()

    def request_low_keyframe(self) -> None:
        if self.low is not None:
            self.low.request_keyframe()

    def pause(self, video: bool, audio: bool) -> None:
        self.video.pause(video)
        self.audio.pause(audio)
        if self.low is not None:
            self.low.pause(video)


def encode_vp8(pictures: Iterable[NDArray[Any]], width: int, height: int, fps: int, bitrate: int) -> list[bytes]:
    """VP8 frames of yuv420p ``pictures`` at a steady bitrate; the first one is a keyframe."""
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.bit_rate = bitrate
    # One thread: a short loop gains nothing from more, and libvpx's threads wait for each other by
    # spinning, which with many rooms starting at once on two cores took seconds of CPU per room.
    codec.thread_count = 1
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
    packets: list[bytes] = []
    for index, picture in enumerate(pictures):
        frame = av.VideoFrame.from_ndarray(picture, format="yuv420p")
        frame.pts = index
        if index == 0:
            frame.pict_type = av.video.frame.PictureType.I
        packets.extend(bytes(p) for p in codec.encode(frame))
    packets.extend(bytes(p) for p in codec.encode(None))
    return packets


def encode_opus_tone(frequency: float, voice: Voice, seconds: float = 1.0) -> list[bytes]:
    """Opus packets of a sine (0 Hz: silence); a whole number of periods, so it loops cleanly."""
    codec = voice_codec(voice)
    packets: list[bytes] = []
    total = int(AUDIO_RATE * seconds)
    for start in range(0, total + 2 * AUDIO_FRAME, AUDIO_FRAME):
        t = (np.arange(start, start + AUDIO_FRAME) % total) / AUDIO_RATE
        mono = (0.3 * 32767 * np.sin(2 * math.pi * frequency * t)).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(mono.reshape(1, -1), format="s16", layout="mono")
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
