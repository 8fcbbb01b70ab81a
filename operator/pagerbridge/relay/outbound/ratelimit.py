"""Upstream rate limits as the services state them, shared by every replica, and learned.

- PagerDuty Events API v2: 120 events per minute per routing key.
- PagerDuty REST API: 960 requests per minute per API key.
- BigPanda Incidents API: 5 requests per second per endpoint.

Why this shape:

- **A window, not a bucket twice its size.** A token bucket of burst 120 refilled at 2/s
  lets 240 events through in a minute. Here a :class:`Limit` says "at most ``count`` in
  any ``window`` seconds" and is kept as a GCRA schedule (:mod:`pagerbridge.relay.outbox.
  rates`) whose ``interval`` and burst are derived from it: ``burst + window / interval
  <= count``, with ``margin`` seconds more in the window for the time between reserving a
  request's slot and its arrival upstream. So the limit holds *where it is counted*, at
  the service, not just where requests are scheduled.
- **Paced, not bursty.** The default burst is 1: a storm leaves at the sustained rate from
  its first request. PagerDuty says it adjusts its throttle "dynamically"; a bucket
  stricter than documented (2 per second, burst 2) then never sees the burst that a
  120-deep bucket would have fired at it, and the drain still runs at the limit's rate.
- **One schedule for all replicas.** With PostgreSQL the schedule is a row in the database,
  reserved atomically by whichever replica sends next; replicas configured alike (the same
  limit) share it, so together they keep to the limit. SQLite: one process, in memory.
  A process has at most one reservation per bucket waiting for its slot, so what a 429
  teaches applies to the next request of every replica.
- **Learned from 429s.** ``Retry-After`` (or ``ratelimit-reset``) pauses the bucket for
  every replica; without one, 1, 2, 4 … 60 s for 429s in a row. The *spacing* of 429s
  measures the real limit: requests accepted between two 429s divided by the time between
  them is the rate the service sustains; the interval becomes that (plus 5 %) and decays
  back to the documented one with a half-life of :data:`HALF_LIFE_WINDOWS` windows.
- **Slots go stale.** A slot is reserved before the request waits for a delivery slot;
  one used more than half the margin after it came (a hung upstream held the delivery
  slots, say) would crowd a later window where the service counts, so it is given up and
  a fresh one taken (:meth:`TokenBucket.fresh`).
- A 5xx or a connection failure pauses the bucket briefly and empties its burst, so an
  outage costs a trickle of probes rather than a retry storm.

Bucket names hold hashes of routing keys and API tokens, never the secrets.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from pagerbridge.relay import options
from pagerbridge.relay.outbox.port import OutboxClosed
from pagerbridge.relay.outbox.rates import LocalRates, RateRow, RateStore

logger = logging.getLogger(__name__)

# A learned interval decays back to the documented one with this half-life (in windows).
HALF_LIFE_WINDOWS = 5.0
# 429s further apart than this many windows say nothing about the rate between them.
LEARN_HORIZON_WINDOWS = 2.0
LEARN_MARGIN = 1.05
MAX_HINTLESS_PAUSE = 60.0
STORE_RETRY = 1.0  # seconds between reservation attempts while the shared store is down
MAX_GRANTS = 4096  # slots remembered per bucket before stale ones are forgotten


class Family(StrEnum):
    """The upstream budgets; a bucket is ``<family>:<name>``."""

    EVENTS = "events"  # name: hash of the routing key
    REST = "rest"  # name: hash of the PagerDuty API key
    BIGPANDA = "bigpanda"  # name: the endpoint (get, resolve, comments)


@dataclass(frozen=True)
class Limit:
    """At most ``count`` requests in any ``window`` seconds, ``burst`` of them at once.

    ``margin``: seconds added to the window when pacing, for the time between a slot and
    the request's arrival (so the limit also holds as the service counts it)."""

    count: int
    window: float = 60.0
    burst: int = 1
    margin: float = 1.0

    @property
    def depth(self) -> int:
        return max(1, min(self.burst, self.count))

    @property
    def interval(self) -> float:
        """Seconds between requests at the sustained rate: ``depth + (window + margin) /
        interval <= count``."""
        return (self.window + self.margin) / max(self.count - self.depth, 1)

    @property
    def label(self) -> str:
        return f"{self.count}/{self.window:g}s/{self.depth}"


