"""BigPanda's rate limit: about 5 requests/s per endpoint, then 429 (no Retry-After).

One token bucket per route template ("POST .../incidents/{id}/comments" is one
endpoint whatever the id), holding at most one second's worth of requests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Thread-safe; ``rate=None`` turns limiting off."""

    def __init__(
        self, rate: float | None = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._lock = threading.Lock()
        self._rate = rate
        self._clock = clock  # tests pass their own, so refills never depend on machine speed
        self._buckets: dict[str, _Bucket] = {}

    @property
    def rate(self) -> float | None:
        return self._rate

    def set_rate(self, rate: float | None) -> None:
        """Change the limit (requests/s per endpoint); buckets start full again."""
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive (or None for no limit)")
        with self._lock:
            self._rate = rate
            self._buckets.clear()

    def allow(self, endpoint: str) -> bool:
        with self._lock:
            rate = self._rate
            if rate is None:
                return True
            now = self._clock()
            capacity = max(1.0, rate)
            bucket = self._buckets.setdefault(endpoint, _Bucket(capacity, now))
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return True
            return False
