"""The room's camera and microphone as WebRTC tracks that never stop.

Each track reads its device (a V4L2 camera, a sound input, or the test
source); when the device is missing or fails, the track sends a slate
picture ("Mất tín hiệu camera") or silence instead, reports the device as not
working, and tries the device again every few seconds. The meeting goes on
either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import av
from aiortc import MediaStreamTrack
from av.frame import Frame
from av.packet import Packet

from node_agent.config import AgentConfig
from node_agent.devices import DeviceError, SoundInput, V4l2Camera, pick
from node_agent.testsource import (
    AUDIO_FRAME,
    AUDIO_RATE,
    SILENT_DBOV,
    SPEAKING_DBOV,
    VIDEO_CLOCK,
    encode_tone_loop,
    encode_video_loop,
    pace,
)

log = logging.getLogger(__name__)

SLATE_MESSAGE = "Mất tín hiệu camera"


class Input(Protocol):
    """An open device. ``paced`` inputs hand out pre-encoded packets instantly; others block in ``read``."""

    paced: bool

    def read(self) -> Packet[Any] | Frame: ...

    def alive(self) -> bool: ...

    def restart(self) -> None: ...

    def close(self) -> None: ...


class Faults:
    """Test hook: devices of the test source that are made to fail (``[debug] allow_device_faults``)."""

    def __init__(self) -> None:
        self.broken: set[str] = set()


class PacketLoop:
    """A paced input that loops pre-encoded packets; the test source's camera and microphone."""

    paced = True

    def __init__(self, name: str, packets: list[bytes], faults: Faults) -> None:
        self.name = name
        self.packets = packets
        self._faults = faults
        self._index = 0
        if not self.alive():
            raise DeviceError(f"test {name} is unplugged (debug hook)")

    def alive(self) -> bool:
        return self.name not in self._faults.broken

    def read(self) -> Packet[Any]:
        if not self.alive():
            raise DeviceError(f"test {self.name} was unplugged (debug hook)")
        packet = Packet(self.packets[self._index % len(self.packets)])
        self._index = (self._index + 1) % len(self.packets)
        return packet

    def replace(self, packets: list[bytes]) -> None:
        self.packets = packets
        self._index = 0

    def restart(self) -> None:
        self._index = 0

    def close(self) -> None:
        pass


class RawPattern:
    """A paced input of raw test pictures (``camera = "test-raw"``): the encoder works as with a real camera."""

    paced = True

    def __init__(self, room_id: str, width: int, height: int, fps: int, faults: Faults) -> None:
        from phonghop.testpattern import draw_frame, room_code

        self._faults = faults
        code = room_code(room_id)
        self._pictures = [draw_frame(code, index, width, height) for index in range(fps)]
        self._index = 0
        if not self.alive():
            raise DeviceError("test camera is unplugged (debug hook)")

    def alive(self) -> bool:
        return "camera" not in self._faults.broken

    def read(self) -> Frame:
        if not self.alive():
            raise DeviceError("test camera was unplugged (debug hook)")
        picture = self._pictures[self._index % len(self._pictures)]
        self._index += 1
        return av.VideoFrame.from_ndarray(picture, format="yuv420p")

    def restart(self) -> None:
        pass

    def close(self) -> None:
        pass


class DeviceInput:
    """A real device read in a worker thread (V4L2 camera or sound input)."""

    paced = False

    def __init__(self, device: V4l2Camera | SoundInput, path: str | None) -> None:
        self.device = device
        self._path = path

    def alive(self) -> bool:
        from pathlib import Path

        return self._path is None or Path(self._path).exists()

    def read(self) -> Frame:
        return self.device.read()

    def restart(self) -> None:
        pass

    def close(self) -> None:
        self.device.close()