EVENTS_V2 = Limit(options.EVENTS_PER_WINDOW, options.EVENTS_WINDOW, burst=options.EVENTS_BURST)
REST_V2 = Limit(options.REST_PER_MINUTE, 60.0, burst=32)
BIGPANDA = Limit(options.BIGPANDA_PER_SECOND, 1.0, margin=0.1)
DEFAULT_LIMITS: Mapping[Family, Limit] = {
    Family.EVENTS: EVENTS_V2,
    Family.REST: REST_V2,
    Family.BIGPANDA: BIGPANDA,
}


def secret_id(secret: str) -> str:
    """A short non-reversible name for a secret (bucket names, never logged values)."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def effective_interval(limit: Limit, row: RateRow | None, now: float) -> float:
    """The documented interval, or a learned longer one decaying back to it."""
    base = limit.interval
    if row is None or row.learned <= base:
        return base
    age = max(0.0, now - row.learned_at)
    decay: float = 0.5 ** (age / (HALF_LIFE_WINDOWS * limit.window))
    return base + (row.learned - base) * decay


def learned_interval(limit: Limit, row: RateRow | None, now: float) -> float:
    """What a 429 now teaches, given the bucket's state before it: the service's own rate
    when the previous 429 was recent and requests were accepted in between, else the
    interval in force (a 429 right after a 429 says the service's bucket is empty, not how
    fast it refills)."""
    current = effective_interval(limit, row, now)
    if row is None or row.last_429 <= 0:
        return current
    accepted = row.sent - 1  # the reservation of the refused request is counted too
    spacing = now - row.last_429
    if accepted < 2 or spacing > LEARN_HORIZON_WINDOWS * limit.window:
        return current
    return max(limit.interval, spacing / accepted * LEARN_MARGIN)


class TokenBucket:
    """One budget's schedule in the store, as this process uses it."""

    def __init__(self, limit: Limit, name: str, store: RateStore) -> None:
        self.limit = limit
        self.name = name
        # Replicas configured alike share the row; a differently configured one has its own.
        self.key = f"{name}@{limit.label}"
        self._store = store
        self._row: RateRow | None = None
        self._paused_until = 0.0  # time.monotonic()
        self._strikes = 0  # 429s without a hint in a row
        self._lock = asyncio.Lock()
        self._granted: dict[int, float] = {}  # holder (job id) -> time.monotonic() of its slot

    @property
    def hold(self) -> float:
        """How long after its slot a reserved request may still be made."""
        return self.limit.margin / 2

    def grant(self, holder: int) -> None:
        """``holder``'s slot has come (after :meth:`acquire`)."""
        now = time.monotonic()
        if len(self._granted) >= MAX_GRANTS:
            self._granted = {k: v for k, v in self._granted.items() if now - v <= self.hold}
        self._granted[holder] = now

    def fresh(self, holder: int) -> bool:
        """Whether ``holder``'s slot may still be used (see the module docstring)."""
        at = self._granted.get(holder)
        return at is not None and time.monotonic() - at <= self.hold

    def used(self, holder: int) -> None:
        self._granted.pop(holder, None)

    def interval(self) -> float:
        return effective_interval(self.limit, self._row, time.time())

    def _tolerance(self, interval: float) -> float:
        return (self.limit.depth - 1) * interval

    def _seen(self, row: RateRow) -> None:
        self._row = row
        if row.paused_until > row.now:
            self._pause_local(row.paused_until - row.now)

    def _pause_local(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    async def acquire(self, unless: Callable[[], Awaitable[bool]] | None = None) -> bool:
        """Wait for this process's next slot in the shared schedule (one reservation per
        process waits at a time: later callers queue here, not in the store). ``unless``
        is asked when the caller's turn has come, just before the slot is taken: True
        takes none (the request will not be made after all) and returns False."""
        async with self._lock:
            if unless is not None and await unless():
                return False
            while True:
                interval = self.interval()
                try:
                    row = await self._store.rate_reserve(
                        self.key, interval, self._tolerance(interval)
                    )
                    break
                except OutboxClosed:
                    await asyncio.sleep(STORE_RETRY)
            self._seen(row)
            wait = row.slot - row.now
            if wait > 0:
                await asyncio.sleep(wait)
        if self.paused_for() > 0:
            # The slot fell into a pause (a 429 meanwhile): after it, a fresh one.
            await self.wait_unpaused()
            return await self.acquire(unless)
        return True

    def try_take(self) -> bool:
        """Take a slot only if one is free right now and that can be known without a
        round trip (in-process state); else the caller waits for one with :meth:`acquire`."""
        if not isinstance(self._store, LocalRates) or self._lock.locked():
            return False
        if self.paused_for() > 0:
            return False
        interval = self.interval()
        row = self._store.reserve_now(self.key, interval, self._tolerance(interval))
        if row is None:
            return False
        self._seen(row)
        return True

    def busy(self) -> bool:
        """Someone waits for a slot, or the service asked for a pause: a caller that can
        wait for a quieter moment (the repair sweep) should."""
        return self._lock.locked() or self.paused_for() > 0

    def paused_for(self) -> float:
        return max(0.0, self._paused_until - time.monotonic())

    async def wait_unpaused(self) -> None:
        """A pause (429) that began while a caller waited for its slot applies to it too:
        otherwise every slot reserved before the 429 is spent on another 429."""
        pause = self.paused_for()
        while pause > 0:  # a pause may be extended while this one is slept
            await asyncio.sleep(pause)
            pause = self.paused_for()

    async def throttled(self, retry_after: float | None) -> None:
        """The service answered 429: pause every replica for the hint (or 1, 2, 4 … 60 s
        for hintless 429s in a row), empty the burst, and learn the rate (see
        :func:`learned_interval`)."""
        if retry_after is None:
            self._strikes += 1
            pause = min(MAX_HINTLESS_PAUSE, 2.0 ** (self._strikes - 1))
        else:
            pause = max(0.0, retry_after)
        learned = learned_interval(self.limit, self._row, time.time())
        if learned > self.interval() * 1.001:
            logger.info(
                "upstream limit stricter than documented; pacing slower",
                extra={
                    "bucket": self.name,
                    "interval": round(learned, 3),
                    "documented": round(self.limit.interval, 3),
                },
            )
        await self._throttle(pause, learned)

    async def penalize(self, seconds: float) -> None:
        """The service is failing (5xx, timeouts): pause, and empty the burst so that
        afterwards attempts trickle at the sustained rate instead of a burst of retries."""
        await self._throttle(seconds, None)

    async def _throttle(self, pause: float, learned: float | None) -> None:
        self._pause_local(pause)
        interval = learned if learned is not None else self.interval()
        try:
            row = await self._store.rate_throttle(
                self.key, pause, self._tolerance(interval), learned
            )
        except OutboxClosed:
            return  # paused here at least; the other replicas learn from their own 429s
        self._seen(row)

    def succeeded(self) -> None:
        self._strikes = 0


class RateLimiter:
    """The buckets of one relay process, by family and name, in one store."""

    def __init__(
        self, limits: Mapping[str, Limit] | None = None, store: RateStore | None = None
    ) -> None:
        self.limits = {**DEFAULT_LIMITS, **{Family(k): v for k, v in (limits or {}).items()}}
        self.store: RateStore = store if store is not None else LocalRates()
        self._buckets: dict[str, TokenBucket] = {}

    def bucket(self, family: Family, name: str = "") -> TokenBucket:
        key = f"{family.value}:{name}"
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.limits[family], key, self.store)
        return bucket

    def events(self, routing_key: str) -> TokenBucket:
        return self.bucket(Family.EVENTS, secret_id(routing_key))

    def rest(self, api_token: str | None) -> TokenBucket:
        return self.bucket(Family.REST, secret_id(api_token or ""))

    def bigpanda(self, endpoint: str) -> TokenBucket:
        return self.bucket(Family.BIGPANDA, endpoint)
