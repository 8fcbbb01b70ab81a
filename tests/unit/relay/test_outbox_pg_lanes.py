"""Lanes of the shared (PostgreSQL) outbox: two processes' outboxes on one real database.

Invariants: a lane is delivered by one process at a time; a job another process stores
while the lane is held is handed to the holder when it releases the lane (never left
behind); a lease that expired is taken over and its former holder learns it lost it;
the replicas' heartbeats count the live replicas (rate-limit shares).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from pagerbridge.relay.outbox.jobs import PdNote
from pagerbridge.relay.outbox.port import Job, NewJob
from pagerbridge.relay.outbox.postgres import PostgresOutbox


def note(n: int) -> NewJob:
    return NewJob(PdNote("inc", f"c{n}", f"note {n}"), "bp:inc")


def two(
    dsn: str, body: Callable[[PostgresOutbox, PostgresOutbox], Awaitable[Any]], **kw: Any
) -> Any:
    async def main() -> Any:
        a = PostgresOutbox(dsn, owner="replica-a", take_over_grace=0.0, **kw)
        b = PostgresOutbox(dsn, owner="replica-b", take_over_grace=0.0, **kw)
        for outbox in (a, b):
            outbox.open(asyncio.get_running_loop())
            await outbox.start()
        try:
            return await body(a, b)
        finally:
            await a.close()
            await b.close()

    return asyncio.run(main())


def test_one_holder_per_lane_and_nothing_left_behind_on_release(pg_dsn: str) -> None:
    async def body(a: PostgresOutbox, b: PostgresOutbox) -> None:
        (first,) = await a.enqueue([note(1)])
        assert isinstance(first, Job)
        assert [j.id for j in await a.claim_lane("bp:inc") or []] == [first.id]
        assert await b.claim_lane("bp:inc") is None  # held by a
        # b accepts the incident's next comment while a delivers: b does not deliver it...
        (second,) = await b.enqueue([note(2)])
        assert isinstance(second, Job)
        assert await b.claim_lane("bp:inc") is None
        await a.complete(first.id)
        # ...a finds it when it has nothing more, instead of releasing the lane.
        (handed,) = await a.release_lane("bp:inc")
        assert handed.id == second.id
        assert handed.restored  # a did not submit it: look before writing
        await a.complete(second.id)
        assert await a.release_lane("bp:inc") == []
        assert await b.claim_lane("bp:inc") == []  # free again

    two(pg_dsn, body)


def test_concurrent_claims_give_the_lane_to_exactly_one(pg_dsn: str) -> None:
    async def body(a: PostgresOutbox, b: PostgresOutbox) -> None:
        await a.enqueue([note(1)])
        for n in range(20):
            key = f"bp:race-{n}"
            results = await asyncio.gather(a.claim_lane(key), b.claim_lane(key))
            assert sum(r is not None for r in results) == 1

    two(pg_dsn, body)


def test_an_expired_lease_is_taken_over_and_its_holder_learns_it(pg_dsn: str) -> None:
    async def body(a: PostgresOutbox, b: PostgresOutbox) -> None:
        (job,) = await a.enqueue([note(1)])
        assert isinstance(job, Job)
        a.lease_seconds = 0.0  # a's leases expire at once (a killed replica's, later)
        assert await a.claim_lane("bp:inc") is not None
        taken = await b.take_over()
        assert [j.id for j in taken] == [job.id]
        assert all(j.restored for j in taken)
        assert await a.renew_lanes(["bp:inc"]) == {"bp:inc"}  # lost
        assert await a.claim_lane("bp:inc") is None
        assert await b.renew_lanes(["bp:inc"]) == set()
        assert await b.take_over() == []  # nothing free

    two(pg_dsn, body)


def test_take_over_leaves_held_lanes_alone(pg_dsn: str) -> None:
    async def body(a: PostgresOutbox, b: PostgresOutbox) -> None:
        await a.enqueue([note(1)])
        assert await a.claim_lane("bp:inc") is not None
        assert await b.take_over() == []

    two(pg_dsn, body)


def test_live_replicas_are_counted_and_a_closed_one_leaves(pg_dsn: str) -> None:
    async def body(a: PostgresOutbox, b: PostgresOutbox) -> None:
        assert await a.replicas() == 2
        await b.close()
        assert await a.replicas() == 1

    two(pg_dsn, body)


def test_integrations_sharing_a_database_keep_to_their_schemas(pg_dsn: str) -> None:
    """The operator gives each integration its own schema (PAGERBRIDGE_OUTBOX_SCHEMA)."""

    async def main() -> None:
        first = PostgresOutbox(pg_dsn, schema="pagerbridge_one", take_over_grace=0.0)
        second = PostgresOutbox(pg_dsn, schema="pagerbridge_two", take_over_grace=0.0)
        for outbox in (first, second):
            outbox.open(asyncio.get_running_loop())
            await outbox.start()
        try:
            keyed = NewJob(PdNote("inc", "c1", "n"), "bp:inc", idempotency_key="comment:inc:c1")
            (job,) = await first.enqueue([keyed])
            assert isinstance(job, Job)
            assert await second.pending() == []
            (other,) = await second.enqueue([keyed])  # its own idempotency memory
            assert isinstance(other, Job)
            assert [j.id for j in await first.pending()] == [job.id]
            assert await first.enqueue([keyed]) == ["duplicate"]
        finally:
            await first.close()
            await second.close()

    asyncio.run(main())


def test_a_schema_name_must_be_an_identifier() -> None:
    with pytest.raises(ValueError, match="identifier"):
        PostgresOutbox("postgresql://x@127.0.0.1/db", schema='x"; DROP TABLE y; --')
