"""Delivery slots with shares (relay.outbound.slots), on one event loop, no I/O."""

from __future__ import annotations

import asyncio

from pagerbridge.relay.outbound.slots import Slots


def test_a_group_holds_at_most_its_share_and_others_still_get_slots() -> None:
    async def run() -> None:
        waits: list[str] = []
        slots = Slots(8, {"key": 0.25, "upstream": 0.5}, on_wait=waits.append)
        hog = ("upstream:events", "key:a")
        for _ in range(2):
            await slots.acquire(hog)
        third = asyncio.create_task(slots.acquire(hog))
        await asyncio.sleep(0)
        assert not third.done()
        assert waits == ["key"]  # key:a's share is 2 of 8
        await asyncio.wait_for(slots.acquire(("upstream:events", "key:b")), 1)
        await asyncio.wait_for(slots.acquire(("upstream:events", "key:c")), 1)
        # upstream:events now holds its share (4 of 8): a BigPanda write still gets one.
        blocked = asyncio.create_task(slots.acquire(("upstream:events", "key:d")))
        await asyncio.wait_for(slots.acquire(("upstream:bigpanda",)), 1)
        await asyncio.sleep(0)
        assert not blocked.done()
        assert waits[-1] == "upstream"
        assert slots.held("upstream:events") == 4
        assert slots.in_use == 5
        slots.release(hog)  # key:a is below its share again, upstream:events too
        await asyncio.sleep(0)
        assert third.done() != blocked.done()  # exactly one of them got the freed slot
        slots.release(("upstream:events", "key:b"))
        await asyncio.wait_for(asyncio.gather(third, blocked), 1)
        assert slots.in_use == 5

    asyncio.run(run())


def test_the_total_bound_is_fifo_and_a_cancelled_waiter_gives_its_slot_back() -> None:
    async def run() -> None:
        slots = Slots(1)
        await slots.acquire(())
        first = asyncio.create_task(slots.acquire(()))
        second = asyncio.create_task(slots.acquire(()))
        await asyncio.sleep(0)
        first.cancel()
        await asyncio.sleep(0)
        slots.release(())
        await asyncio.wait_for(second, 1)
        assert first.cancelled()
        assert slots.in_use == 1
        # Granted and cancelled before it ran: the slot is not lost.
        third = asyncio.create_task(slots.acquire(()))
        await asyncio.sleep(0)
        slots.release(())
        third.cancel()
        await asyncio.sleep(0)
        assert slots.in_use == 0
        await asyncio.wait_for(slots.acquire(()), 1)

    asyncio.run(run())
