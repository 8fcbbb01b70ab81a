"""The outbox operations behind the admin API and the oldest-pending metric (real SQLite):
``oldest_pending_age`` and ``replay_dead_letter`` with its per-incident order rule."""

from __future__ import annotations

import asyncio
import time

import pytest

from pagerbridge.relay.outbox import NewJob, Outbox, ReplayConflict


@pytest.fixture
async def outbox(tmp_path):
    box = Outbox(str(tmp_path / "o.db"))
    box.open(asyncio.get_running_loop())
    yield box
    await box.close()


async def test_oldest_pending_age(outbox):
    assert await outbox.oldest_pending_age() is None
    before = time.time()
    (first,) = await outbox.enqueue([NewJob("pd_event", "inc-1", {"n": 1})])
    await outbox.enqueue([NewJob("pd_event", "inc-2", {"n": 2})])
    age = await outbox.oldest_pending_age()
    assert age is not None
    assert 0 <= age <= time.time() - before
    # The age is the oldest job's: finishing it makes the next one the oldest.
    await outbox.complete(first.id)
    assert await outbox.oldest_pending_age() <= age + (time.time() - before)
    for job in await outbox.pending():
        await outbox.complete(job.id)
    assert await outbox.oldest_pending_age() is None


async def test_replay_moves_a_dead_letter_back_under_its_id(outbox):
    (job,) = await outbox.enqueue([NewJob("pd_event", "inc-1", {"n": 1})])
    await outbox.dead_letter(job, 400, "invalid event")
    assert await outbox.pending() == []
    assert await outbox.replay_dead_letter(job.id) is True
    (again,) = await outbox.pending()
    assert (again.id, again.kind, again.ordering_key, again.payload) == (
        job.id, "pd_event", "inc-1", {"n": 1},
    )  # fmt: skip
    assert again.attempts == 0
    assert again.created_at >= job.created_at  # a new acceptance: the age bound restarts
    assert await outbox.dead_letters() == []
    assert await outbox.replay_dead_letter(job.id) is False  # no longer a dead letter
    assert await outbox.replay_dead_letter(12345) is False


async def test_replay_is_refused_while_its_incident_has_pending_jobs(outbox):
    (old,) = await outbox.enqueue([NewJob("pd_event", "inc-1", {"n": 1})])
    await outbox.dead_letter(old, 400, "invalid event")
    (newer,) = await outbox.enqueue([NewJob("pd_event", "inc-1", {"n": 2})])
    await outbox.enqueue([NewJob("pd_event", "inc-2", {"n": 3})])  # another incident: no matter
    with pytest.raises(ReplayConflict):
        await outbox.replay_dead_letter(old.id)
    assert [d["job_id"] for d in await outbox.dead_letters()] == [old.id]  # nothing moved
    await outbox.complete(newer.id)
    assert await outbox.replay_dead_letter(old.id) is True
    assert sorted(j.payload["n"] for j in await outbox.pending()) == [1, 3]
