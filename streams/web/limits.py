"""Per-API-key rate limiting: one token bucket per key.

A bucket holds at most ``burst`` tokens and refills at ``rate`` tokens per second; each request takes one.
An empty bucket answers how long until the next token, which the API sends as ``Retry-After`` (whole
seconds, rounded up, at least 1) with a 429. Buckets live in this process: with several workers each
enforces its own share, so configure ``rate`` per worker. Idle buckets are dropped so memory stays bounded
however many keys call.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RateLimit", "RateLimiter"]


@dataclass(frozen=True, slots=True)
class RateLimit:
    """:param rate: tokens added per second (sustained requests/s). :param burst: bucket size."""

    rate: float = 20.0
    burst: int = 40

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")


class RateLimiter:
    """Token buckets by key; :meth:`acquire` returns 0.0 when allowed, else the seconds to wait."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic, max_keys: int = 10_000) -> None:
        self.limit = limit
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key → (tokens, last refill time)

    def acquire(self, key: str) -> float:
        now = self._clock()
        tokens, last = self._buckets.get(key, (float(self.limit.burst), now))
        tokens = min(float(self.limit.burst), tokens + (now - last) * self.limit.rate)
        if tokens >= 1.0:
            self._store(key, tokens - 1.0, now)
            return 0.0
        self._store(key, tokens, now)
        return (1.0 - tokens) / self.limit.rate

    @staticmethod
    def retry_after(wait_s: float) -> str:
        """The ``Retry-After`` header value for a wait: whole seconds, rounded up, at least 1."""
        return str(max(1, math.ceil(wait_s)))

    def _store(self, key: str, tokens: float, now: float) -> None:
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self._max_keys:
            full_after = self.limit.burst / self.limit.rate
            self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}
