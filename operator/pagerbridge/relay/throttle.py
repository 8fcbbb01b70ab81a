"""Failed admin-token attempts slow their source down (the admin API, internal port).

Why: the admin token is a bearer secret, and the internal port may be reachable by other
pods (no NetworkPolicy, or a wide one). Guessing is already hopeless against a 256-bit
token, but an unthrottled endpoint still invites it and fills the log. So each source
address gets :data:`FREE_FAILURES` failed attempts; after that it must wait, doubling from
:data:`FIRST_DELAY` up to :data:`MAX_DELAY` seconds per further failure, answered 429 with
``Retry-After`` (without the token even being looked at). A success forgets the source.

Memory is bounded: at most :data:`MAX_SOURCES` sources are remembered, the least recently
failing forgotten first, and a source quiet for :data:`FORGET_AFTER` seconds is forgotten.
Requests through the API server's pod proxy (``pagerbridge outbox``) all come from the
API server's address: a guesser there slows everyone using that path, by design (it is
the same door).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass

FREE_FAILURES = 5
FIRST_DELAY = 1.0
MAX_DELAY = 300.0
MAX_SOURCES = 4096
FORGET_AFTER = 3600.0


@dataclass
class _Source:
    failures: int = 0
    last: float = 0.0
    blocked_until: float = 0.0


class FailedAttempts:
    def __init__(
        self,
        free: int = FREE_FAILURES,
        first_delay: float = FIRST_DELAY,
        max_delay: float = MAX_DELAY,
        max_sources: int = MAX_SOURCES,
        forget_after: float = FORGET_AFTER,
    ) -> None:
        self.free = free
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.max_sources = max_sources
        self.forget_after = forget_after
        self._sources: OrderedDict[str, _Source] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sources)

    def retry_after(self, source: str, now: float | None = None) -> int | None:
        """Whole seconds ``source`` must still wait, or None when it may try."""
        now = time.monotonic() if now is None else now
        entry = self._sources.get(source)
        if entry is None:
            return None
        if now - entry.last > self.forget_after:
            del self._sources[source]
            return None
        if entry.blocked_until > now:
            return max(1, math.ceil(entry.blocked_until - now))
        return None

    def failed(self, source: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        entry = self._sources.pop(source, None) or _Source()
        if now - entry.last > self.forget_after:
            entry = _Source()
        entry.failures += 1
        entry.last = now
        over = entry.failures - self.free
        if over > 0:
            delay = min(self.max_delay, self.first_delay * 2 ** min(over - 1, 32))
            entry.blocked_until = now + delay
        self._sources[source] = entry  # most recent last
        while len(self._sources) > self.max_sources:
            self._sources.popitem(last=False)

    def succeeded(self, source: str) -> None:
        self._sources.pop(source, None)
