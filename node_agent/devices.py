"""The laptop's cameras, microphones and speakers: what exists, and thin openers for them.

Cameras are V4L2 devices, read through OpenCV (PyAV's bundled FFmpeg has no
v4l2 input); sound goes through PortAudio (sounddevice, with Debian's
libportaudio2), which reaches ALSA devices and, through ALSA's default
device, PulseAudio or PipeWire. Every opener raises :class:`DeviceError` with
a message a technician can act on; nothing here retries (``sources`` does).
"""

from __future__ import annotations

import logging
import re
import threading
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from av import AudioFrame, VideoFrame

log = logging.getLogger(__name__)

V4L2_SYSFS = Path("/sys/class/video4linux")
AUDIO_RATE = 48000
AUDIO_BLOCK = 960  # 20 ms, one Opus frame


# What a running agent says of a device it has not tried to open yet (it opens them when it needs them).
NOT_CHECKED = "chưa kiểm tra"


class DeviceError(Exception):
    """A device is missing or failed; the message says which and what to do."""


@dataclass
class DeviceInfo:
    kind: str  # camera, microphone, speaker
    name: str  # what to put in the config
    description: str
    default: bool = False


@dataclass
class DeviceList:
    cameras: list[DeviceInfo] = field(default_factory=list)
    microphones: list[DeviceInfo] = field(default_factory=list)
    speakers: list[DeviceInfo] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_cameras(sysfs: Path = V4L2_SYSFS) -> list[DeviceInfo]:
    """V4L2 capture nodes, from sysfs (a UVC camera has a second, metadata-only node: index 0 is video)."""
    cameras = []
    for node in sorted(sysfs.glob("video*"), key=lambda p: int(re.sub(r"\D", "", p.name) or 0)):
        try:
            index = (node / "index").read_text().strip()
            name = (node / "name").read_text().strip()
        except OSError:
            continue
        if index not in ("", "0"):
            continue
        cameras.append(DeviceInfo("camera", f"/dev/{node.name}", name))
    if cameras:
        cameras[0].default = True
    return cameras


def _sounddevice() -> Any:
    try:
        import sounddevice
    except OSError as exc:  # PortAudio itself is missing
        raise DeviceError(
            f"chưa cài PortAudio ({exc}): cài gói Debian libportaudio2 (chạy lại rooms.yml cho phòng này)"
        ) from exc
    return sounddevice


def list_sound() -> tuple[list[DeviceInfo], list[DeviceInfo]]:
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
        default_in, default_out = sd.default.device
    except Exception as exc:
        raise DeviceError(f"không liệt kê được thiết bị âm thanh: {exc}") from exc
    microphones, speakers = [], []
    for index, device in enumerate(devices):
        api = sd.query_hostapis(device["hostapi"])["name"]
        description = f"{device['name']} ({api})"
        if device["max_input_channels"] > 0:
            microphones.append(DeviceInfo("microphone", device["name"], description, index == default_in))
        if device["max_output_channels"] > 0:
            speakers.append(DeviceInfo("speaker", device["name"], description, index == default_out))
    return microphones, speakers


def list_devices() -> DeviceList:
    found = DeviceList(cameras=list_cameras())
    if not found.cameras:
        found.problems.append("không thấy camera V4L2 nào (/dev/video*)")
    try:
        found.microphones, found.speakers = list_sound()
    except DeviceError as exc:
        found.problems.append(str(exc))
    return found


_NONE_FOUND = {
    "microphone": "không thấy micro nào: cắm micro vào hoặc kiểm tra cài đặt âm thanh (pactl list short sources)",
    "speaker": "không thấy loa nào: cắm loa hoặc TV (HDMI) vào hoặc kiểm tra cài đặt âm thanh (pactl list short sinks)",
}


def pick(kind: str, choice: str) -> str:
    """Resolve "auto" to a device name; raise DeviceError when there is none."""
    if choice != "auto":
        return choice
    if kind == "camera":
        cameras = list_cameras()
        if not cameras:
            raise DeviceError("không thấy camera nào (không có thiết bị ghi hình /dev/video*): cắm camera USB vào")
        return cameras[0].name
    microphones, speakers = list_sound()
    candidates = microphones if kind == "microphone" else speakers
    if not candidates:
        raise DeviceError(_NONE_FOUND[kind])
    return next((d.name for d in candidates if d.default), candidates[0].name)


