"""What every outbox adapter must guarantee, stated against the port
(:class:`pagerbridge.relay.outbox.port.OutboxPort`) only, no SQL: each test runs against a
real SQLite file and a real PostgreSQL server (dev kit), each opened fresh per step like a
restarted relay.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from pagerbridge.relay.incidents.overrides import Routing
from pagerbridge.relay.outbox.jobs import BpComment, BpResolve, PdEvent, PdNote, Undecodable
from pagerbridge.relay.outbox.port import (
    IncidentMark,
    IncidentUpdate,
    Job,
    NewJob,
    OutboxClosed,
    OutboxPort,
    ReplayConflict,
)
from pagerbridge.relay.outbox.postgres import PostgresOutbox
from pagerbridge.relay.outbox.sqlite import Outbox

OutboxFactory = Callable[[], OutboxPort]
CLOCK_SLACK = 0.005  # timestamps are taken by the store (a database clock may round)


def sqlite_backend(request: pytest.FixtureRequest, tmp_path: Path) -> OutboxFactory:
    return lambda: Outbox(str(tmp_path / "outbox.db"))


def postgres_backend(request: pytest.FixtureRequest, tmp_path: Path) -> OutboxFactory:
    dsn: str = request.getfixturevalue("pg_dsn")
    return lambda: PostgresOutbox(dsn, take_over_grace=0.0)


BACKENDS = {"sqlite": sqlite_backend, "postgresql": postgres_backend}


@pytest.fixture(params=sorted(BACKENDS))
def new_outbox(request: pytest.FixtureRequest, tmp_path: Path) -> OutboxFactory:
    return BACKENDS[request.param](request, tmp_path)


def run(new_outbox: OutboxFactory, body: Callable[[OutboxPort], Awaitable[Any]]) -> Any:
    async def main() -> object:
        outbox = new_outbox()
        outbox.open(asyncio.get_running_loop())
        await outbox.start()
        try:
            return await body(outbox)
        finally:
            await outbox.close()

    return asyncio.run(main())


EVENT = PdEvent(
    "inc-1",
    "trigger",
    {"event_action": "trigger", "dedup_key": "inc-1", "payload": {"summary": "é ✓"}},
    Routing(key="k" * 32, tag="pd_key"),
)
NOTE = PdNote("inc-1", "c1", "a note")
RESOLVE = BpResolve("PABC123", incident_key="inc-1", by="Ann")
COMMENT = BpComment("PABC123", "hello", incident_key=None, by=None, note_id="PN1")


def test_every_job_kind_round_trips_through_the_store(new_outbox: OutboxFactory) -> None:
    specs = [EVENT, NOTE, RESOLVE, COMMENT]

    async def submit(outbox: OutboxPort) -> list[Any]:
        return await outbox.enqueue([NewJob(spec, f"lane-{n}") for n, spec in enumerate(specs)])

    stored = run(new_outbox, submit)
    assert [job.spec for job in stored] == specs
    pending: list[Job] = run(new_outbox, lambda outbox: outbox.pending())
    assert [job.spec for job in pending] == specs
    assert [job.ordering_key for job in pending] == [f"lane-{n}" for n in range(4)]
    assert [job.kind for job in pending] == ["pd_event", "pd_note", "bp_resolve", "bp_comment"]


def test_jobs_loaded_from_the_store_are_marked_restored(new_outbox: OutboxFactory) -> None:
    """A job the process did not submit itself may have been half-done by a killed process:
    the note handler relies on this mark to look before writing (defect 1)."""

    async def submit(outbox: OutboxPort) -> object:
        (job,) = await outbox.enqueue([NewJob(NOTE, "bp:i")])
        assert not isinstance(job, str)
        assert job.restored is False  # submitted by this process: never attempted yet
        return job.id

    job_id = run(new_outbox, submit)
    (restored,) = run(new_outbox, lambda outbox: outbox.pending())
    assert restored.id == job_id
    assert restored.restored is True


def test_idempotency_echo_and_stale_webhooks(new_outbox: OutboxFactory) -> None:
    async def body(outbox: OutboxPort) -> None:
        first = await outbox.enqueue([NewJob(NOTE, "bp:i", idempotency_key="comment:i:c1")])
        assert isinstance(first[0], Job)
        assert await outbox.enqueue([NewJob(NOTE, "bp:i", idempotency_key="comment:i:c1")]) == [
            "duplicate"
        ]
        await outbox.remember(["wrote:x"])
        assert await outbox.enqueue([NewJob(NOTE, "bp:i", unless_seen="wrote:x")]) == ["echo"]
        newer = NewJob(EVENT, "bp:inc-1", incident=IncidentMark("inc-1", "trigger", 200.0))
        older = NewJob(EVENT, "bp:inc-1", incident=IncidentMark("inc-1", "trigger", 100.0))
        assert isinstance((await outbox.enqueue([newer]))[0], Job)
        assert await outbox.enqueue([older]) == ["stale"]
        assert len(await outbox.pending()) == 2

    run(new_outbox, body)


def test_concurrent_enqueues_store_each_key_once(new_outbox: OutboxFactory) -> None:
    """Webhooks answered at the same moment share commits (group commit in both adapters);
    each still gets its own answer, and a key sent by several of them is stored once."""

    async def body(outbox: OutboxPort) -> list[Any]:
        same = NewJob(NOTE, "bp:i", idempotency_key="comment:i:c1")
        distinct = [
            NewJob(PdNote("i", f"c{n}", "x"), f"bp:{n}", idempotency_key=f"k{n}") for n in range(30)
        ]
        results = await asyncio.gather(
            *(outbox.enqueue([same]) for _ in range(20)),
            *(outbox.enqueue([job]) for job in distinct),
        )
        return [r[0] for r in results]

    results = run(new_outbox, body)
    same, distinct = results[:20], results[20:]
    assert sum(isinstance(r, Job) for r in same) == 1
    assert sum(r == "duplicate" for r in same) == 19
    assert all(isinstance(r, Job) for r in distinct)
    assert [r.spec.comment_id for r in distinct] == [f"c{n}" for n in range(30)]
    assert len({r.id for r in distinct}) == 30


def test_a_reopen_gets_a_new_epoch_so_it_is_not_a_duplicate(new_outbox: OutboxFactory) -> None:
    """The same trigger content after a resolve is a new incident life, not a re-send."""

    def event(action: str, at: float) -> NewJob:
        return NewJob(
            EVENT,
            "bp:inc-1",
            idempotency_key=f"ev:inc-1:{{epoch}}:{action}",
            incident=IncidentMark("inc-1", action, at),
        )

    async def body(outbox: OutboxPort) -> list[Any]:
        results = []
        for action, at in [("trigger", 1), ("trigger", 2), ("resolve", 3), ("trigger", 4)]:
            (result,) = await outbox.enqueue([event(action, at)])
            results.append(result if isinstance(result, str) else "stored")
        assert await outbox.incident_open("inc-1") is True
        return results

    assert run(new_outbox, body) == ["stored", "duplicate", "stored", "stored"]


def test_a_trigger_and_its_acknowledge_share_one_mark(new_outbox: OutboxFactory) -> None:
    """A snoozed share (sync.snooze) is a trigger and an acknowledge with the same incident
    mark in one enqueue: both stored in order in the lane, both duplicates when re-sent,
    both stale when older, and the acknowledge never ends the incident's life."""
    ack = PdEvent("inc-1", "acknowledge", {"event_action": "acknowledge", "dedup_key": "inc-1"})

    def share(at: float, content: str) -> list[NewJob]:
        mark = IncidentMark("inc-1", "trigger", at)
        return [
            NewJob(EVENT, "bp:inc-1", f"ev:inc-1:{{epoch}}:{content}", incident=mark),
            NewJob(ack, "bp:inc-1", f"ack:inc-1:{{epoch}}:{content}", incident=mark),
        ]

    async def body(outbox: OutboxPort) -> None:
        stored = await outbox.enqueue(share(10.0, "h1"))
        assert [job.spec.action for job in stored if isinstance(job, Job)] == [
            "trigger",
            "acknowledge",
        ]
        assert await outbox.enqueue(share(10.0, "h1")) == ["duplicate", "duplicate"]
        assert await outbox.enqueue(share(5.0, "h2")) == ["stale", "stale"]
        assert await outbox.incident_open("inc-1") is True
        pending = await outbox.pending()
        assert [(j.spec.action, j.ordering_key) for j in pending] == [  # type: ignore[union-attr]
            ("trigger", "bp:inc-1"),
            ("acknowledge", "bp:inc-1"),
        ]

    run(new_outbox, body)