class FallbackTrack(MediaStreamTrack):
    """A track fed by a device when it works and by a fallback loop when it does not."""

    def __init__(
        self,
        kind: str,
        device: str,
        opener: Callable[[], Input],
        fallback: Callable[[], list[bytes]],
        interval: float,
        clock_rate: int,
        retry_seconds: float,
        on_change: Callable[[], None],
    ) -> None:
        super().__init__()
        self.kind = kind
        self.device = device
        self._opener = opener
        self._fallback_factory = fallback
        self._fallback: list[bytes] | None = None
        self._fallback_index = 0
        self._interval = interval
        self._step = round(interval * clock_rate)
        self._time_base = fractions.Fraction(1, clock_rate)
        self._retry_seconds = retry_seconds
        self._retry_at = 0.0
        self._on_change = on_change
        self._input: Input | None = None
        self._opening = asyncio.Lock()
        self._sent = 0
        self._start: float | None = None
        self._running = asyncio.Event()
        self._running.set()
        self.problem: str | None = "not checked yet"
        # Set by the media peer: makes the sender's encoder start a keyframe (raw-frame inputs).
        self.encoder_keyframe: Callable[[], None] | None = None

    @property
    def ok(self) -> bool:
        return self._input is not None

    @property
    def input(self) -> Input | None:
        return self._input

    def pause(self, paused: bool) -> None:
        if paused:
            self._running.clear()
        elif not self._running.is_set():
            self._start = None
            self._running.set()

    def request_keyframe(self) -> None:
        if self._input is None:
            self._fallback_index = 0
        elif isinstance(self._input, PacketLoop):
            self._input.restart()
        elif self.encoder_keyframe is not None:
            self.encoder_keyframe()  # raw pictures: the sender's encoder makes the keyframe

    async def check(self) -> None:
        """Open the device if it is closed and due for a retry; close it if it went away."""
        if self._input is not None and not self._input.alive():
            self._lost("the device disappeared (unplugged?)")
        if self._input is None and time.monotonic() >= self._retry_at:
            async with self._opening:
                if self._input is None:
                    await self._open()

    async def _open(self) -> None:
        try:
            opened = await asyncio.to_thread(self._opener)
        except DeviceError as exc:
            self._retry_at = time.monotonic() + self._retry_seconds
            if str(exc) != self.problem:
                log.warning(
                    "%s: %s; sending %s instead, retrying every %.0f s",
                    self.device,
                    exc,
                    "a slate" if self.kind == "video" else "silence",
                    self._retry_seconds,
                )
                self.problem = str(exc)
                self._on_change()
            return
        self._input = opened
        self.problem = None
        self.request_keyframe()
        log.info("%s: device working", self.device)
        self._on_change()

    def _lost(self, why: str) -> None:
        if self._input is not None:
            with contextlib.suppress(Exception):
                self._input.close()
        self._input = None
        self._fallback_index = 0  # the fallback starts with a keyframe
        self.problem = why
        self._retry_at = time.monotonic() + self._retry_seconds
        log.warning(
            "%s lost: %s; sending %s instead", self.device, why, "a slate" if self.kind == "video" else "silence"
        )
        self._on_change()

    async def prepare_fallback(self) -> None:
        """Make the slate (or silence) now, so that a failing device is replaced at once."""
        if self._fallback is None:
            self._fallback = await asyncio.to_thread(self._fallback_factory)

    async def _fallback_packet(self) -> Packet[Any]:
        if self._fallback is None:
            await self.prepare_fallback()
        assert self._fallback is not None
        packet = Packet(self._fallback[self._fallback_index % len(self._fallback)])
        self._fallback_index = (self._fallback_index + 1) % len(self._fallback)
        return packet

    async def recv(self) -> Packet[Any] | Frame:
        await self._running.wait()
        await self.check()
        current = self._input
        item: Packet[Any] | Frame | None = None
        if current is None or current.paced:
            self._start = await pace(self._start, self._sent, self._interval)
        if current is not None:
            try:
                item = current.read() if current.paced else await asyncio.to_thread(current.read)
            except DeviceError as exc:
                self._lost(str(exc))
            except Exception as exc:  # a driver error is a device error too; the meeting goes on
                self._lost(f"{exc.__class__.__name__}: {exc}")
        if item is None:
            if current is not None and not current.paced:
                self._start = await pace(self._start, self._sent, self._interval)
            item = await self._fallback_packet()
        item.pts = self._sent * self._step
        item.time_base = self._time_base
        self._sent += 1
        return item