class V4l2Camera:
    """One open V4L2 camera; ``read`` blocks for the next picture (call it from a thread)."""

    def __init__(self, path: str, width: int, height: int, fps: int) -> None:
        import cv2

        resolved = Path(path).resolve()
        match = re.fullmatch(r"/dev/video(\d+)", str(resolved))
        if not resolved.exists() or match is None:
            raise DeviceError(
                f"camera {path} không tồn tại: cắm camera USB vào hoặc sửa mục [devices] camera trong agent.toml"
            )
        self._cv2 = cv2
        self._capture = cv2.VideoCapture(int(match.group(1)), cv2.CAP_V4L2)
        if not self._capture.isOpened():
            raise DeviceError(
                f"không mở được camera {path} (chương trình khác đang dùng, hoặc thiếu quyền: "
                "thêm người dùng của agent vào nhóm video)"
            )
        self._capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        self._capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        self._capture.set(cv2.CAP_PROP_FPS, fps)
        self.path = path

    def read(self) -> VideoFrame:
        ok, picture = self._capture.read()
        if not ok or picture is None:
            raise DeviceError(f"camera {self.path} ngừng gửi hình (bị rút ra?)")
        return VideoFrame.from_ndarray(np.asarray(picture, dtype=np.uint8), format="bgr24")

    def close(self) -> None:
        self._capture.release()


class SoundInput:
    """A PortAudio capture stream; ``read`` returns 20 ms frames (call it from a thread)."""

    def __init__(self, name: str) -> None:
        sd = _sounddevice()
        try:
            self._stream = sd.InputStream(
                device=name, samplerate=AUDIO_RATE, channels=1, dtype="int16", blocksize=AUDIO_BLOCK
            )
            self._stream.start()
        except Exception as exc:
            raise DeviceError(f"không mở được micro {name!r}: {exc}") from exc
        self.name = name

    def read(self) -> AudioFrame:
        try:
            block, _overflowed = self._stream.read(AUDIO_BLOCK)
        except Exception as exc:
            raise DeviceError(f"micro {self.name!r} ngừng hoạt động: {exc}") from exc
        stereo = np.repeat(np.asarray(block, dtype=np.int16).reshape(-1), 2).reshape(1, -1)
        frame = AudioFrame.from_ndarray(stereo, format="s16", layout="stereo")
        frame.sample_rate = AUDIO_RATE
        return frame

    def close(self) -> None:
        self._stream.close()


class SoundOutput:
    """A PortAudio playback stream fed from a queue of 20 ms blocks; silence when the queue runs dry."""

    def __init__(self, name: str) -> None:
        sd = _sounddevice()
        self.name = name
        self.failed: str | None = None
        self._blocks: deque[np.ndarray] = deque(maxlen=25)  # at most half a second queued
        self._lock = threading.Lock()
        try:
            self._stream = sd.OutputStream(
                device=name,
                samplerate=AUDIO_RATE,
                channels=2,
                dtype="int16",
                blocksize=AUDIO_BLOCK,
                callback=self._callback,
                finished_callback=self._finished,
            )
            self._stream.start()
        except Exception as exc:
            raise DeviceError(f"không mở được loa {name!r}: {exc}") from exc

    def _callback(self, out: np.ndarray, frames: int, _time: Any, status: Any) -> None:
        with self._lock:
            block = self._blocks.popleft() if self._blocks else None
        if block is None or block.shape[0] != frames:
            out.fill(0)
            if block is not None:
                count = min(frames, block.shape[0])
                out[:count] = block[:count]
        else:
            out[:] = block

    def _finished(self) -> None:
        if self.failed is None:
            self.failed = f"loa {self.name!r} ngừng hoạt động"

    def write(self, block: np.ndarray) -> None:
        """Queue one stereo int16 block (AUDIO_BLOCK x 2)."""
        if self.failed is not None or not self._stream.active:
            raise DeviceError(self.failed or f"loa {self.name!r} ngừng hoạt động")
        with self._lock:
            self._blocks.append(block)

    def close(self) -> None:
        self._stream.close()