def test_complete_remembers_forgets_and_records_in_one_step(new_outbox: OutboxFactory) -> None:
    async def body(outbox: OutboxPort) -> None:
        await outbox.remember(["old"])
        (job,) = await outbox.enqueue([NewJob(EVENT, "bp:inc-1")])
        assert isinstance(job, Job)
        await outbox.complete(
            job.id,
            remember=["new"],
            forget=["old"],
            incident=IncidentUpdate("inc-1", routing={"key": None, "tag": None}),
        )
        assert await outbox.pending() == []
        assert await outbox.seen("new")
        assert not await outbox.seen("old")
        record = await outbox.incident("inc-1")
        assert record is not None
        assert record.routing == {"key": None, "tag": None}
        await outbox.save_incident("inc-1", pd_incident_id="PXYZ")
        assert await outbox.incident_by_pd_id("PXYZ") == "inc-1"
        assert await outbox.incident_by_pd_id("PNONE") is None

    run(new_outbox, body)


def test_retry_later_stores_attempts_and_a_replaced_spec(new_outbox: OutboxFactory) -> None:
    """One write channel: a handler replaces the job's spec in memory (an override key
    PagerDuty refused) and the dispatcher's retry stores it."""
    fallback = PdEvent(EVENT.incident_id, EVENT.action, EVENT.event, Routing(tag="pd_key"))

    async def body(outbox: OutboxPort) -> None:
        (job,) = await outbox.enqueue([NewJob(EVENT, "bp:inc-1")])
        assert isinstance(job, Job)
        job.attempts = 3
        job.spec = fallback
        await outbox.retry_later(job, "503 from upstream")

    run(new_outbox, body)
    (job,) = run(new_outbox, lambda outbox: outbox.pending())
    assert job.attempts == 3
    assert job.spec == fallback


