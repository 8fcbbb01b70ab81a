"""Exponential backoff with jitter: the one retry-delay rule of the project.

Used by the relay's delivery retries, the operator's work queue and cleanup, and the
BigPanda simulator's webhook sender. Jitter spreads retries of many failing calls apart so
that an upstream coming back is not hit by all of them at once.
"""

from __future__ import annotations

import random

# Our own generator: the process-wide one is left to whoever else uses it.
_rng = random.Random()  # noqa: S311 - jitter, not crypto


def backoff(
    failures: int,
    *,
    base: float,
    cap: float,
    jitter: tuple[float, float] = (0.5, 1.0),
    rng: random.Random | None = None,
) -> float:
    """Delay before the next try after ``failures`` consecutive failures (0 = the first retry).

    ``base * 2**failures``, at most ``cap``, times a random factor in ``jitter`` (drawn from
    ``rng`` when given: tests replay a seeded generator).
    """
    delay = min(cap, base * 2.0 ** min(max(failures, 0), 30))
    low, high = jitter
    factor: float = (rng or _rng).uniform(low, high)
    return delay * factor


def jitter(low: float, high: float, rng: random.Random | None = None) -> float:
    """A random amount in [low, high] from the same private generator (or ``rng``)."""
    value: float = (rng or _rng).uniform(low, high)
    return value
