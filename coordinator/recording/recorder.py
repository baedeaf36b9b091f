"""A meeting's recorder: one more subscriber of its router, writing WebM pieces.

The program picture's VP8 is written as it arrives: frames are put together
from the RTP packets the program slot sends it (switches of source already made
seamless there, at keyframes), never decoded. The chair's and the floor's sound
are decoded, mixed every 20 ms and written as one Opus track. Both follow the
wall clock from the piece's start, so they stay together. A piece is closed at a
keyframe once it is ``piece_seconds`` long: a crash loses nothing already
closed, and the piece in progress still plays up to about a second before the
crash (Matroska clusters of a second, flushed as they are complete).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import struct
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from fractions import Fraction
from functools import partial
from pathlib import Path

import av
import numpy as np
from aiortc.codecs.opus import OpusDecoder
from aiortc.codecs.vpx import vp8_depayload
from aiortc.jitterbuffer import JitterFrame
from numpy.typing import NDArray

from coordinator.media.rewriter import SendPacket
from coordinator.models import utcnow
from phonghop.vp8 import inspect

log = logging.getLogger(__name__)

AUDIO_RATE = 48000
AUDIO_FRAME = 960  # 20 ms
VIDEO_CLOCK = 90000
SOUND_BITRATE = 32000  # voice, mono
MAX_QUEUED = 10  # 200 ms of a slot's sound waiting to be mixed; more is dropped (the source runs fast)
SILENCE = np.zeros(AUDIO_FRAME, dtype=np.int16)


def vp8_size(frame: bytes) -> tuple[int, int] | None:
    """Width and height from a VP8 keyframe's header (RFC 6386, 9.1); None for an interframe."""
    if len(frame) < 10 or frame[0] & 1 or frame[3:6] != b"\x9d\x01\x2a":
        return None
    width, height = struct.unpack("<HH", frame[6:10])
    return width & 0x3FFF, height & 0x3FFF


class Piece:
    """One WebM file of a recording."""

    def __init__(self, path: Path, width: int, height: int) -> None:
        self.path = path
        self.started = time.monotonic()
        # Clusters of at most a second, each on disk as soon as it is complete: a crash loses about a second.
        self.container = av.open(
            str(path),
            "w",
            format="webm",
            options={"cluster_time_limit": "1000"},
            container_options={"flush_packets": "1"},
        )
        self.video = self.container.add_stream("libvpx", rate=30)
        self.video.width, self.video.height = width, height
        self.video.time_base = Fraction(1, VIDEO_CLOCK)
        self.audio = self.container.add_stream("libopus", rate=AUDIO_RATE, layout="mono")
        self.audio.bit_rate = SOUND_BITRATE
        self.audio_frames = 0
        self._last_pts = -1

    def write_video(self, frame: bytes, keyframe: bool) -> None:
        pts = max(self._last_pts + 1, round((time.monotonic() - self.started) * VIDEO_CLOCK))
        self._last_pts = pts
        packet = av.Packet(frame)
        packet.stream = self.video
        packet.pts = packet.dts = pts
        packet.time_base = Fraction(1, VIDEO_CLOCK)
        packet.is_keyframe = keyframe
        self.container.mux(packet)

    def sound_due(self) -> int:
        """20 ms frames of sound the wall clock says are due and not yet written."""
        return int((time.monotonic() - self.started) * AUDIO_RATE / AUDIO_FRAME) - self.audio_frames

    def write_sound(self, samples: NDArray[np.int16]) -> None:
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = self.audio_frames * AUDIO_FRAME
        self.audio_frames += 1
        for packet in self.audio.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        with contextlib.suppress(Exception):  # a full disk must not take the meeting with it
            for packet in self.audio.encode(None):
                self.container.mux(packet)
        self.container.close()


