"""The work queue: triggers coalesce and failures retry; the per-namespace limit and the
per-run deadline (real asyncio, no clock thresholds): a namespace full of stuck
reconciles holds ``group_limit`` workers, and the other namespaces' keys still run."""

from __future__ import annotations

import asyncio

from pagerbridge.controller.reconcile.queue import DEADLINE_RETRY, WorkQueue

Key = tuple[str, str]


async def test_one_namespace_cannot_take_every_worker() -> None:
    release = asyncio.Event()
    running: dict[str, int] = {"hostile": 0}
    most = {"hostile": 0}
    done: list[Key] = []
    all_good_done = asyncio.Event()

    async def handler(key: Key) -> float | None:
        namespace, _ = key
        if namespace == "hostile":
            running["hostile"] += 1
            most["hostile"] = max(most["hostile"], running["hostile"])
            try:
                await release.wait()
            finally:
                running["hostile"] -= 1
        done.append(key)
        if sum(1 for k in done if k[0] == "good") == 5:
            all_good_done.set()
        return None

    queue: WorkQueue[Key] = WorkQueue(handler, 4, group=lambda k: k[0], group_limit=2)
    queue.start()
    try:
        for i in range(20):
            queue.add(("hostile", f"h{i}"))
        for i in range(5):
            queue.add(("good", f"g{i}"))
        await asyncio.wait_for(all_good_done.wait(), 30)
        assert most["hostile"] == 2  # never more than its share
        assert not [k for k in done if k[0] == "hostile"]
        release.set()
        while not queue.idle:
            await asyncio.sleep(0.01)
        assert sorted(k for k in done if k[0] == "hostile") == sorted(
            ("hostile", f"h{i}") for i in range(20)
        )
        assert most["hostile"] == 2
    finally:
        await queue.stop()


async def test_parked_key_added_again_runs_once() -> None:
    gate = asyncio.Event()
    runs: list[Key] = []

    async def handler(key: Key) -> float | None:
        runs.append(key)
        if key == ("ns", "a"):
            await gate.wait()
        return None

    queue: WorkQueue[Key] = WorkQueue(handler, 2, group=lambda k: k[0], group_limit=1)
    queue.start()
    try:
        queue.add(("ns", "a"))
        while ("ns", "a") not in runs:
            await asyncio.sleep(0.01)
        queue.add(("ns", "b"))
        while ("ns", "b") not in queue._parked.get("ns", ()):
            await asyncio.sleep(0.01)
        queue.add(("ns", "b"))  # parked, so pending: not queued twice
        assert runs == [("ns", "a")]
        gate.set()
        while not queue.idle:
            await asyncio.sleep(0.01)
        assert runs == [("ns", "a"), ("ns", "b")]
    finally:
        await queue.stop()


async def test_run_past_the_deadline_is_cancelled_and_retried() -> None:
    cancelled = asyncio.Event()
    attempts = 0

    async def handler(key: Key) -> float | None:
        nonlocal attempts
        attempts += 1
        try:
            await asyncio.Event().wait()  # a reconcile stuck on a silent upstream
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return None

    queue: WorkQueue[Key] = WorkQueue(handler, 1, deadline=0.1)
    queue.start()
    try:
        queue.add(("ns", "stuck"))
        await asyncio.wait_for(cancelled.wait(), 30)
        while queue._running:  # the worker is free again
            await asyncio.sleep(0.01)
        assert ("ns", "stuck") in queue._timers  # retried later, with backoff
        assert queue._timers[("ns", "stuck")].when() > asyncio.get_running_loop().time()
        assert DEADLINE_RETRY > 0
        assert attempts == 1
    finally:
        await queue.stop()


async def test_work_queue_coalesces_and_retries() -> None:
    calls: list[str] = []
    gate = asyncio.Event()
    failures = {"b": 1}

    async def handler(key: str) -> float | None:
        calls.append(key)
        if key == "a" and calls.count("a") == 1:
            await gate.wait()
        if failures.get(key):
            failures[key] -= 1
            return 0.01
        return None

    queue: WorkQueue[str] = WorkQueue(handler, workers=2)
    queue.start()
    try:
        queue.add("a")
        await asyncio.sleep(0.01)
        for _ in range(5):
            queue.add("a")  # while running: collapses into one more run
        queue.add("b")
        gate.set()
        deadline = asyncio.get_running_loop().time() + 5
        while (
            calls.count("a") < 2 or calls.count("b") < 2
        ) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        assert calls.count("a") == 2
        assert calls.count("b") == 2  # one failure, one retry
        assert queue.idle
    finally:
        await queue.stop()
