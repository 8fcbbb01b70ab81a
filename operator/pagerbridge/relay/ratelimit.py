"""Token buckets for the documented upstream rate limits, plus 429 pauses.

- PagerDuty Events API v2: about 120 events per minute per routing key.
- PagerDuty REST API: 960 requests per minute per API key.
- BigPanda Incidents API: about 5 requests per second per endpoint.

A bucket holds up to ``burst`` tokens refilled at ``rate`` per second; ``acquire`` waits for
a token. When the service answers 429 anyway, ``pause`` stops the whole bucket for the
``Retry-After`` / ``ratelimit-reset`` time, so the other incidents' workers back off too;
a 5xx or connection failure penalizes it (short pause, burst emptied), so an outage
costs a trickle of probes rather than a retry storm that slows down intake.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    rate: float  # tokens per second
    burst: float


EVENTS_V2 = Limit(rate=120 / 60, burst=120)
REST_V2 = Limit(rate=960 / 60, burst=32)
BIGPANDA = Limit(rate=5.0, burst=5)


class TokenBucket:
    def __init__(self, limit: Limit, name: str = "") -> None:
        self.limit = limit
        self.name = name
        self._tokens = limit.burst
        self._stamp = time.monotonic()
        self._paused_until = 0.0

    def _refill(self, now: float) -> None:
        self._tokens = min(self.limit.burst, self._tokens + (now - self._stamp) * self.limit.rate)
        self._stamp = now

    def reserve(self) -> float:
        """Take a token; return how long the caller must wait before using it."""
        now = time.monotonic()
        self._refill(now)
        self._tokens -= 1
        wait = 0.0 if self._tokens >= 0 else -self._tokens / self.limit.rate
        return max(wait, self._paused_until - now)

    def try_take(self) -> bool:
        """Take a token only if one is free right now (nobody queued, not paused)."""
        now = time.monotonic()
        self._refill(now)
        if now < self._paused_until or self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    async def acquire(self) -> None:
        wait = self.reserve()
        if wait > 0:
            await asyncio.sleep(wait)

    def pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    def penalize(self, seconds: float) -> None:
        """The service is failing (5xx, timeouts): pause, and empty the burst so that
        afterwards attempts trickle at ``rate`` instead of a burst of retries."""
        self.pause(seconds)
        self._refill(time.monotonic())
        self._tokens = min(self._tokens, 0.0)


class RateLimiter:
    """Buckets by name (``events:<key id>``, ``rest``, ``bigpanda:<endpoint>``)."""

    def __init__(self, limits: dict[str, Limit] | None = None) -> None:
        self.limits = {"events": EVENTS_V2, "rest": REST_V2, "bigpanda": BIGPANDA}
        if limits:
            self.limits.update(limits)
        self._buckets: dict[str, TokenBucket] = {}

    def bucket(self, family: str, name: str = "") -> TokenBucket:
        key = f"{family}:{name}"
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.limits[family], key)
        return bucket
