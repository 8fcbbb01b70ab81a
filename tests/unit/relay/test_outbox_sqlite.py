"""The SQLite adapter's own promises beyond the conformance suite: durability across a
reopen, idempotency, WAL mode and group commit (real SQLite files)."""

from __future__ import annotations

import asyncio
import sqlite3

from pagerbridge.relay.outbox.jobs import PdNote
from pagerbridge.relay.outbox.sqlite import NewJob, Outbox


async def test_outbox_durable_idempotent_and_group_committed(tmp_path):
    path = str(tmp_path / "o.db")
    outbox = Outbox(path)
    outbox.open(asyncio.get_running_loop())
    jobs = [
        NewJob(PdNote("i", str(i), "note"), f"key{i}", idempotency_key=f"id{i}") for i in range(300)
    ]
    results = await asyncio.gather(*(outbox.enqueue([j]) for j in jobs))
    assert all(not isinstance(r[0], str) for r in results)
    # 300 concurrent enqueues shared far fewer commits (one fsync each).
    assert outbox.commits < 100
    again = await outbox.enqueue([jobs[0]])
    assert again == ["duplicate"]
    skipped = await outbox.enqueue([NewJob(PdNote("i", "x", "n"), "x", unless_seen="id1")])
    assert skipped == ["echo"]
    await outbox.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT count(*) FROM jobs").fetchone()[0] == 300
    conn.close()
    reopened = Outbox(path)
    reopened.open(asyncio.get_running_loop())
    pending = await reopened.pending()
    assert [j.spec for j in pending] == [PdNote("i", str(i), "note") for i in range(300)]
    await reopened.complete(pending[0].id, remember=["m1"])
    assert await reopened.seen("m1")
    await reopened.dead_letter(pending[1], 400, "bad")
    assert len(await reopened.pending()) == 298
    assert (await reopened.dead_letters())[0]["status"] == 400
    assert await reopened.prune(3600) == 0
    assert await reopened.prune(-1) > 300  # everything is older than "the future"
    assert not await reopened.seen("m1")
    await reopened.close()
