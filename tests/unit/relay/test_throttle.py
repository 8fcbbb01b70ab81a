"""relay.throttle: free failures, then a doubling wait capped at MAX_DELAY; a success or a
quiet hour forgets the source; memory bounded by MAX_SOURCES however many sources fail."""

from __future__ import annotations

from pagerbridge.relay.throttle import (
    FIRST_DELAY,
    FORGET_AFTER,
    FREE_FAILURES,
    MAX_DELAY,
    MAX_SOURCES,
    FailedAttempts,
)


def test_free_failures_then_a_doubling_wait_up_to_the_cap() -> None:
    attempts = FailedAttempts()
    now = 1000.0
    for _ in range(FREE_FAILURES):
        assert attempts.retry_after("a", now) is None
        attempts.failed("a", now)
    assert attempts.retry_after("a", now) is None  # the free ones cost nothing
    waits = []
    for _ in range(15):
        attempts.failed("a", now)
        wait = attempts.retry_after("a", now)
        assert wait is not None
        waits.append(wait)
        now += wait  # waited it out
        assert attempts.retry_after("a", now) is None
    assert waits[:4] == [FIRST_DELAY, 2 * FIRST_DELAY, 4 * FIRST_DELAY, 8 * FIRST_DELAY]
    assert max(waits) == MAX_DELAY
    assert attempts.retry_after("b", now) is None  # per source


def test_a_success_or_a_quiet_hour_forgets_the_source() -> None:
    attempts = FailedAttempts()
    for _ in range(FREE_FAILURES + 1):
        attempts.failed("a", 0.0)
    assert attempts.retry_after("a", 0.0) is not None
    attempts.succeeded("a")
    assert attempts.retry_after("a", 0.0) is None
    for _ in range(FREE_FAILURES + 3):
        attempts.failed("b", 0.0)
    assert attempts.retry_after("b", FORGET_AFTER + 1) is None
    assert len(attempts) == 0


def test_memory_is_bounded_however_many_sources_fail() -> None:
    attempts = FailedAttempts()
    for n in range(3 * MAX_SOURCES):
        attempts.failed(f"10.0.{n // 256}.{n % 256}", float(n))
    assert len(attempts) == MAX_SOURCES
    newest = f"10.0.{(3 * MAX_SOURCES - 1) // 256}.{(3 * MAX_SOURCES - 1) % 256}"
    for _ in range(FREE_FAILURES):
        attempts.failed(newest, float(3 * MAX_SOURCES))
    assert attempts.retry_after(newest, float(3 * MAX_SOURCES)) is not None
