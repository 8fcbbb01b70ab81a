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
        self._strikes = 0  # 429s without a hint in a row

    def _refill(self, now: float) -> None:
        self._tokens = min(self.limit.burst, self._tokens + (now - self._stamp) * self.limit.rate)
        self._stamp = now

    def set_limit(self, limit: Limit) -> None:
        self._refill(time.monotonic())
        self.limit = limit
        self._tokens = min(self._tokens, limit.burst)

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

    def paused_for(self) -> float:
        return max(0.0, self._paused_until - time.monotonic())

    async def acquire(self) -> None:
        wait = self.reserve()
        if wait > 0:
            await asyncio.sleep(wait)
        await self.wait_unpaused()

    async def wait_unpaused(self) -> None:
        """A pause (429) that began while a caller waited for its token applies to it too:
        otherwise every token reserved before the 429 is spent on another 429."""
        pause = self.paused_for()
        while pause > 0:  # a pause may be extended while this one is slept
            await asyncio.sleep(pause)
            pause = self.paused_for()

    def pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    def throttled(self, retry_after: float | None) -> None:
        """The service answered 429. With a hint (Retry-After, ratelimit-reset) pause that
        long; without one (PagerDuty's Events API gives none) pause 1, 2, 4 … 60 s for 429s
        in a row. Either way the burst is emptied, so afterwards requests trickle at
        ``rate``, which is what the service's limit allows: a storm costs a handful of 429s
        per minute window instead of one per token."""
        if retry_after is None:
            self._strikes += 1
            retry_after = min(60.0, 2.0 ** (self._strikes - 1))
        self.pause(retry_after)
        self._refill(time.monotonic())
        self._tokens = min(self._tokens, 0.0)

    def succeeded(self) -> None:
        self._strikes = 0

    def penalize(self, seconds: float) -> None:
        """The service is failing (5xx, timeouts): pause, and empty the burst so that
        afterwards attempts trickle at ``rate`` instead of a burst of retries."""
        self.pause(seconds)
        self._refill(time.monotonic())
        self._tokens = min(self._tokens, 0.0)


class RateLimiter:
    """Buckets by name (``events:<key id>``, ``rest``, ``bigpanda:<endpoint>``).

    ``share``: how many relay replicas deliver against the same upstream limits (a shared
    PostgreSQL outbox). Each bucket then allows ``1/share`` of the documented rate and burst,
    so the replicas together stay within it (see relay.storage.share_limits_forever)."""

    def __init__(self, limits: dict[str, Limit] | None = None) -> None:
        self.limits = {"events": EVENTS_V2, "rest": REST_V2, "bigpanda": BIGPANDA}
        if limits:
            self.limits.update(limits)
        self._buckets: dict[str, TokenBucket] = {}
        self._families: dict[str, str] = {}
        self.share = 1

    def _limit(self, family: str) -> Limit:
        base = self.limits[family]
        if self.share <= 1:
            return base
        return Limit(rate=base.rate / self.share, burst=max(1.0, base.burst / self.share))

    def bucket(self, family: str, name: str = "") -> TokenBucket:
        key = f"{family}:{name}"
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self._limit(family), key)
            self._families[key] = family
        return bucket

    def set_share(self, replicas: int) -> None:
        replicas = max(1, replicas)
        if replicas == self.share:
            return
        self.share = replicas
        for key, bucket in self._buckets.items():
            bucket.set_limit(self._limit(self._families[key]))
