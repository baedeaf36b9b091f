"""Token buckets per key (a room, an address, a user name): ``burst`` at once, then ``rate`` per second.

Small on purpose: one process, in memory, a monotonic clock. A key whose bucket
is full again carries no information, so such keys are dropped when the table
grows past ``max_keys``: memory stays bounded whatever keys a client invents.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable


class TokenBuckets:
    def __init__(
        self,
        rate: float,
        burst: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[Hashable, tuple[float, float]] = {}  # key -> (tokens, at)

    def _tokens(self, key: Hashable, now: float) -> float:
        tokens, at = self._buckets.get(key, (self.burst, now))
        return min(self.burst, tokens + (now - at) * self.rate)

    def wait(self, key: Hashable, cost: float = 1.0) -> float:
        """Seconds until ``cost`` tokens are there (0 when they are now); takes nothing."""
        missing = cost - self._tokens(key, self._clock())
        return max(0.0, missing / self.rate)

    def take(self, key: Hashable, cost: float = 1.0) -> float:
        """Take ``cost`` tokens and return 0, or take nothing and return the seconds to wait."""
        now = self._clock()
        tokens = self._tokens(key, now)
        if tokens < cost:
            return (cost - tokens) / self.rate
        self._buckets[key] = (tokens - cost, now)
        if len(self._buckets) > self._max_keys:
            self._prune(now)
        return 0.0

    def spend(self, key: Hashable, cost: float = 1.0) -> None:
        """Take ``cost`` tokens even below zero (a failure already happened and has to count)."""
        now = self._clock()
        self._buckets[key] = (max(-self.burst, self._tokens(key, now) - cost), now)
        if len(self._buckets) > self._max_keys:
            self._prune(now)

    def forget(self, key: Hashable) -> None:
        self._buckets.pop(key, None)

    def _prune(self, now: float) -> None:
        for key in [k for k in self._buckets if self._tokens(k, now) >= self.burst]:
            del self._buckets[key]
        if len(self._buckets) > self._max_keys:  # all busy: the least recently used half goes
            by_age = sorted(self._buckets, key=lambda k: self._buckets[k][1])
            for key in by_age[: len(by_age) - self._max_keys // 2]:
                del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)
