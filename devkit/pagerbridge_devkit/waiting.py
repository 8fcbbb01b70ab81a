"""Polling until something is true: the one ``wait_for`` of the tests, benchmarks and demo.

Every test bed waits for a real process (a relay, the operator, a simulator, the API
server) to reach a state it cannot be told about; polling a predicate with a deadline is
the honest way to do that, and one implementation keeps the failure message the same
everywhere: what was awaited, for how long, and the last value seen.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """The predicate stayed falsy until the deadline (an assertion failure in a test)."""


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    what: str = "",
    *,
    interval: float = 0.05,
) -> T:
    """Poll ``predicate`` every ``interval`` seconds until it returns something truthy, and
    return that value; :class:`WaitTimeout` after ``timeout`` seconds (the predicate is
    always called at least once, and once more at the deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise WaitTimeout(
                f"timed out after {timeout:g}s waiting for {what or predicate} (last: {value!r})"
            )
        time.sleep(interval)
