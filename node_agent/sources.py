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
from av import VideoFrame
from av.frame import Frame
from av.packet import Packet

from node_agent.config import AgentConfig
from node_agent.devices import NOT_CHECKED, DeviceError, SoundInput, V4l2Camera, pick
from node_agent.encoding import (
    AUDIO_FRAME,
    AUDIO_RATE,
    SILENT_DBOV,
    VIDEO_CLOCK,
    TrackPair,
    encode_opus_tone,
    encode_vp8,
    pace,
)

log = logging.getLogger(__name__)

SLATE_MESSAGE = "Mất tín hiệu camera"


class Input(Protocol):
    """An open device. ``paced`` inputs hand out their items at once; others block in ``read``."""

    paced: bool

    def read(self) -> Packet[Any] | Frame: ...

    def alive(self) -> bool: ...

    def keyframe(self) -> bool:
        """Start again at a keyframe; False when it cannot (raw pictures: the encoder has to make one)."""
        ...

    def lower(self) -> Packet[Any] | None:
        """The item last read, in the lower quality, when it comes pre-encoded in two (test loops)."""
        ...

    def level(self) -> int | None:
        """The audio level (dBov) of pre-encoded sound; None for raw frames (the encoder measures them)."""
        ...

    def close(self) -> None: ...


class TestInputs(Protocol):
    """Inputs that stand in for the devices (``"test"`` and ``"test-raw"`` in ``[devices]``)."""

    camera_format: tuple[int, int, int]  # width, height, fps

    def camera(self) -> Input: ...

    def microphone(self) -> Input: ...


TEST_CHOICES = ("test", "test-raw")


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

    def keyframe(self) -> bool:
        return False

    def lower(self) -> None:
        return None

    def level(self) -> int | None:
        return None

    def close(self) -> None:
        self.device.close()


class LowerPicture(MediaStreamTrack):
    """The room's picture in the lower quality, fed by the camera's track as it hands out each picture:
    a raw picture scaled down (the sender's encoder makes it small), or the same moment of a pre-encoded
    loop in its lower encoding. It keeps at most two pictures: a slow sender skips, it never lags."""

    kind = "video"

    def __init__(self, width: int, height: int, bitrate: int, fallback: Callable[[], list[bytes]]) -> None:
        super().__init__()
        self.width, self.height, self.bitrate = width, height, bitrate
        self._fallback_factory = fallback
        self._fallback: list[bytes] | None = None
        self._queue: asyncio.Queue[Packet[Any] | Frame] = asyncio.Queue(maxsize=2)
        self.raw = False  # what came last: raw pictures (keyframes from the encoder) or packets
        # Set by the media peer and the camera's track: how each kind of picture starts again at a keyframe.
        self.encoder_keyframe: Callable[[], None] | None = None
        self.packets_keyframe: Callable[[], None] | None = None

    def offer(self, item: Packet[Any] | Frame, lower: Packet[Any] | None, fallback_index: int | None) -> None:
        """The camera's track handed out ``item``; ``lower`` is its pre-encoded lower quality, if any, and
        ``fallback_index`` its place in the slate's loop when it is the slate."""
        picture: Packet[Any] | Frame | None = lower
        if isinstance(item, VideoFrame):
            picture = item.reformat(width=self.width, height=self.height)
        elif fallback_index is not None:
            if self._fallback is None:
                self._fallback = self._fallback_factory()
            picture = Packet(self._fallback[fallback_index % len(self._fallback)])
        if picture is None:
            return
        self.raw = isinstance(picture, VideoFrame)
        picture.pts, picture.time_base = item.pts, item.time_base
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(picture)

    def pause(self, paused: bool) -> None:
        """Paused with the camera's track, which then feeds nothing."""

    def request_keyframe(self) -> None:
        restart = self.encoder_keyframe if self.raw else self.packets_keyframe
        if restart is not None:
            restart()

    async def recv(self) -> Packet[Any] | Frame:
        return await self._queue.get()


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
        self.problem: str | None = NOT_CHECKED
        # Set by the media peer: makes the sender's encoder start a keyframe (raw-frame inputs).
        self.encoder_keyframe: Callable[[], None] | None = None
        self.lower: LowerPicture | None = None  # fed with each picture in the lower quality

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
        elif not self._input.keyframe() and self.encoder_keyframe is not None:
            self.encoder_keyframe()  # raw pictures: the sender's encoder makes the keyframe

    async def check(self) -> None:
        """Open the device if it is closed and due for a retry; close it if it went away."""
        if self._input is not None and not self._input.alive():
            self._lost("thiết bị biến mất (bị rút ra?)")
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
        fallback_index = None
        if item is None:
            if current is not None and not current.paced:
                self._start = await pace(self._start, self._sent, self._interval)
            fallback_index = self._fallback_index
            item = await self._fallback_packet()
        item.pts = self._sent * self._step
        item.time_base = self._time_base
        self._sent += 1
        if self.lower is not None:
            lower = current.lower() if current is not None and fallback_index is None else None
            self.lower.offer(item, lower, fallback_index)
        return item