def test_an_attempt_is_recorded_before_its_call_and_survives_a_killed_process(
    new_outbox: OutboxFactory,
) -> None:
    """An attempt's start is durable before the upstream call: a process killed during the
    call (never recording the outcome) leaves the job with the attempt counted and marked
    interrupted; attempts interrupted in a row add up; a recorded outcome clears the mark."""

    async def store(outbox: OutboxPort) -> Job:
        (job,) = await outbox.enqueue([NewJob(EVENT, "bp:inc-1")])
        assert isinstance(job, Job)
        await outbox.begin_attempt(job)
        return job  # ...and the process dies during the call

    run(new_outbox, store)
    for interrupted in (1, 2):
        (job,) = run(new_outbox, lambda outbox: outbox.take_over())
        assert job.attempts == interrupted
        assert job.interrupted == interrupted
        run(new_outbox, lambda outbox, job=job: outbox.begin_attempt(job))  # dies again

    async def fail(outbox: OutboxPort) -> None:
        (job,) = await outbox.pending()
        assert job.interrupted == 3
        job.attempts += 1  # what the dispatcher's decision counts
        await outbox.retry_later(job, "503 from upstream")

    run(new_outbox, fail)
    (job,) = run(new_outbox, lambda outbox: outbox.pending())
    assert job.attempts == 4
    assert job.interrupted == 0


def test_dead_letters_are_listed_and_can_be_replayed(new_outbox: OutboxFactory) -> None:
    async def body(outbox: OutboxPort) -> None:
        assert await outbox.oldest_pending_age() is None
        (job,) = await outbox.enqueue([NewJob(NOTE, "bp:inc-1")])
        assert isinstance(job, Job)
        age = await outbox.oldest_pending_age()
        assert age is not None
        assert age >= 0
        await outbox.dead_letter(job, 400, "rejected")
        assert await outbox.pending() == []
        (letter,) = await outbox.dead_letters()
        assert letter == {
            "job_id": job.id,
            "kind": "pd_note",
            "ordering_key": "bp:inc-1",
            "status": 400,
            "error": "rejected",
        }
        assert await outbox.replay_dead_letter(job.id) is True
        assert await outbox.replay_dead_letter(job.id) is False  # once
        assert await outbox.dead_letters() == []
        (again,) = await outbox.pending()
        assert again.spec == NOTE
        assert again.attempts == 0
        assert again.id == job.id  # under its own id: the admin API and the logs name it
        assert again.created_at >= job.created_at  # a new acceptance: its age restarts

    run(new_outbox, body)


