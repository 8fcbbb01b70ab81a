"""The Dispatcher in-process: no relay process, everything else real.

A real SQLite outbox on a tmp file, the relay's real handlers (relay.outbound.to_pagerduty,
to_bigpanda) and real HTTP to the dev kit's PagerDuty and BigPanda simulators on loopback;
faults come from the simulators' fault injector. Each test drives one row of
relay.outbound.retry's table through the whole delivery path and checks what the
dispatcher carried out: the upstream's state, the outbox, the metrics.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from pagerbridge.clients.errors import Unauthorized
from pagerbridge.relay.config import settings as settings_mod
from pagerbridge.relay.config.watch import SettingsHolder
from pagerbridge.relay.context import RelayContext
from pagerbridge.relay.health import UpstreamHealth
from pagerbridge.relay.metrics import RelayMetrics
from pagerbridge.relay.options import DEFAULTS
from pagerbridge.relay.outbound.dispatcher import Dispatcher
from pagerbridge.relay.outbound.ratelimit import RateLimiter
from pagerbridge.relay.outbound.retry import RetryPolicy
from pagerbridge.relay.outbound.to_bigpanda import BigPandaDelivery
from pagerbridge.relay.outbound.to_pagerduty import PagerDutyDelivery
from pagerbridge.relay.outbox.jobs import BpComment, BpResolve, JobSpec, PdEvent, PdNote
from pagerbridge.relay.outbox.port import Job, NewJob
from pagerbridge.relay.outbox.sqlite import Outbox
from pagerbridge_devkit.sandbox.bigpanda import DEFAULT_API_TOKEN as BP_TOKEN
from pagerbridge_devkit.sandbox.bigpanda import DEFAULT_ENVIRONMENT_ID, BigPandaSimulator
from pagerbridge_devkit.sandbox.pagerduty import (
    DEFAULT_API_TOKEN,
    DEFAULT_ROUTING_KEY,
    PagerDutySimulator,
)
from pagerbridge_devkit.sandbox.server import BackgroundServer

from .relayproc import write_config

# Every wait here is bounded by the retry policy's own delays (backoff(0..3) < 8 s in all,
# plus the outage pause), far inside this bound; it only stops a broken test.
IDLE_LIMIT = 60.0
BP_INCIDENTS = f"/resources/v2.0/environments/{DEFAULT_ENVIRONMENT_ID}/incidents"
UNAUTHORIZED_RETRY = 0.05  # the slow pace, shortened so the test does not wait a minute


@pytest.fixture
def bp_sim_env() -> Iterator[tuple[BigPandaSimulator, str]]:
    sim = BigPandaSimulator(requests_per_second=None)
    with BackgroundServer(sim.app) as server:
        yield sim, server.url
    sim.close()


@dataclass
class Wired:
    dispatcher: Dispatcher
    outbox: Outbox
    metrics: RelayMetrics
    unauthorized: list[tuple[Job, Unauthorized]]

    async def deliver(self, *specs: JobSpec, key: str) -> list[Job]:
        """Store the jobs as an inbound endpoint would, hand them over, wait until done."""
        stored = await self.outbox.enqueue([NewJob(spec, ordering_key=key) for spec in specs])
        jobs = [job for job in stored if isinstance(job, Job)]
        assert len(jobs) == len(specs)
        self.dispatcher.submit(jobs)
        assert await self.dispatcher.wait_idle(IDLE_LIMIT), "the dispatcher never went idle"
        return jobs

    def count(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    def deliveries(self, kind: str, outcome: str) -> float:
        return self.count("pagerbridge_relay_deliveries_total", kind=kind, outcome=outcome)

    def dead(self, kind: str, reason: str) -> float:
        return self.count("pagerbridge_relay_dead_letters_total", kind=kind, reason=reason)


async def _wired(tmp_path: Path, pd_url: str, bp_url: str | None) -> AsyncIterator[Wired]:
    config = write_config(
        tmp_path,
        pd_url=pd_url,
        routing_key=DEFAULT_ROUTING_KEY,
        pd_api_token=DEFAULT_API_TOKEN,
        bp_url=bp_url,
        bp_api_token=BP_TOKEN if bp_url else None,
        bp_environment=DEFAULT_ENVIRONMENT_ID if bp_url else None,
    )
    settings = settings_mod.load(str(config))
    metrics = RelayMetrics()
    outbox = Outbox(str(tmp_path / "outbox.db"))
    outbox.open(asyncio.get_running_loop())
    await outbox.start()
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0)) as http:
        ctx = RelayContext(
            holder=SettingsHolder(str(config), settings, metrics, DEFAULTS.reload_interval),
            jobs=outbox,
            memory=outbox,
            metrics=metrics,
            limiter=RateLimiter({}),
            health=UpstreamHealth(metrics),
            http=http,
        )
        to_pd, to_bp = PagerDutyDelivery(ctx), BigPandaDelivery(ctx)
        unauthorized: list[tuple[Job, Unauthorized]] = []
        dispatcher = Dispatcher(
            outbox,
            {
                PdEvent.KIND: to_pd.event,
                PdNote.KIND: to_pd.note,
                BpResolve.KIND: to_bp.resolve,
                BpComment.KIND: to_bp.comment,
            },
            metrics,
            concurrency=4,
            on_unauthorized=lambda job, exc: unauthorized.append((job, exc)),
            gates={
                PdEvent.KIND: to_pd.event_gate,
                PdNote.KIND: to_pd.note_gate,
                BpResolve.KIND: to_bp.resolve_gate,
                BpComment.KIND: to_bp.comment_gate,
            },
            policy=RetryPolicy(unauthorized_retry=UNAUTHORIZED_RETRY),
        )
        try:
            yield Wired(dispatcher, outbox, metrics, unauthorized)
        finally:
            await dispatcher.close()
            await outbox.close()


@pytest.fixture
async def to_pd(
    tmp_path: Path, pd_sim: tuple[PagerDutySimulator, str]
) -> AsyncIterator[tuple[Wired, PagerDutySimulator]]:
    sim, url = pd_sim
    async for wired in _wired(tmp_path, url, None):
        yield wired, sim


@pytest.fixture
async def to_bp(
    tmp_path: Path,
    pd_sim: tuple[PagerDutySimulator, str],
    bp_sim_env: tuple[BigPandaSimulator, str],
) -> AsyncIterator[tuple[Wired, BigPandaSimulator]]:
    sim, url = bp_sim_env
    async for wired in _wired(tmp_path, pd_sim[1], url):
        yield wired, sim


def event(incident_id: str, action: str = "trigger", summary: str = "CPU high") -> PdEvent:
    body: dict[str, Any] = {"event_action": action, "dedup_key": incident_id}
    if action == "trigger":
        body["payload"] = {"summary": summary, "source": "db-1", "severity": "critical"}
    return PdEvent(incident_id=incident_id, action=action, event=body)  # type: ignore[arg-type]


async def test_success_deletes_the_job_and_counts_it_delivered(to_pd):
    wired, sim = to_pd
    await wired.deliver(event("inc-ok"), key="inc-ok")
    found = sim.incident_by_key("inc-ok")
    assert found is not None
    assert found.status == "triggered"
    assert await wired.outbox.pending() == []
    assert wired.deliveries("pd_event", "delivered") == 1
    assert await wired.outbox.dead_letters() == []


async def test_transient_failures_are_retried_with_backoff(to_pd):
    wired, sim = to_pd
    rule = sim.faults.fail_next(2, 503, path_prefix="/v2/enqueue")
    await wired.deliver(event("inc-503"), key="inc-503")
    assert rule.remaining == 0
    assert sim.incident_by_key("inc-503") is not None
    assert wired.deliveries("pd_event", "transient") == 2
    assert wired.deliveries("pd_event", "delivered") == 1
    # Exactly one event reached PagerDuty's state: the failed attempts were not half-applied.
    assert len(sim.incident_by_key("inc-503").events) == 1
    assert await wired.outbox.pending() == []


async def test_429_slows_down_and_retries(to_pd):
    wired, sim = to_pd
    sim.faults.fail_next(1, 429, path_prefix="/v2/enqueue", headers={"Retry-After": "0"})
    await wired.deliver(event("inc-429"), key="inc-429")
    assert wired.deliveries("pd_event", "rate_limited") == 1
    assert wired.deliveries("pd_event", "delivered") == 1
    assert sim.incident_by_key("inc-429") is not None
    assert wired.deliveries("pd_event", "transient") == 0


async def test_unauthorized_is_retried_at_the_slow_pace_and_reported(to_pd):
    wired, sim = to_pd
    sim.faults.fail_next(1, 401, path_prefix="/v2/enqueue")
    await wired.deliver(event("inc-401"), key="inc-401")
    assert wired.deliveries("pd_event", "unauthorized") == 1
    assert wired.deliveries("pd_event", "delivered") == 1
    assert [exc.status for _, exc in wired.unauthorized] == [401]
    assert wired.dead("pd_event", "rejected") == 0  # a PermanentError, yet never dead


async def test_permanent_rejection_is_dead_lettered_at_once(to_pd):
    wired, sim = to_pd
    sim.faults.fail_next(1, 400, path_prefix="/v2/enqueue", body={"status": "invalid event"})
    (job,) = await wired.deliver(event("inc-400"), key="inc-400")
    assert sim.incident_by_key("inc-400") is None
    (dead,) = await wired.outbox.dead_letters()
    assert dead["job_id"] == job.id
    assert dead["status"] == 400
    assert "invalid event" in dead["error"]
    assert wired.dead("pd_event", "rejected") == 1
    assert wired.deliveries("pd_event", "rejected") == 1
    assert await wired.outbox.pending() == []


async def test_bigpanda_409_already_resolved_counts_as_done(to_bp):
    wired, sim = to_bp
    incident = sim.open_incident([{"host": "db-1", "check": "cpu", "status": "critical"}])
    sim.resolve_incident(incident.id)  # a human was faster: the relay's resolve gets 409
    await wired.outbox.save_incident(incident.id, pd_incident_id="PD1")
    await wired.deliver(
        BpResolve(pd_incident_id="PD1", incident_key=incident.id, by="bob@example.com"),
        key="PD1",
    )
    resolves = sim.requests.matching("POST", f"{BP_INCIDENTS}/{incident.id}/resolve")
    assert [r.status for r in resolves] == [409]
    assert wired.deliveries("bp_resolve", "delivered") == 1
    assert await wired.outbox.dead_letters() == []
    assert await wired.outbox.pending() == []


async def test_a_conflict_escaping_a_handler_counts_as_done(to_bp):
    """Conflict's retry class is DONE: the dispatcher records it as delivered (no dead
    letter, no retry) whichever call answered 409."""
    wired, sim = to_bp
    incident = sim.open_incident([{"host": "db-2", "check": "cpu", "status": "critical"}])
    await wired.outbox.save_incident(incident.id, pd_incident_id="PD2")
    sim.faults.fail_next(1, 409, path_prefix=f"{BP_INCIDENTS}/{incident.id}/comments")
    await wired.deliver(
        BpComment(pd_incident_id="PD2", content="looking", incident_key=incident.id),
        key="PD2",
    )
    comments = sim.requests.matching("POST", f"{BP_INCIDENTS}/{incident.id}/comments")
    assert [r.status for r in comments] == [409]
    assert wired.deliveries("bp_comment", "delivered") == 1
    assert await wired.outbox.dead_letters() == []
    assert await wired.outbox.pending() == []


async def test_jobs_of_one_incident_are_delivered_in_order_across_retries(to_pd):
    wired, sim = to_pd
    # The first event fails twice: the later ones of its incident must wait for it, while
    # another incident's event is not held up by them.
    sim.faults.fail_next(2, 503, path_prefix="/v2/enqueue")
    stored = await wired.outbox.enqueue(
        [
            NewJob(event("inc-a", summary="first"), ordering_key="inc-a"),
            NewJob(event("inc-a", summary="second"), ordering_key="inc-a"),
            NewJob(event("inc-a", action="resolve"), ordering_key="inc-a"),
        ]
    )
    wired.dispatcher.submit([job for job in stored if isinstance(job, Job)])
    await wired.deliver(event("inc-b"), key="inc-b")
    assert await wired.dispatcher.wait_idle(IDLE_LIMIT)
    a = sim.incident_by_key("inc-a")
    assert a is not None
    assert a.status == "resolved"
    actions = [(e["event_action"], e.get("payload", {}).get("summary")) for e in a.events]
    assert actions == [("trigger", "first"), ("trigger", "second"), ("resolve", None)]
    assert sim.incident_by_key("inc-b") is not None
    assert wired.deliveries("pd_event", "delivered") == 4
