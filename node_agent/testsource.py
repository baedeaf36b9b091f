"""The test source: a synthetic camera and microphone that cost next to nothing, and its reader.

The picture (room code, room colour, a moving bar and a noisy strip that
keeps the bitrate realistic) and the room's tone are encoded once at start;
the tracks then loop the encoded packets in real time. A keyframe request
restarts the video loop at its keyframe.

A simulated room's devices are the test source (:class:`TestDevices`, which
the debug hooks can unplug); what such a room receives can be read back
(:class:`CodeReader`): which room's code each picture carries and which
room's tone each sound slot plays. Rooms with real devices never read codes.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from collections.abc import Callable, Iterator
from typing import Any

import av
import numpy as np
from aiortc import MediaStreamTrack
from av import AudioFrame, VideoFrame
from av.frame import Frame
from av.packet import Packet

from node_agent.config import AgentConfig, Voice
from node_agent.devices import DeviceError
from node_agent.encoding import (
    AUDIO_FRAME,
    AUDIO_RATE,
    SILENT_DBOV,
    SPEAKING_DBOV,
    VIDEO_CLOCK,
    TrackPair,
    encode_opus_tone,
    encode_vp8,
    pace,
)
from phonghop.testpattern import SLATE_CODE, dominant_hz, draw_frame, is_slate, read_code, room_code, tone_hz


def encode_video_loop(room_id: str, width: int, height: int, fps: int, seconds: float, bitrate: int) -> list[bytes]:
    """VP8 frames of the room's test picture; the first one is a keyframe."""
    code = room_code(room_id)
    noise = np.random.default_rng(code)
    strip = slice(height * 3 // 4, height), slice(width // 2, width)

    def pictures() -> Iterator[np.ndarray]:
        for index in range(max(1, int(fps * seconds))):
            image = draw_frame(code, index, width, height)
            image[strip] = noise.integers(0, 255, (height - height * 3 // 4, width - width // 2), dtype=np.uint8)
            yield image

    return encode_vp8(pictures(), width, height, fps, bitrate)


VOICE = Voice()


def encode_tone_loop(room_id: str | None, voice: Voice) -> list[bytes]:
    """Opus packets of the room's tone (or of silence), looping cleanly."""
    return encode_opus_tone(tone_hz(room_id) if room_id else 0, voice)


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


class TestSource(TrackPair["LoopTrack"]):
    """The room's simulated camera and microphone as two plain tracks (self-test, benchmarks, router tests)."""

    __test__ = False  # not a pytest class

    def __init__(
        self,
        room_id: str,
        width: int = 640,
        height: int = 360,
        fps: int = 15,
        bitrate: int = 500_000,
        voice: Voice = VOICE,
        low: tuple[int, int, int] | None = None,
    ) -> None:
        """``low``: width, height and bitrate of the same picture in a lower quality, sent as well."""
        self.room_id = room_id
        self._tone = encode_tone_loop(room_id, voice)
        self._silence = encode_tone_loop(None, voice)
        lower = None
        if low is not None:
            lower = LoopTrack("video", encode_video_loop(room_id, *low[:2], fps, 2.0, low[2]), 1 / fps, VIDEO_CLOCK)
        super().__init__(
            LoopTrack("video", encode_video_loop(room_id, width, height, fps, 2.0, bitrate), 1 / fps, VIDEO_CLOCK),
            LoopTrack("audio", self._tone, AUDIO_FRAME / AUDIO_RATE, AUDIO_RATE),
            voice,
            lower,
        )
        self.talking = True

    def set_talking(self, talking: bool) -> None:
        if talking != self.talking:
            self.talking = talking
            self.audio.replace(self._tone if talking else self._silence)

    def audio_level(self) -> int:
        return SPEAKING_DBOV if self.talking else SILENT_DBOV

    def use_encoder(self, keyframe: Callable[[], None]) -> None:
        """Pre-encoded only: the sender's encoder is never used."""


# --- the test source as a room's devices ----------------------------------------


class Faults:
    """Devices of the test source that are made to fail (``[debug] allow_device_faults``)."""

    def __init__(self) -> None:
        self.broken: set[str] = set()


class PacketLoop:
    """A paced input that loops pre-encoded packets; the test source's camera and microphone."""

    paced = True

    def __init__(
        self,
        name: str,
        packets: list[bytes],
        dbov: int = SILENT_DBOV,
        *,
        faults: Faults,
        low: list[bytes] | None = None,
    ) -> None:
        self.name = name
        self.packets = packets
        self.low = low  # the same loop in a lower quality, frame for frame
        self.dbov = dbov
        self._faults = faults
        self._index = 0
        self._last = 0
        if not self.alive():
            raise DeviceError(f"thiết bị thử {name} đã bị rút (móc gỡ lỗi)")

    def alive(self) -> bool:
        return self.name not in self._faults.broken

    def read(self) -> Packet[Any]:
        if not self.alive():
            raise DeviceError(f"thiết bị thử {self.name} vừa bị rút (móc gỡ lỗi)")
        self._last = self._index
        packet = Packet(self.packets[self._index % len(self.packets)])
        self._index = (self._index + 1) % len(self.packets)
        return packet

    def lower(self) -> Packet[Any] | None:
        """The packet last read, in the lower quality (None: this loop has none)."""
        return Packet(self.low[self._last % len(self.low)]) if self.low else None

    def replace(self, packets: list[bytes], dbov: int) -> None:
        self.packets = packets
        self.dbov = dbov
        self._index = 0

    def keyframe(self) -> bool:
        self._index = 0
        return True

    def level(self) -> int | None:
        return self.dbov

    def close(self) -> None:
        pass


class RawPattern:
    """A paced input of raw test pictures (``camera = "test-raw"``): the encoder works as with a real camera."""

    paced = True

    def __init__(self, room_id: str, width: int, height: int, fps: int, faults: Faults) -> None:
        self._faults = faults
        code = room_code(room_id)
        self._pictures = [draw_frame(code, index, width, height) for index in range(fps)]
        self._index = 0
        if not self.alive():
            raise DeviceError("camera thử đã bị rút (móc gỡ lỗi)")

    def alive(self) -> bool:
        return "camera" not in self._faults.broken

    def read(self) -> Frame:
        if not self.alive():
            raise DeviceError("camera thử vừa bị rút (móc gỡ lỗi)")
        picture = self._pictures[self._index % len(self._pictures)]
        self._index += 1
        return av.VideoFrame.from_ndarray(picture, format="yuv420p")

    def keyframe(self) -> bool:
        return False  # raw pictures: the sender's encoder makes the keyframe

    def lower(self) -> None:
        return None  # raw pictures: scaled down for the lower quality

    def level(self) -> int | None:
        return None

    def close(self) -> None:
        pass


class TestDevices:
    """The test source standing in for the room's camera and microphone (the inputs of a ``RoomSource``)."""

    __test__ = False  # not a pytest class

    def __init__(self, config: AgentConfig) -> None:
        self.room_id = config.room
        self.faults = Faults()
        ts, dev = config.test_source, config.devices
        self.camera_choice = config.device_choice("camera")
        if self.camera_choice == "test":
            self.camera_format = (ts.width, ts.height, ts.fps)
        else:
            self.camera_format = (dev.camera_width, dev.camera_height, dev.camera_fps)
        self.talking = ts.talking
        self._video: list[bytes] = []
        self._video_low: list[bytes] | None = None
        if self.camera_choice == "test":
            self._video = encode_video_loop(self.room_id, ts.width, ts.height, ts.fps, 2.0, ts.bitrate)
            media = config.media
            if media.two_qualities:
                low = (media.low_width, media.low_height, ts.fps, 2.0, media.low_bitrate)
                self._video_low = encode_video_loop(self.room_id, *low)
        voice = config.media.voice
        self._tone = encode_tone_loop(self.room_id, voice) if config.device_choice("microphone") == "test" else []
        self._silence = encode_tone_loop(None, voice)
        self._microphone: PacketLoop | None = None

    def camera(self) -> PacketLoop | RawPattern:
        if self.camera_choice == "test-raw":
            return RawPattern(self.room_id, *self.camera_format, self.faults)
        return PacketLoop("camera", self._video, faults=self.faults, low=self._video_low)

    def microphone(self) -> PacketLoop:
        self._microphone = PacketLoop("microphone", *self._sound(), faults=self.faults)
        return self._microphone

    def set_talking(self, talking: bool) -> None:
        if talking == self.talking:
            return
        self.talking = talking
        if self._microphone is not None:
            self._microphone.replace(*self._sound())

    def _sound(self) -> tuple[list[bytes], int]:
        if self.talking and self._tone:
            return self._tone, SPEAKING_DBOV
        return self._silence, SILENT_DBOV


# --- reading the test source back out of what a room receives -------------------


class CodeReader:
    """Which room's test picture and tones a simulated room receives, read from its decoded slots.

    A value is the latest one read within ``fresh`` seconds: a slot that stops
    receiving reads as None, not as what it carried before.
    """

    def __init__(self, fresh: float = 1.0) -> None:
        self.fresh = fresh
        self._read: dict[str, tuple[int | None, float]] = {}  # slot -> (code or Hz, when)
        self._blocks: dict[str, list[np.ndarray]] = {}
        self.program_frames = 0  # program pictures decoded so far
        self.program_width = 0  # the last one's width: which quality arrives

    def on_video(self, slot: str, frame: VideoFrame) -> None:
        luma = frame.to_ndarray(format="gray")
        code = read_code(luma)
        if code is None and is_slate(luma):
            code = SLATE_CODE
        self._read[slot] = (code, time.monotonic())
        if slot == "program":
            self.program_frames += 1
            self.program_width = frame.width

    def on_audio(self, slot: str, frame: AudioFrame) -> None:
        samples = frame.to_ndarray().astype(np.float32).reshape(-1, len(frame.layout.channels))
        block = self._blocks.setdefault(slot, [])
        block.append(samples.mean(axis=1) / 32768.0)
        if sum(part.size for part in block) >= frame.sample_rate // 5:
            hz = dominant_hz(np.concatenate(block), frame.sample_rate)
            block.clear()
            self._read[slot] = (round(hz / 10) * 10 if hz is not None else None, time.monotonic())

    def _value(self, slot: str) -> int | None:
        value, at = self._read.get(slot, (None, 0.0))
        return value if time.monotonic() - at < self.fresh else None

    def decoded(self) -> dict[str, Any]:
        """``program``: the picture's room code (None: none read), ``slate``: the picture is the camera slate,
        ``audio``: the tone in Hz of the chair's and the floor's sound slots (None: silence or nothing),
        ``frames`` and ``width``: program pictures decoded so far and the last one's width."""
        program = self._value("program")
        return {
            "program": None if program == SLATE_CODE else program,
            "slate": program == SLATE_CODE,
            "audio": [self._value("chair_audio"), self._value("floor_audio")],
            "frames": self.program_frames,
            "width": self.program_width,
        }