class Recorder:
    """Records one running occurrence into ``folder``; ``ask_keyframe`` asks the program's source for one."""

    def __init__(
        self,
        folder: Path,
        occurrence: int,
        piece_seconds: float,
        ask_keyframe: Callable[[], None],
        min_free_bytes: int = 0,
    ) -> None:
        self.folder = folder
        self.occurrence = occurrence
        self.piece_seconds = piece_seconds
        self.min_free_bytes = min_free_bytes  # under this much free space recording stops, the meeting goes on
        self._ask_keyframe = ask_keyframe
        self.piece: Piece | None = None
        self.pieces: list[Path] = []
        self.closed_bytes = 0
        self.failed: str | None = None  # why recording stopped, if it did
        self._parts: list[bytes] | None = None  # the frame being put together
        self._frame_ts = 0
        self._next_seq = 0
        self._decoders = [OpusDecoder(), OpusDecoder()]
        self._sound: list[deque[NDArray[np.int16]]] = [deque(maxlen=MAX_QUEUED), deque(maxlen=MAX_QUEUED)]
        self.sends: dict[str, SendPacket] = {
            "program": self._video,
            "chair_audio": partial(self._audio, 0),
            "floor_audio": partial(self._audio, 1),
        }
        self._ticker: asyncio.Task[None] | None = None

    @property
    def recording(self) -> bool:
        return self.piece is not None

    @property
    def bytes_written(self) -> int:
        current = self.piece.path.stat().st_size if self.piece is not None and self.piece.path.exists() else 0
        return self.closed_bytes + current

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._ticker = asyncio.create_task(self._mix_forever(), name=f"recorder-{self.occurrence}")
        self._ask_keyframe()

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        self._close_piece()

    # --- what the router sends ------------------------------------------------

    def _video(self, seq: int, ts: int, marker: int, payload: bytes) -> int:
        info = inspect(payload)
        if info.frame_start:
            self._parts, self._frame_ts = [payload], ts
        elif self._parts is not None and ts == self._frame_ts and seq == self._next_seq:
            self._parts.append(payload)
        else:
            self._parts = None  # a packet missing: this frame is lost, the next keyframe mends the picture
            self._ask_keyframe()
        self._next_seq = (seq + 1) & 0xFFFF
        if marker and self._parts is not None:
            frame = b"".join(vp8_depayload(part) for part in self._parts)
            self._parts = None
            self._frame(frame)
        return len(payload)

    def _audio(self, slot: int, seq: int, ts: int, marker: int, payload: bytes) -> int:
        for frame in self._decoders[slot].decode(JitterFrame(data=payload, timestamp=ts)):
            assert isinstance(frame, av.AudioFrame)
            samples = frame.to_ndarray().reshape(-1, len(frame.layout.channels))  # packed: samples x channels
            self._sound[slot].append(samples.mean(axis=1).astype(np.int16))
        return len(payload)

    # --- writing -----------------------------------------------------------------

    def _frame(self, frame: bytes) -> None:
        if self.failed is not None:
            return
        if self.piece is None and self._disk_low():
            return
        size = vp8_size(frame)
        try:
            if size is not None and (self.piece is None or time.monotonic() - self.piece.started >= self.piece_seconds):
                self._close_piece()
                self._open_piece(*size)
            if self.piece is not None:
                self.piece.write_video(frame, size is not None)
            elif size is None:
                self._ask_keyframe()
            if self.piece is not None and time.monotonic() - self.piece.started >= self.piece_seconds:
                self._ask_keyframe()  # the next piece starts at the next keyframe
        except OSError as exc:
            self._stop(f"cannot write {self.folder}: {exc}")

    def _open_piece(self, width: int, height: int) -> None:
        name = f"{utcnow():%Y%m%dT%H%M%SZ}-lan-{self.occurrence}-{len(self.pieces) + 1:03d}.webm"
        self.piece = Piece(self.folder / name, width, height)
        self.pieces.append(self.piece.path)
        log.info("recording occurrence %s into %s (%dx%d)", self.occurrence, self.piece.path, width, height)

    def _close_piece(self) -> None:
        piece, self.piece = self.piece, None
        if piece is not None:
            piece.close()
            self.closed_bytes += piece.path.stat().st_size if piece.path.exists() else 0

    def _stop(self, reason: str) -> None:
        """Recording ends; the meeting goes on."""
        self.failed = reason
        log.error("recording of occurrence %s stopped: %s", self.occurrence, reason)
        with contextlib.suppress(Exception):
            self._close_piece()
        self.piece = None

    def _disk_low(self) -> bool:
        """Stops the recording when the disk is nearly full; True then."""
        free = shutil.disk_usage(self.folder).free
        if free >= self.min_free_bytes:
            return False
        floor = self.min_free_bytes // 1048576
        self._stop(f"only {free // 1048576} MB free on the recordings' disk (the floor is {floor} MB)")
        return True

    async def _mix_forever(self) -> None:
        ticks = 0
        while True:
            await asyncio.sleep(AUDIO_FRAME / AUDIO_RATE)
            ticks += 1
            if self.piece is not None and ticks % 50 == 0 and self._disk_low():  # once a second
                continue
            piece = self.piece
            if piece is None:
                for queue in self._sound:
                    queue.clear()
                continue
            try:
                for _ in range(piece.sound_due()):
                    mixed = sum((q.popleft() if q else SILENCE).astype(np.int32) for q in self._sound)
                    piece.write_sound(np.clip(mixed, -32768, 32767).astype(np.int16))
            except OSError as exc:
                self._stop(f"cannot write {self.folder}: {exc}")


def started_of(piece: Path) -> datetime | None:
    """When a piece started, from its name."""
    try:
        return datetime.strptime(piece.name.split("-lan-")[0], "%Y%m%dT%H%M%SZ").replace(tzinfo=utcnow().tzinfo)
    except ValueError:
        return None
