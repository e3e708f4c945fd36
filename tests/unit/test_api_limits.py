"""Token-bucket rate limiting per API key."""

from __future__ import annotations

import pytest

from streams.web.limits import RateLimit, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refill_at_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(RateLimit(rate=2.0, burst=3), clock=clock)
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.acquire("a")
    assert wait == pytest.approx(0.5)
    assert limiter.acquire("b") == 0.0  # buckets are per key
    clock.now += 0.5
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") == pytest.approx(0.5)
    clock.now += 60
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]  # never above burst
    assert limiter.acquire("a") > 0


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert RateLimiter.retry_after(0.01) == "1"
    assert RateLimiter.retry_after(1.2) == "2"


def test_idle_buckets_are_dropped() -> None:
    clock = Clock()
    limiter = RateLimiter(RateLimit(rate=1.0, burst=2), clock=clock, max_keys=10)
    for i in range(10):
        limiter.acquire(f"k{i}")
    clock.now += 5
    limiter.acquire("new")
    assert len(limiter._buckets) <= 2


def test_bad_limits_refused() -> None:
    with pytest.raises(ValueError):
        RateLimit(rate=0)
    with pytest.raises(ValueError):
        RateLimit(burst=0)