def _slate_packets(name: str, width: int, height: int, fps: int, bitrate: int = 200_000) -> list[bytes]:
    from node_agent.render import slate_picture

    rgb = slate_picture(width, height, name, SLATE_MESSAGE)
    yuv = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p").to_ndarray()
    return encode_vp8([yuv] * fps, width, height, fps, bitrate)


class RoomSource(TrackPair["FallbackTrack"]):
    """The camera and microphone the room sends, whatever state the devices are in.

    Devices set to ``"test"`` or ``"test-raw"`` are opened from ``test`` (the test source); the others
    are the laptop's own.
    """

    def __init__(
        self, config: AgentConfig, on_change: Callable[[], None] = lambda: None, test: TestInputs | None = None
    ) -> None:
        self.config = config
        dev = config.devices
        self.camera_choice = config.device_choice("camera")
        self.microphone_choice = config.device_choice("microphone")
        if test is None and (self.camera_choice in TEST_CHOICES or self.microphone_choice in TEST_CHOICES):
            raise ValueError("the devices are set to the test source but none was given")
        self._test = test
        if test is not None and self.camera_choice in TEST_CHOICES:
            width, height, fps = test.camera_format
        else:
            width, height, fps = dev.camera_width, dev.camera_height, dev.camera_fps
        self._silence: list[bytes] | None = None
        video = FallbackTrack(
            "video",
            "camera",
            self._open_camera,
            lambda: _slate_packets(config.display_name, width, height, fps),
            1 / fps,
            VIDEO_CLOCK,
            dev.retry_seconds,
            on_change,
        )
        audio = FallbackTrack(
            "audio",
            "microphone",
            self._open_microphone,
            self._silence_packets,
            AUDIO_FRAME / AUDIO_RATE,
            AUDIO_RATE,
            dev.retry_seconds,
            on_change,
        )
        media, lower = config.media, None
        if media.two_qualities:
            size = (media.low_width, media.low_height)
            lower = LowerPicture(
                *size,
                media.low_bitrate,
                lambda: _slate_packets(config.display_name, *size, fps, min(media.low_bitrate, 200_000)),
            )
            lower.packets_keyframe = video.request_keyframe  # the loops restart together at their keyframes
            video.lower = lower
        super().__init__(video, audio, media.voice, lower)

    def _silence_packets(self) -> list[bytes]:
        if self._silence is None:
            self._silence = encode_opus_tone(0, self.voice)
        return self._silence

    def _open_camera(self) -> Input:
        if self._test is not None and self.camera_choice in TEST_CHOICES:
            return self._test.camera()
        dev = self.config.devices
        path = pick("camera", self.camera_choice)
        return DeviceInput(V4l2Camera(path, dev.camera_width, dev.camera_height, dev.camera_fps), path)

    def _open_microphone(self) -> Input:
        if self._test is not None and self.microphone_choice in TEST_CHOICES:
            return self._test.microphone()
        return DeviceInput(SoundInput(pick("microphone", self.microphone_choice)), None)

    def use_encoder(self, keyframe: Callable[[], None]) -> None:
        """How to make the sender's encoder start a keyframe (for raw pictures)."""
        self.video.encoder_keyframe = keyframe

    def audio_level(self) -> int:
        """For pre-encoded audio (raw microphone frames get theirs from aiortc's encoder)."""
        current = self.audio.input
        level = current.level() if current is not None else None
        return SILENT_DBOV if level is None else level

    async def check(self) -> None:
        await self.video.check()
        await self.audio.check()

    async def run(self, stop: asyncio.Event) -> None:
        """Keep looking at the devices between meetings too, so that device_ok is always current."""
        if self.camera_choice != "test" or self.config.debug.allow_device_faults:
            # A real camera can fail at any time; simulated rooms make the slate only when needed. The
            # devices are looked at first, so that their state is known at once after a start.
            with contextlib.suppress(Exception):
                await self.check()
            try:
                await self.video.prepare_fallback()
                await self.audio.prepare_fallback()
            except Exception:
                # Without a stand-in the devices are still looked at and reported (and the stand-in
                # is tried again when a device fails).
                log.exception("cannot make the stand-in picture and sound")
        while not stop.is_set():
            try:
                await self.check()
            except Exception:
                log.exception("device check failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=min(1.0, self.config.devices.retry_seconds))
