"""Per-key fixed-window rate limits (Events API per routing key, REST per API token).

PagerDuty documents its REST limit per minute and reports it in ``ratelimit-limit``,
``ratelimit-remaining`` and ``ratelimit-reset`` (seconds until the window resets); a
one-minute fixed window reproduces exactly those numbers. A limit of 0 means unlimited.
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
