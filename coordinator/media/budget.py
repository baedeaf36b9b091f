"""Receive budgets: a subscriber on a thin link gets the program picture only while it fits.

A commune states its budget for what the province sends it (kbit/s, from the province's inventory)
when it connects. The router forwards one quality of each picture, so the cap it can keep without
touching the publisher is to hold the picture back while picture and sound together exceed the
budget, and send it again once they fit with room to spare (no flapping at the edge). Sound always
goes: a meeting can be followed by ear. The commune is told, and shows its hall's picture meanwhile.

Rates are what each source sent over the last few seconds, counted as on the wire (payload plus the
RTP header, the SRTP tag and the UDP/IPv4 headers of each packet).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

from coordinator.media.policy import Slots

WIRE_OVERHEAD = 12 + 10 + 28  # bytes per packet besides the payload
SAMPLES = 4  # one a second: rates over the last three seconds
RESUME_BELOW = 0.85  # a held picture comes back once everything fits in this share of the budget


class ReceiveBudgets:
    def __init__(self) -> None:
        self.caps: dict[str, float] = {}  # subscriber -> bits per second
        self.held: set[str] = set()  # subscribers whose program picture is held back
        self.reasons: dict[str, str] = {}
        # The picture's source and rate when it was held back: a source nobody else receives stops sending
        # it, and its rate of 0 then says nothing about whether it would fit.
        self._held_picture: dict[str, tuple[str | None, float]] = {}
        self._history: deque[tuple[float, dict[tuple[str, str], int]]] = deque(maxlen=SAMPLES)

    def sample(self, sent: Mapping[tuple[str, str], int], now: float) -> None:
        """The wire bytes each (source, kind) has sent so far."""
        self._history.append((now, dict(sent)))

    def rate(self, source: str | None, kind: str) -> float:
        """Bits per second from ``source`` of ``kind`` lately; 0 before two samples."""
        if source is None or len(self._history) < 2:
            return 0.0
        (first_at, first), (last_at, last) = self._history[0], self._history[-1]
        return 8 * (last.get((source, kind), 0) - first.get((source, kind), 0)) / (last_at - first_at)

    def need(self, slots: Slots) -> float:
        """Bits per second of everything ``slots`` carry, lately."""
        return (
            self.rate(slots.program, "video")
            + self.rate(slots.chair_audio, "audio")
            + self.rate(slots.floor_audio, "audio")
        )

    def set_cap(self, subscriber: str, kbps: int | None) -> None:
        if kbps is None:
            self.forget(subscriber)
        else:
            self.caps[subscriber] = kbps * 1000.0

    def forget(self, subscriber: str) -> None:
        self.caps.pop(subscriber, None)
        self.held.discard(subscriber)
        self.reasons.pop(subscriber, None)
        self._held_picture.pop(subscriber, None)

    def decide(self, subscriber: str, wanted: Slots) -> bool:
        """Hold or send the picture of ``wanted`` (the slots without a cap); True when that changed."""
        cap = self.caps.get(subscriber)
        if cap is None:
            return False
        sound = self.rate(wanted.chair_audio, "audio") + self.rate(wanted.floor_audio, "audio")
        picture = self.rate(wanted.program, "video")
        if subscriber in self.held:
            source, rate_then = self._held_picture[subscriber]
            if picture == 0 and source == wanted.program:
                picture = rate_then
            need = sound + picture
            if wanted.program is not None and need > RESUME_BELOW * cap:
                return False
            self.held.discard(subscriber)
            del self._held_picture[subscriber]
            self.reasons[subscriber] = f"picture and sound {need / 1000:.0f} kbit/s fit the budget {cap / 1000:.0f}"
            return True
        need = sound + picture
        if need <= cap:
            return False
        self.held.add(subscriber)
        self._held_picture[subscriber] = (wanted.program, picture)
        self.reasons[subscriber] = (
            f"picture {picture / 1000:.0f} kbit/s and sound {sound / 1000:.0f} kbit/s exceed the budget "
            f"{cap / 1000:.0f} kbit/s"
        )
        return True