def _slate_packets(room_id: str, name: str, width: int, height: int, fps: int) -> list[bytes]:
    from node_agent.render import slate_picture

    rgb = slate_picture(width, height, name, SLATE_MESSAGE)
    yuv = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p").to_ndarray()
    return encode_video_loop(room_id, width, height, fps, 1.0, 200_000, picture=yuv)


class RoomSource:
    """The camera and microphone the room sends, whatever state the devices are in."""

    def __init__(self, config: AgentConfig, on_change: Callable[[], None] = lambda: None) -> None:
        self.config = config
        self.room_id = config.room
        self.faults = Faults()
        ts, dev = config.test_source, config.devices
        self.camera_choice = config.device_choice("camera")
        self.microphone_choice = config.device_choice("microphone")
        if self.camera_choice == "test":
            width, height, fps = ts.width, ts.height, ts.fps
        else:
            width, height, fps = dev.camera_width, dev.camera_height, dev.camera_fps
        self._test_video: list[bytes] | None = None
        self._tone: list[bytes] | None = None
        self._silence: list[bytes] | None = None
        self.talking = ts.talking
        self.video = FallbackTrack(
            "video",
            "camera",
            self._open_camera,
            lambda: _slate_packets(self.room_id, config.display_name, width, height, fps),
            1 / fps,
            VIDEO_CLOCK,
            dev.retry_seconds,
            on_change,
        )
        self.audio = FallbackTrack(
            "audio",
            "microphone",
            self._open_microphone,
            self._silence_packets,
            AUDIO_FRAME / AUDIO_RATE,
            AUDIO_RATE,
            dev.retry_seconds,
            on_change,
        )
        if self.camera_choice == "test":
            self._test_video = encode_video_loop(self.room_id, width, height, fps, 2.0, ts.bitrate)
        if self.microphone_choice == "test":
            self._tone = encode_tone_loop(self.room_id)

    def _silence_packets(self) -> list[bytes]:
        if self._silence is None:
            self._silence = encode_tone_loop(None)
        return self._silence

    def _open_camera(self) -> Input:
        choice = self.camera_choice
        if choice == "test":
            assert self._test_video is not None
            return PacketLoop("camera", self._test_video, self.faults)
        dev = self.config.devices
        if choice == "test-raw":
            return RawPattern(self.room_id, dev.camera_width, dev.camera_height, dev.camera_fps, self.faults)
        path = pick("camera", choice)
        return DeviceInput(V4l2Camera(path, dev.camera_width, dev.camera_height, dev.camera_fps), path)

    def _open_microphone(self) -> Input:
        choice = self.microphone_choice
        if choice == "test":
            assert self._tone is not None
            return PacketLoop("microphone", self._tone if self.talking else self._silence_packets(), self.faults)
        return DeviceInput(SoundInput(pick("microphone", choice)), None)

    def set_talking(self, talking: bool) -> None:
        if talking == self.talking:
            return
        self.talking = talking
        current = self.audio.input
        if isinstance(current, PacketLoop) and self._tone is not None:
            current.replace(self._tone if talking else self._silence_packets())

    def audio_level(self) -> int:
        """For pre-encoded audio (raw microphone frames get theirs from aiortc's encoder)."""
        return SPEAKING_DBOV if isinstance(self.audio.input, PacketLoop) and self.talking else SILENT_DBOV

    async def check(self) -> None:
        await self.video.check()
        await self.audio.check()

    async def run(self, stop: asyncio.Event) -> None:
        """Keep looking at the devices between meetings too, so that device_ok is always current."""
        if self.camera_choice != "test" or self.config.debug.allow_device_faults:
            # A real camera can fail at any time; simulated rooms make the slate only when needed.
            await self.video.prepare_fallback()
            await self.audio.prepare_fallback()
        while not stop.is_set():
            try:
                await self.check()
            except Exception:
                log.exception("device check failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=min(1.0, self.config.devices.retry_seconds))
