"""A coalescing work queue: each object is reconciled by at most one worker at a time, and
any number of triggers that arrive meanwhile collapse into one more run.

Reconciles are level-based (they read the whole observed state), so it does not matter
which event triggered them, only that one runs after the last change. Failures ask for a
retry after a delay that doubles per consecutive failure (capped), with jitter.

Fairness between tenants: keys belong to a *group* (the namespace) and at most
``group_limit`` keys of one group run at once; a worker that picks a key of a full group
parks it and takes the next key, and the group's next finished reconcile releases one
parked key. One namespace full of slow upstreams therefore holds ``group_limit`` workers,
not all of them. Each run has an overall ``deadline``: a run that exceeds it is cancelled
and retried with backoff like a failure.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from pagerbridge.clients.backoff import backoff
from pagerbridge.controller.metrics import QUEUE_DEPTH

logger = logging.getLogger(__name__)

MAX_BACKOFF = 300.0
DEADLINE_RETRY = 30.0  # base delay after a run cut off by the deadline


K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(
        self,
        handler: Callable[[K], Awaitable[float | None]],
        workers: int,
        *,
        group: Callable[[K], Hashable] | None = None,
        group_limit: int = 0,
        deadline: float | None = None,
    ) -> None:
        """``handler(key)`` returns None when done, or a delay after which to retry.

        ``group(key)`` with ``group_limit`` > 0 bounds the concurrent runs per group;
        ``deadline`` (seconds) bounds one run.
        """
        self._handler = handler
        self._workers = workers
        self._group = group
        self._group_limit = group_limit
        self._deadline = deadline
        self._group_running: collections.Counter[Hashable] = collections.Counter()
        self._parked: dict[Hashable, collections.deque[K]] = {}
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._pending: set[K] = set()
        self._running: set[K] = set()
        self._dirty: set[K] = set()
        self._failures: dict[K, int] = {}
        self._timers: dict[K, asyncio.TimerHandle] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def add(self, key: K) -> None:
        if key in self._running:
            self._dirty.add(key)
        elif key not in self._pending:
            self._pending.add(key)
            self._queue.put_nowait(key)
            QUEUE_DEPTH.set(len(self._pending))

    def add_after(self, key: K, delay: float) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None and timer.when() <= asyncio.get_running_loop().time() + delay:
            self._timers[key] = timer  # an earlier retry is already scheduled
            return
        if timer is not None:
            timer.cancel()
        self._timers[key] = asyncio.get_running_loop().call_later(delay, self._fire, key)

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def forget(self, key: K) -> None:
        self._failures.pop(key, None)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    @property
    def retrying(self) -> bool:
        """Some key waits on a retry timer."""
        return bool(self._timers)

    def retry_now(self) -> int:
        """Run every key waiting on a retry timer now (what failed may work again: the API
        server is back); their failure counts stay, so a key that fails again backs off
        where it was. Returns how many keys were queued."""
        timers, self._timers = self._timers, {}
        for key, timer in timers.items():
            timer.cancel()
            self.add(key)
        return len(timers)

    @property
    def idle(self) -> bool:
        return not self._pending and not self._running

    def start(self) -> None:
        for index in range(self._workers):
            self._tasks.append(asyncio.create_task(self._work(), name=f"reconcile-{index}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for timer in self._timers.values():
            timer.cancel()

    def _group_of(self, key: K) -> Hashable | None:
        return self._group(key) if self._group is not None and self._group_limit > 0 else None

    def _release(self, group: Hashable | None) -> None:
        """A run of ``group`` ended: free its slot and requeue one parked key of it."""
        if group is None:
            return
        self._group_running[group] -= 1
        if self._group_running[group] <= 0:
            del self._group_running[group]
        parked = self._parked.get(group)
        if parked:
            self._queue.put_nowait(parked.popleft())
            if not parked:
                del self._parked[group]

    async def _run(self, key: K) -> float | None:
        if self._deadline is None:
            return await self._handler(key)
        try:
            async with asyncio.timeout(self._deadline):
                return await self._handler(key)
        except TimeoutError:
            logger.warning("reconcile of %s cut off after %.0fs", key, self._deadline)
            return DEADLINE_RETRY

    async def _work(self) -> None:
        while True:
            key = await self._queue.get()
            group = self._group_of(key)
            if group is not None and self._group_running[group] >= self._group_limit:
                self._parked.setdefault(group, collections.deque()).append(key)
                continue  # stays pending: a later add() does not queue it twice
            self._pending.discard(key)
            QUEUE_DEPTH.set(len(self._pending))
            self._running.add(key)
            if group is not None:
                self._group_running[group] += 1
            retry: float | None
            try:
                retry = await self._run(key)
            except Exception:
                logger.exception("reconcile of %s crashed", key)
                retry = 5.0
            finally:
                self._running.discard(key)
                self._release(group)
            if retry is None:
                self._failures.pop(key, None)
            else:
                failures = self._failures.get(key, 0) + 1
                self._failures[key] = failures
                self.add_after(
                    key, backoff(failures - 1, base=retry, cap=MAX_BACKOFF, jitter=(0.8, 1.2))
                )
            if key in self._dirty:
                self._dirty.discard(key)
                self.add(key)
