"""What every outbox backend must guarantee for issue 13's invariants, stated against the
``Outbox`` interface only (no SQL), so that a PostgreSQL adapter can be added to
``BACKENDS`` and run the same tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from pagerbridge.relay.outbox import IncidentUpdate, NewJob, Outbox

OutboxFactory = Callable[[], Outbox]


def sqlite_backend(tmp_path: Path) -> OutboxFactory:
    return lambda: Outbox(str(tmp_path / "outbox.db"))


BACKENDS = {"sqlite": sqlite_backend}


@pytest.fixture(params=sorted(BACKENDS))
def new_outbox(request: pytest.FixtureRequest, tmp_path: Path) -> OutboxFactory:
    return BACKENDS[request.param](tmp_path)


def run(new_outbox: OutboxFactory, body: Callable[[Outbox], Awaitable[object]]) -> object:
    async def main() -> object:
        outbox = new_outbox()
        outbox.open(asyncio.get_running_loop())
        try:
            return await body(outbox)
        finally:
            await outbox.close()

    return asyncio.run(main())


def test_jobs_loaded_from_the_store_are_marked_restored(new_outbox: OutboxFactory) -> None:
    """A job the process did not submit itself may have been half-done by a killed process:
    the note handler relies on this mark to look before writing (defect 1)."""

    async def submit(outbox: Outbox) -> object:
        (job,) = await outbox.enqueue([NewJob("pd_note", "bp:i", {"content": "x"})])
        assert not isinstance(job, str)
        assert job.restored is False  # submitted by this process: never attempted yet
        return job.id

    job_id = run(new_outbox, submit)

    async def reload(outbox: Outbox) -> object:
        return await outbox.pending()

    (restored,) = run(new_outbox, reload)  # type: ignore[misc]
    assert restored.id == job_id
    assert restored.restored is True


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

    async def body(outbox: Outbox) -> object:
        for n, step in enumerate(history):
            (job,) = await outbox.enqueue([NewJob("pd_event", "bp:inc", {"n": n})])
            assert not isinstance(job, str)
            await outbox.complete(job.id, incident=updates[step])
        record = await outbox.incident("inc")
        return None if record is None else record.absent

    assert run(new_outbox, body) is absent
