"""Delivery slots with shares: no upstream and no routing key can hold every slot.

Why: the dispatcher runs at most ``total`` attempts at once. With one plain semaphore, an
upstream that answers 202 and then sends a byte every 5 s (or simply hangs) held all 64
slots: an unrelated incident, bound for a healthy service or another routing key, waited
for the last of them (issue 25: not delivered within 30 s). Each call's overall deadline
(``clients._http.call``) frees a slot eventually; shares keep the others flowing meanwhile.

Each attempt names the *groups* it belongs to, as ``"<class>:<name>"`` strings (the
relay's are ``upstream:<service>`` and ``key:<routing key id>``). A class has a share: the
fraction of ``total`` one group of that class may hold at once (at least 1). An attempt
takes a slot only when the total and every one of its groups are below their bounds;
otherwise it waits, outside any slot, in a FIFO queue per group set. A released slot goes
to the oldest waiter whose groups are free, the group sets taking turns.

Pure asyncio, one event loop; no I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence

Groups = tuple[str, ...]


class Slots:
    def __init__(
        self,
        total: int,
        shares: Mapping[str, float] | None = None,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        self.total = max(1, total)
        self._bounds = {
            cls: max(1, min(self.total, int(self.total * share)))
            for cls, share in (shares or {}).items()
        }
        self._in_use = 0
        self._held: Counter[str] = Counter()
        self._waiting: dict[Groups, deque[asyncio.Future[None]]] = {}
        self._on_wait = on_wait

    def bound(self, group: str) -> int:
        """How many slots ``group`` may hold at once."""
        return self._bounds.get(group.partition(":")[0], self.total)

    @property
    def in_use(self) -> int:
        return self._in_use

    def held(self, group: str) -> int:
        return self._held[group]

    def _blocker(self, groups: Groups) -> str | None:
        """Why ``groups`` cannot take a slot now (the class that is full), or None."""
        if self._in_use >= self.total:
            return "total"
        for group in groups:
            if self._held[group] >= self.bound(group):
                return group.partition(":")[0]
        return None

    def _take(self, groups: Groups) -> None:
        self._in_use += 1
        for group in groups:
            self._held[group] += 1

    def _give_back(self, groups: Groups) -> None:
        self._in_use -= 1
        for group in groups:
            self._held[group] -= 1
            if self._held[group] <= 0:
                del self._held[group]
        self._wake()

    def _wake(self) -> None:
        for groups in list(self._waiting):
            if self._in_use >= self.total:
                return
            queue = self._waiting.pop(groups)
            while queue and self._blocker(groups) is None:
                waiter = queue.popleft()
                if waiter.done():
                    continue  # cancelled while waiting
                self._take(groups)
                waiter.set_result(None)
            if queue:
                # Back in the rotation, at the end: the group sets take turns.
                self._waiting[groups] = queue

    async def acquire(self, groups: Sequence[str]) -> None:
        key = tuple(dict.fromkeys(groups))
        blocker = self._blocker(key)
        if blocker is None:
            # (A queued set is always blocked after a release: nobody is overtaken.)
            self._take(key)
            return
        if self._on_wait is not None:
            self._on_wait(blocker or "queued")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, deque()).append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._give_back(key)  # granted, then cancelled before it could run
            else:
                queue = self._waiting.get(key)
                if queue is not None:
                    with contextlib.suppress(ValueError):
                        queue.remove(waiter)
                    if not queue:
                        del self._waiting[key]
            raise

    def release(self, groups: Sequence[str]) -> None:
        self._give_back(tuple(dict.fromkeys(groups)))

    @contextlib.asynccontextmanager
    async def hold(self, groups: Sequence[str]) -> AsyncIterator[None]:
        await self.acquire(groups)
        try:
            yield
        finally:
            self.release(groups)
