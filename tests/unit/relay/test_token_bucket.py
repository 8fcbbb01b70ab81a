"""Token buckets (relay.outbound.ratelimit): the burst, then the pace; a 429 pauses them."""

from __future__ import annotations


def test_token_bucket_burst_then_rate_and_pause():
    import asyncio

    from pagerbridge.relay.outbound.ratelimit import Limit, TokenBucket
    from pagerbridge.relay.outbox.rates import LocalRates

    # 12 in any second, 3 at once: the burst, then one every 1/9 s (3 + 9 = 12).
    bucket = TokenBucket(Limit(12, 1.0, burst=3, margin=0.0), "b", LocalRates())
    assert [bucket.try_take() for _ in range(4)] == [True, True, True, False]
    assert bucket.interval() == 1 / 9
    asyncio.run(bucket.throttled(5.0))  # a 429 with Retry-After: 5
    assert bucket.paused_for() > 4.9
    assert not bucket.try_take()
