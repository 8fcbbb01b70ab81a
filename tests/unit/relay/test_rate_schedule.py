"""The rate-limit schedule itself: both stores (in memory, and the real PostgreSQL) hand out
the same slots, the slots keep to "at most N in any W", a pause applies to the next slot
of every replica, and the learning rule reads the real rate from the spacing of 429s.

Slots are compared on the store's own clock (each row says ``now`` and ``slot``), so
nothing here depends on how fast this machine runs.
"""

from __future__ import annotations

import asyncio
import bisect

import pytest

from pagerbridge.relay.outbound.ratelimit import (
    EVENTS_V2,
    Limit,
    RateLimiter,
    effective_interval,
    learned_interval,
)
from pagerbridge.relay.outbox.postgres import PostgresOutbox
from pagerbridge.relay.outbox.rates import LocalRates, RateRow, RateStore


def _most_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max(bisect.bisect_left(times, t + window) - i for i, t in enumerate(times))


async def _rows(store: RateStore, limit: Limit, count: int, bucket: str = "b") -> list[RateRow]:
    interval = limit.interval
    tolerance = (limit.depth - 1) * interval
    return [await store.rate_reserve(bucket, interval, tolerance) for _ in range(count)]


async def _slots(store: RateStore, limit: Limit, count: int, bucket: str = "b") -> list[float]:
    return [row.slot for row in await _rows(store, limit, count, bucket)]


@pytest.mark.parametrize("limit", [EVENTS_V2, Limit(120, 60.0, burst=30), Limit(5, 1.0)])
def test_slots_keep_to_n_in_any_window_with_the_margin(limit: Limit) -> None:
    rows = asyncio.run(_rows(LocalRates(), limit, 3 * limit.count))
    slots = [row.slot for row in rows]
    # At most N even in a window stretched by the margin (the time to arrive upstream).
    assert _most_in_any_window(slots, limit.window + limit.margin * 0.999) <= limit.count
    # The burst goes at once, and no more: the next ones wait for their slots.
    assert sum(row.slot <= row.now for row in rows) == limit.depth


def test_two_replicas_on_postgresql_share_one_schedule(pg_dsn: str) -> None:
    limit = Limit(20, 10.0)

    async def main() -> tuple[list[float], RateRow, RateRow]:
        a = PostgresOutbox(pg_dsn, owner="replica-a")
        b = PostgresOutbox(pg_dsn, owner="replica-b")
        for outbox in (a, b):
            outbox.open(asyncio.get_running_loop())
            await outbox.start()
        try:
            both = await asyncio.gather(_slots(a, limit, 30), _slots(b, limit, 30))
            paused = await a.rate_throttle("b", 5.0, 0.0, 2.0)
            after = await b.rate_reserve("b", limit.interval, 0.0)
            return [*both[0], *both[1]], paused, after
        finally:
            await a.close()
            await b.close()

    slots, paused, after = asyncio.run(main())
    assert len(set(slots)) == len(slots)  # no slot handed to both
    assert _most_in_any_window(slots, limit.window + limit.margin * 0.999) <= limit.count
    # A 429 seen by one replica: the other's next slot comes after its pause.
    assert after.slot >= paused.paused_until >= paused.now + 5.0
    assert (paused.learned, paused.sent) == (2.0, 0)


def test_the_in_memory_store_follows_the_same_rules() -> None:
    async def main() -> tuple[RateRow, RateRow]:
        store = LocalRates()
        await _slots(store, EVENTS_V2, 3)
        paused = await store.rate_throttle("b", 5.0, 0.0, 2.0)
        return paused, await store.rate_reserve("b", EVENTS_V2.interval, 0.0)

    paused, after = asyncio.run(main())
    assert after.slot >= paused.paused_until >= paused.now + 5.0
    assert (paused.learned, paused.sent, after.sent) == (2.0, 0, 1)


def test_the_spacing_of_429s_measures_the_real_rate() -> None:
    limit = EVENTS_V2
    # 429s 30 s apart with 31 requests reserved since (30 accepted): 1 per second.
    row = RateRow(now=1030.0, slot=1030.0, last_429=1000.0, sent=31)
    assert learned_interval(limit, row, 1030.0) == pytest.approx(1.0 * 1.05)
    # A 429 right after a 429 (nothing accepted between): an empty bucket, not a rate.
    again = RateRow(now=1001.0, slot=1001.0, last_429=1000.0, sent=1)
    assert learned_interval(limit, again, 1001.0) == limit.interval
    # Never faster than documented, and no history: the documented interval.
    fast = RateRow(now=1030.0, slot=1030.0, last_429=1000.0, sent=1000)
    assert learned_interval(limit, fast, 1030.0) == limit.interval
    assert learned_interval(limit, None, 0.0) == limit.interval
    # What was learned decays back to the documented interval.
    learned = RateRow(now=0.0, slot=0.0, learned=2.0, learned_at=0.0)
    assert effective_interval(limit, learned, 0.0) == 2.0
    later = effective_interval(limit, learned, 5 * limit.window)
    assert later == pytest.approx(limit.interval + (2.0 - limit.interval) / 2)


def test_bucket_names_never_hold_the_secret() -> None:
    key = "R0UT1NGKEY0123456789abcdefABCDEF"
    bucket = RateLimiter().events(key)
    assert key not in bucket.key
    assert key.lower() not in bucket.key
    assert RateLimiter().rest(key).key != bucket.key


def test_a_slot_held_too_long_goes_stale() -> None:
    """A slot used long after it came would crowd a later window: it must be renewed."""
    import time

    from pagerbridge.relay.outbound.ratelimit import TokenBucket

    bucket = TokenBucket(Limit(10, 1.0, margin=2.0), "b", LocalRates())
    assert asyncio.run(bucket.acquire())
    bucket.grant(7)
    assert bucket.fresh(7)
    assert not bucket.fresh(8)  # never granted
    time.sleep(bucket.hold * 1.5)
    assert not bucket.fresh(7)
    bucket.used(7)
    assert not bucket.fresh(7)
