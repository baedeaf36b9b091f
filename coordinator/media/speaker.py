"""The active speaker, from the audio-level header of each room's packets, with hysteresis.

Levels are RFC 6464 values (0 = loudest, 127 = silence). A room takes over
only when it has been clearly louder than the current speaker for a while,
so a cough does not switch every TV in the commune.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

SPEECH_THRESHOLD = 50  # -50 dBov or louder counts as speech
SWITCH_MARGIN = 6.0  # dB louder than the current speaker
HOLD_SECONDS = 1.5  # how long a challenger must stay louder
SMOOTHING = 0.2


@dataclass
class _Level:
    loudness: float = 0.0  # smoothed 127 - level: 0 is silence
    louder_since: float | None = None


@dataclass
class ActiveSpeaker:
    current: str | None = None
    _levels: dict[str, _Level] = field(default_factory=dict)

    def observe(self, room: str, level: int, now: float | None = None) -> bool:
        """Feed one packet's level; True when the active speaker changed."""
        now = time.monotonic() if now is None else now
        state = self._levels.setdefault(room, _Level())
        state.loudness += SMOOTHING * ((127 - level) - state.loudness)
        if room == self.current or state.loudness < 127 - SPEECH_THRESHOLD:
            state.louder_since = None
            return False
        current = self._levels.get(self.current) if self.current else None
        if current is not None and state.loudness < current.loudness + SWITCH_MARGIN:
            state.louder_since = None
            return False
        if state.louder_since is None:
            state.louder_since = now
            return False
        if now - state.louder_since < HOLD_SECONDS:
            return False
        self.current = room
        state.louder_since = None
        return True

    def forget(self, room: str) -> None:
        self._levels.pop(room, None)
        if self.current == room:
            self.current = None