def test_a_replay_waits_until_its_incident_has_no_pending_job(new_outbox: OutboxFactory) -> None:
    """Queued behind newer jobs of its incident, a replayed job would reach PagerDuty after
    them (and after a restart, loaded by id, before them): refused until they are done."""

    async def body(outbox: OutboxPort) -> None:
        (old,) = await outbox.enqueue([NewJob(NOTE, "bp:inc-1")])
        assert isinstance(old, Job)
        await outbox.dead_letter(old, 400, "rejected")
        (newer,) = await outbox.enqueue([NewJob(PdNote("inc-1", "c2", "later"), "bp:inc-1")])
        await outbox.enqueue([NewJob(PdNote("inc-2", "c3", "other"), "bp:inc-2")])
        assert isinstance(newer, Job)
        with pytest.raises(ReplayConflict):
            await outbox.replay_dead_letter(old.id)
        assert [letter["job_id"] for letter in await outbox.dead_letters()] == [old.id]
        await outbox.complete(newer.id)
        assert await outbox.replay_dead_letter(old.id) is True
        lane = [job.id for job in await outbox.pending() if job.ordering_key == "bp:inc-1"]
        assert lane == [old.id]

    run(new_outbox, body)


def test_the_oldest_pending_age_follows_the_oldest_job(new_outbox: OutboxFactory) -> None:
    async def body(outbox: OutboxPort) -> None:
        (first,) = await outbox.enqueue([NewJob(NOTE, "bp:inc-1")])
        await asyncio.sleep(0.05)
        before_second = time.time()
        (second,) = await outbox.enqueue([NewJob(PdNote("inc-2", "c2", "x"), "bp:inc-2")])
        assert isinstance(first, Job)
        assert isinstance(second, Job)
        both = await outbox.oldest_pending_age()
        assert both is not None
        assert both >= 0.05 - CLOCK_SLACK  # the first job's age
        await outbox.complete(first.id)
        only_second = await outbox.oldest_pending_age()
        assert only_second is not None
        assert only_second <= time.time() - before_second + CLOCK_SLACK  # the second's age
        await outbox.complete(second.id)
        assert await outbox.oldest_pending_age() is None

    run(new_outbox, body)


def test_an_undecodable_row_survives_and_is_dead_lettered_verbatim(
    new_outbox: OutboxFactory,
) -> None:
    bad = Undecodable("pd_event", '{"incident_id": "x"}', "event is not an object")

    async def body(outbox: OutboxPort) -> None:
        (job,) = await outbox.enqueue([NewJob(NOTE, "bp:x")])
        assert isinstance(job, Job)
        job.spec = bad
        await outbox.retry_later(job, "boom")

    run(new_outbox, body)
    (job,) = run(new_outbox, lambda outbox: outbox.pending())
    assert isinstance(job.spec, Undecodable)
    assert job.spec.payload == bad.payload


def test_prune_forgets_old_memory_only(new_outbox: OutboxFactory) -> None:
    async def body(outbox: OutboxPort) -> None:
        await outbox.remember(["a", "b"])
        assert await outbox.prune(3600) == 0
        assert await outbox.seen("a")
        assert await outbox.prune(-1) == 2
        assert not await outbox.seen("a")

    run(new_outbox, body)


def test_a_fresh_process_takes_over_every_pending_lane(new_outbox: OutboxFactory) -> None:
    """After a restart (SQLite) or a replica's death (PostgreSQL, once its leases expired)
    the pending jobs are taken over, in acceptance order, marked restored."""

    async def submit(outbox: OutboxPort) -> None:
        await outbox.enqueue([NewJob(NOTE, "bp:a"), NewJob(RESOLVE, "pd:b")])
        await outbox.enqueue([NewJob(EVENT, "bp:a")])

    run(new_outbox, submit)

    jobs = run(new_outbox, lambda outbox: outbox.take_over())
    assert [job.spec for job in jobs] == [NOTE, RESOLVE, EVENT]
    assert all(job.restored for job in jobs)


def test_a_closed_outbox_refuses_writes(new_outbox: OutboxFactory) -> None:
    async def body() -> None:
        outbox = new_outbox()
        outbox.open(asyncio.get_running_loop())
        await outbox.start()
        assert await outbox.check_writable()
        await outbox.close()
        with pytest.raises(OutboxClosed):
            await outbox.enqueue([NewJob(NOTE, "bp:i")])

    asyncio.run(body())


