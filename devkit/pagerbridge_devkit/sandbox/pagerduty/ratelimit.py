"""Per-key rate limits (Events API per routing key, REST per API token).

PagerDuty documents its REST limit per minute and reports it in ``ratelimit-limit``,
``ratelimit-remaining`` and ``ratelimit-reset`` (seconds until the window resets); a
one-minute fixed window reproduces exactly those numbers. A limit of 0 means unlimited.

For the Events API PagerDuty says only that it "dynamically" adjusts its throttle. A
:class:`TokenBucket` stands for a PagerDuty stricter than the documented 120 per minute:
``rate`` per second with a bucket ``burst`` deep, answering every 429 with ``Retry-After``
(whole seconds, as HTTP has it) until the next token.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int
    retry_after: int | None = None  # seconds, sent as Retry-After on a 429

    def headers(self) -> dict[str, str]:
        return {
            "ratelimit-limit": str(self.limit),
            "ratelimit-remaining": str(self.remaining),
            "ratelimit-reset": str(self.reset_seconds),
        }


class RateLimiter:
    """``per_minute`` requests per key per 60-second window (thread-safe)."""

    WINDOW = 60.0

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._windows: dict[str, tuple[float, int]] = {}  # key -> (window start, count)
        self._lock = threading.Lock()

    def set_limit(self, per_minute: int) -> None:
        with self._lock:
            self.per_minute = per_minute
            self._windows.clear()

    def hit(self, key: str) -> Verdict:
        now = time.monotonic()
        with self._lock:
            limit = self.per_minute
            start, count = self._windows.get(key, (now, 0))
            if now - start >= self.WINDOW:
                start, count = now, 0
            reset = max(1, math.ceil(start + self.WINDOW - now))
            if limit <= 0:
                return Verdict(True, 0, 0, reset)
            if count >= limit:
                self._windows[key] = (start, count)
                return Verdict(False, limit, 0, reset)
            self._windows[key] = (start, count + 1)
            return Verdict(True, limit, limit - count - 1, reset)


class TokenBucket:
    """``rate`` requests per second per key, at most ``burst`` at once (thread-safe)."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.per_minute = round(rate * 60)
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, stamp)
        self._lock = threading.Lock()

    def hit(self, key: str) -> Verdict:
        now = time.monotonic()
        with self._lock:
            tokens, stamp = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - stamp) * self.rate)
            if tokens < 1:
                self._buckets[key] = (tokens, now)
                wait = max(1, math.ceil((1 - tokens) / self.rate))
                return Verdict(False, self.per_minute, 0, wait, retry_after=wait)
            self._buckets[key] = (tokens - 1, now)
            return Verdict(True, self.per_minute, int(tokens - 1), 1)
