"""The room's speaker: mixes the received sound slots (chair and floor) and plays them.

Decoded frames arrive per slot at their own pace; a 20 ms clock takes one
block from each slot, adds them and hands the sum to the speaker. A speaker
that is missing or fails is reported and retried; the received sound is then
dropped, never queued up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Protocol

import av
import numpy as np
from av import AudioFrame

from node_agent.devices import AUDIO_BLOCK, AUDIO_RATE, NOT_CHECKED, DeviceError, SoundOutput, pick

log = logging.getLogger(__name__)

MAX_BUFFERED = AUDIO_RATE // 4  # per slot; more than this is old sound, dropped


class Output(Protocol):
    def write(self, block: np.ndarray) -> None: ...

    def close(self) -> None: ...


class NullOutput:
    """The simulated room's speaker: accepts the mix and remembers how loud it was."""

    def __init__(self) -> None:
        self.blocks = 0

    def write(self, block: np.ndarray) -> None:
        self.blocks += 1

    def close(self) -> None:
        pass


class Speaker:
    def __init__(self, choice: str, retry_seconds: float, on_change: Callable[[], None]) -> None:
        self.choice = choice
        self._retry_seconds = retry_seconds
        self._retry_at = 0.0
        self._on_change = on_change
        self._output: Output | None = None
        self.problem: str | None = NOT_CHECKED
        self._buffers: dict[str, np.ndarray] = {}
        self._resamplers: dict[str, av.AudioResampler] = {}
        self.level = 0.0  # peak of the last mixed block, 0..1

    @property
    def ok(self) -> bool:
        return self._output is not None

    def _open(self) -> None:
        try:
            if self.choice == "test":
                self._output = NullOutput()
            else:
                self._output = SoundOutput(pick("speaker", self.choice))
        except DeviceError as exc:
            self._retry_at = time.monotonic() + self._retry_seconds
            if str(exc) != self.problem:
                log.warning("speaker: %s; retrying every %.0f s", exc, self._retry_seconds)
                self.problem = str(exc)
                self._on_change()
            return
        self.problem = None
        log.info("speaker: device working")
        self._on_change()

    def _lost(self, why: str) -> None:
        if self._output is not None:
            with contextlib.suppress(Exception):
                self._output.close()
        self._output = None
        self.problem = why
        self._retry_at = time.monotonic() + self._retry_seconds
        log.warning("speaker lost: %s", why)
        self._on_change()

    def check(self) -> None:
        if self._output is None and time.monotonic() >= self._retry_at:
            self._open()

    def feed(self, slot: str, frame: AudioFrame) -> None:
        """Add a decoded frame of one slot (any rate and layout) to that slot's buffer."""
        resampler = self._resamplers.get(slot)
        if resampler is None:
            resampler = self._resamplers[slot] = av.AudioResampler(format="s16", layout="stereo", rate=AUDIO_RATE)
        parts = [self._buffers.get(slot, np.zeros((0, 2), np.int16))]
        for out in resampler.resample(frame):
            parts.append(out.to_ndarray().reshape(-1, 2))
        joined = np.concatenate(parts)
        self._buffers[slot] = joined[-MAX_BUFFERED:]

    def mix(self) -> np.ndarray:
        """One 20 ms stereo block: the sum of every slot's next block (silence where a slot is dry)."""
        total = np.zeros((AUDIO_BLOCK, 2), np.int32)
        for slot, buffer in self._buffers.items():
            take = buffer[:AUDIO_BLOCK]
            total[: take.shape[0]] += take
            self._buffers[slot] = buffer[AUDIO_BLOCK:]
        block = np.clip(total, -32768, 32767).astype(np.int16)
        self.level = float(np.abs(block).max(initial=0)) / 32768.0
        return block

    def forget(self) -> None:
        self._buffers.clear()
        self._resamplers.clear()

    async def run(self, stop: asyncio.Event) -> None:
        interval = AUDIO_BLOCK / AUDIO_RATE
        start = time.monotonic()
        ticks = 0
        while not stop.is_set():
            self.check()
            ticks += 1
            block = self.mix() if self._buffers else None
            if block is not None and self._output is not None:
                try:
                    self._output.write(block)
                except DeviceError as exc:
                    self._lost(str(exc))
            due = start + ticks * interval
            now = time.monotonic()
            if now - due > 1.0:
                start, ticks = now, 0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(0.0, due - now))
        if self._output is not None:
            self._output.close()