def test_an_override_key_is_not_kept_once_the_resolve_is_delivered(
    new_outbox: OutboxFactory,
) -> None:
    """Issue 18: a routing key from an alert tag is a credential; the store keeps it only
    while a resolve may still need it."""
    key = "o" * 32

    async def body(outbox: OutboxPort) -> None:
        (trigger,) = await outbox.enqueue([NewJob(EVENT, "bp:inc-1")])
        assert isinstance(trigger, Job)
        await outbox.complete(
            trigger.id, incident=IncidentUpdate("inc-1", routing={"key": key, "tag": "t"})
        )
        stored = await outbox.incident("inc-1")
        assert stored is not None
        assert stored.routing == {"key": key, "tag": "t"}  # the resolve will need it
        (resolve,) = await outbox.enqueue([NewJob(EVENT, "bp:inc-1")])
        assert isinstance(resolve, Job)
        await outbox.complete(resolve.id, incident=IncidentUpdate("inc-1", clear_pd_incident=True))
        stored = await outbox.incident("inc-1")
        assert stored is not None
        assert stored.routing is None

    run(new_outbox, body)


@pytest.mark.parametrize(
    ("history", "absent"),
    [
        (["skipped"], True),
        (["delivered", "skipped"], False),  # an earlier trigger made it live in PagerDuty
        (["delivered", "resolved", "skipped"], True),
        (["skipped", "delivered"], False),  # reopened and delivered after all
        (["skipped", "delivered", "resolved"], False),
        ([], None),
    ],
)
def test_incident_absent_only_when_no_trigger_is_live(
    new_outbox: OutboxFactory, history: list[str], absent: bool | None
) -> None:
    """Dependent jobs are skipped only when the incident will not exist in PagerDuty
    (defect 7): a skipped trigger makes it absent unless a delivered one is live."""
    updates = {
        "skipped": IncidentUpdate("inc", never_created=True),
        "delivered": IncidentUpdate("inc", routing={"key": None}),
        "resolved": IncidentUpdate("inc", clear_pd_incident=True),
    }

    async def body(outbox: OutboxPort) -> object:
        for step in history:
            (job,) = await outbox.enqueue([NewJob(EVENT, "bp:inc")])
            assert not isinstance(job, str)
            await outbox.complete(job.id, incident=updates[step])
        record = await outbox.incident("inc")
        return None if record is None else record.absent

    assert run(new_outbox, body) is absent


def test_an_attempts_start_notes_its_trigger_in_the_same_commit(
    new_outbox: OutboxFactory,
) -> None:
    """``begin_attempt`` with a trigger: the attempt counted and the first-trigger time noted,
    both durable before the call (a process killed during it finds both); a later attempt's
    time does not replace the first, and an attempt without a trigger notes nothing."""

    async def begin(outbox: OutboxPort) -> None:
        (job,) = await outbox.enqueue([NewJob(EVENT, "bp:inc-7")])
        (other,) = await outbox.enqueue([NewJob(NOTE, "bp:inc-8")])
        assert isinstance(job, Job)
        assert isinstance(other, Job)
        await outbox.begin_attempt(job, trigger=("inc-7", 1000.0))
        await outbox.begin_attempt(other)  # ...and the process dies during both calls

    run(new_outbox, begin)

    async def again(outbox: OutboxPort) -> tuple[Any, ...]:
        jobs = {job.ordering_key: job for job in await outbox.take_over()}
        await outbox.begin_attempt(jobs["bp:inc-7"], trigger=("inc-7", 2000.0))
        return (
            jobs["bp:inc-7"].attempts,
            jobs["bp:inc-7"].interrupted,
            await outbox.first_trigger("inc-7"),
            await outbox.first_trigger("inc-8"),
        )

    assert run(new_outbox, again) == (1, 1, 1000.0, None)
    (job,) = [j for j in run(new_outbox, lambda outbox: outbox.pending()) if j.kind == "pd_event"]
    assert (job.attempts, job.interrupted) == (2, 2)


