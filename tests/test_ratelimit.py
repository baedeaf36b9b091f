"""The token buckets behind every rate limit of the coordinator, on a fake clock."""

from __future__ import annotations

import pytest

from coordinator.ratelimit import TokenBuckets


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_rate_per_key() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=0.5, burst=3, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(2.0)
    assert buckets.take("b") == 0.0, "another key has its own bucket"
    clock.now += 1.0
    assert buckets.wait("a") == pytest.approx(1.0)
    clock.now += 1.0
    assert buckets.take("a") == 0.0
    clock.now += 100
    assert [buckets.take("a") for _ in range(4)][-1] > 0, "refilled to the burst, not beyond"


def test_spent_failures_count_below_zero_and_wait_grows() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=0.1, burst=2, clock=clock)
    for _ in range(4):
        buckets.spend("user")
    assert buckets.wait("user") == pytest.approx(30.0)
    clock.now += 30
    assert buckets.wait("user") == 0.0


def test_memory_stays_bounded_whatever_keys_arrive() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=1, burst=1, clock=clock, max_keys=100)
    for n in range(1000):
        buckets.take(f"address-{n}")
        clock.now += 0.01
    assert len(buckets) <= 101
