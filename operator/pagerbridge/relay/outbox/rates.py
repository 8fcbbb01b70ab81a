"""Where upstream rate-limit state lives: one row per bucket, reserved atomically.

A bucket is a GCRA schedule (the generic cell rate algorithm, a token bucket kept as one
number): ``tat``, the theoretical arrival time of the next request. A request may go at
``slot = max(now, tat - tolerance, paused_until)``; reserving it moves ``tat`` to
``max(tat, slot) + interval``. One number per bucket is what makes the state cheap to
share: with PostgreSQL every replica of an integration reserves from the same row, in one
statement under its row lock (:class:`pagerbridge.relay.outbox.postgres.PostgresRates`),
so the replicas *together* keep to the limit. SQLite has a single writer, the one relay
process, so its state stays in memory (:class:`LocalRates`).

The row also carries what a 429 taught (``learned`` interval, when, how many requests were
reserved since the last 429): the policy deciding what to learn is
:mod:`pagerbridge.relay.outbound.ratelimit`; a store only keeps the numbers.

Bucket names never hold a secret in clear: routing keys and API tokens are hashed by the
limiter before they become names (see ``RateLimiter``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class RateRow:
    """A bucket's state as one operation left it, on the store's clock (epoch seconds)."""

    now: float
    slot: float  # when the request just reserved may go (``now`` for other operations)
    paused_until: float = 0.0
    learned: float = 0.0  # learned interval (seconds per request); 0: none
    learned_at: float = 0.0
    last_429: float = 0.0
    sent: int = 0  # requests reserved since the last 429


class RateStore(Protocol):
    async def rate_reserve(self, bucket: str, interval: float, tolerance: float) -> RateRow:
        """Reserve the bucket's next slot (see the module docstring)."""

    async def rate_throttle(
        self, bucket: str, pause: float, tolerance: float, learned: float | None
    ) -> RateRow:
        """The service refused or failed: nothing goes before ``now + pause`` and no burst
        follows it; ``learned`` (not None: a 429) is stored as the bucket's interval and
        its 429 count starts afresh."""


@dataclass
class _State:
    tat: float = 0.0
    paused_until: float = 0.0
    learned: float = 0.0
    learned_at: float = 0.0
    last_429: float = 0.0
    sent: int = 0


class LocalRates:
    """In-process buckets: the store of a relay whose outbox has a single writer."""

    def __init__(self) -> None:
        self._buckets: dict[str, _State] = {}

    def _row(self, state: _State, now: float, slot: float) -> RateRow:
        return RateRow(
            now, slot, state.paused_until, state.learned, state.learned_at, state.last_429,
            state.sent,
        )  # fmt: skip

    def reserve_now(self, bucket: str, interval: float, tolerance: float) -> RateRow | None:
        """Reserve only if the slot is free right now (None: it is not; nothing taken)."""
        state = self._buckets.setdefault(bucket, _State())
        now = time.time()
        if max(state.tat - tolerance, state.paused_until) > now:
            return None
        return self._step(state, now, interval, tolerance)

    def _step(self, state: _State, now: float, interval: float, tolerance: float) -> RateRow:
        slot = max(now, state.tat - tolerance, state.paused_until)
        state.tat = max(state.tat, slot) + interval
        state.sent += 1
        return self._row(state, now, slot)

    async def rate_reserve(self, bucket: str, interval: float, tolerance: float) -> RateRow:
        state = self._buckets.setdefault(bucket, _State())
        return self._step(state, time.time(), interval, tolerance)

    async def rate_throttle(
        self, bucket: str, pause: float, tolerance: float, learned: float | None
    ) -> RateRow:
        state = self._buckets.setdefault(bucket, _State())
        now = time.time()
        state.paused_until = max(state.paused_until, now + pause)
        state.tat = max(state.tat, state.paused_until + tolerance)
        if learned is not None:
            state.learned, state.learned_at, state.last_429, state.sent = learned, now, now, 0
        return self._row(state, now, now)