def test_own_pagerduty_incidents_are_recorded_and_outlive_the_resolve(
    new_outbox: OutboxFactory,
) -> None:
    """Issue 27: which PagerDuty incident our trigger produced; another with the same
    incident_key is nobody's, and a resolve does not forget whose an incident was."""

    async def trigger(outbox: OutboxPort) -> tuple[float, float]:
        first = await outbox.note_trigger("inc-9", 1000.0)
        again = await outbox.note_trigger("inc-9", 2000.0)  # a retry keeps the first
        await outbox.complete(
            (await outbox.enqueue([NewJob(EVENT, "bp:inc-9")]))[0].id,  # type: ignore[union-attr]
            incident=IncidentUpdate("inc-9", routing={"key": None, "tag": None}),
        )
        return first, again

    assert run(new_outbox, trigger) == (1000.0, 1000.0)

    async def bind(outbox: OutboxPort) -> tuple[Any, ...]:
        await outbox.bind_pd_incident("inc-9", "POURS01", "PSVC001")
        record = await outbox.incident("inc-9")
        return (
            record.pd_incident_id if record else None,
            await outbox.owner_of("POURS01"),
            await outbox.owner_of("PTHEIRS"),
            await outbox.first_trigger("inc-9"),
        )

    assert run(new_outbox, bind) == ("POURS01", "inc-9", None, 1000.0)

    async def resolved(outbox: OutboxPort) -> tuple[Any, ...]:
        # The resolve's delivery (one commit) ends the life: the next trigger starts anew.
        await outbox.save_incident("inc-9", clear_pd_incident=True)
        record = await outbox.incident("inc-9")
        return (
            record.pd_incident_id if record else "gone",
            await outbox.owner_of("POURS01"),
            await outbox.first_trigger("inc-9"),
            await outbox.note_trigger("inc-9", 3000.0),  # a reopen: a new life
        )

    assert run(new_outbox, resolved) == (None, "inc-9", None, 3000.0)


def test_open_incidents_longest_unchecked_first(new_outbox: OutboxFactory) -> None:
    """The repair sweep's work list: open on either side, never-checked first, then the
    oldest check; a resolved incident leaves it."""

    async def body(outbox: OutboxPort) -> list[list[tuple[str, bool, bool | None]]]:
        for name in ("a", "b", "c"):
            await outbox.enqueue(
                [
                    NewJob(
                        PdEvent(name, "trigger", {}),
                        f"bp:{name}",
                        incident=IncidentMark(name, "trigger", None),
                    )
                ]
            )
        await outbox.save_incident("a", routing={"key": None, "tag": None})  # delivered
        await outbox.save_incident("d", routing={"key": None, "tag": None})  # no webhook state
        seen = []

        def listing(found: list[Any]) -> list[tuple[str, bool, bool | None]]:
            return [(o.incident_id, o.live, o.open_in_bigpanda) for o in found]

        seen.append(listing(await outbox.open_incidents(10)))
        await outbox.mark_checked(["a", "d"], 100.0)
        await outbox.mark_checked(["b"], 50.0)
        seen.append(listing(await outbox.open_incidents(10)))
        await outbox.enqueue(
            [
                NewJob(
                    PdEvent("c", "resolve", {}), "bp:c", incident=IncidentMark("c", "resolve", None)
                )
            ]
        )
        seen.append(listing(await outbox.open_incidents(2)))
        checked = {o.incident_id: o.checked for o in await outbox.open_incidents(10)}
        assert abs((checked["a"] or 0) - 100.0) < CLOCK_SLACK
        return seen

    first, second, third = run(new_outbox, body)
    assert sorted(first) == [
        ("a", True, True),
        ("b", False, True),
        ("c", False, True),
        ("d", True, None),
    ]
    assert second == [("c", False, True), ("b", False, True), ("a", True, True), ("d", True, None)]
    assert third == [("b", False, True), ("a", True, True)]


def test_close_incident_unless_its_lane_has_work(new_outbox: OutboxFactory) -> None:
    """Both sides resolved, the records still open: closed by the sweep, but never while a
    job of the incident is pending (a reopen's trigger would then look resolved)."""

    async def body(outbox: OutboxPort) -> tuple[bool, bool, list[str]]:
        stored = await outbox.enqueue(
            [
                NewJob(
                    PdEvent("z", "trigger", {}), "bp:z", incident=IncidentMark("z", "trigger", None)
                )
            ]
        )
        refused = await outbox.close_incident("z", "bp:z")
        job = stored[0]
        assert isinstance(job, Job)
        await outbox.complete(job.id, incident=IncidentUpdate("z", routing={"key": None}))
        closed = await outbox.close_incident("z", "bp:z")
        left = [o.incident_id for o in await outbox.open_incidents(10)]
        assert await outbox.incident_open("z") is False
        return refused, closed, left

    assert run(new_outbox, body) == (False, True, [])
