"""Poison jobs and hostile identifiers.

Invariants:
- a job's attempts are bounded by count (unexpected errors) and by age (any failure); past
  either bound it is dead-lettered with the reason and a metric, and its incident's lane
  moves on to the next job;
- ids and keys are validated where they arrive: NUL, control characters and lone
  surrogates get a 4xx with a JSON body, never a job that cannot be delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from pagerbridge.relay.inbound.bigpanda_webhook import ordering_key
from pagerbridge.relay.inbound.signatures import sign
from pagerbridge.relay.outbox.jobs import PdEvent
from pagerbridge.relay.outbox.sqlite import NewJob, Outbox
from pagerbridge_devkit.sandbox.pagerduty import DEFAULT_API_TOKEN, DEFAULT_ROUTING_KEY
from pagerbridge_devkit.waiting import wait_for

from .conftest import start_relay
from .relayproc import PD_WEBHOOK_SECRET, write_config
from .support import incident

# Every test here starts a real relay process.
pytestmark = pytest.mark.component


def store_jobs(path: Path, jobs: list[NewJob], raw_first: tuple[str, str, str]) -> None:
    """Write jobs through the outbox interface after one row (kind, ordering key, payload)
    as a relay of another version (or a hand edit) might have left it."""

    async def run() -> None:
        outbox = Outbox(str(path))
        outbox.open(asyncio.get_running_loop())
        await outbox.close()
        with contextlib.closing(sqlite3.connect(path)) as conn, conn:
            conn.execute(
                "INSERT INTO jobs(kind, ordering_key, payload, created_at) VALUES (?,?,?,?)",
                (*raw_first, time.time()),
            )
        outbox = Outbox(str(path))
        outbox.open(asyncio.get_running_loop())
        await outbox.enqueue(jobs)
        await outbox.close()

    asyncio.run(run())


def test_poison_job_is_dead_lettered_after_bounded_attempts_and_lane_moves_on(
    pd_sim, relays, tmp_path: Path
) -> None:
    sim, url = pd_sim
    good = incident(900)
    key = ordering_key(good["id"])
    # A job that makes the delivery code itself fail (a stored row with no "event", which
    # does not decode), then a good event of the same incident behind it.
    store_jobs(
        tmp_path / "outbox.db",
        [
            NewJob(
                PdEvent(
                    good["id"],
                    "trigger",
                    {
                        "event_action": "trigger",
                        "dedup_key": good["id"],
                        "payload": {"summary": "s", "source": "h", "severity": "critical"},
                    },
                ),
                key,
            ),
        ],
        raw_first=(
            PdEvent.KIND,
            key,
            json.dumps({"incident_id": good["id"], "action": "trigger"}),
        ),
    )
    config = write_config(tmp_path, pd_url=url, routing_key=DEFAULT_ROUTING_KEY)
    relay = start_relay(relays, config, ["--max-error-attempts", "2"])
    wait_for(lambda: sim.incident_by_key(good["id"]), timeout=30, what="the job behind it")
    assert relay.metric("pagerbridge_relay_dead_letters_total", reason="poison") == 1
    assert relay.metric("pagerbridge_relay_deliveries_total", kind="pd_event", outcome="error") == 1
    assert relay.metric("pagerbridge_relay_outbox_pending") == 0
    assert '"reason": "poison"' in relay.logs()


def test_job_past_its_age_bound_is_dead_lettered_and_lane_moves_on(
    pd_sim, relays, tmp_path: Path
) -> None:
    sim, url = pd_sim
    rule = sim.faults.fail_next(None, 503, path_prefix="/v2/enqueue")
    config = write_config(tmp_path, pd_url=url, routing_key=DEFAULT_ROUTING_KEY)
    relay = start_relay(relays, config, ["--give-up-after", "2"])
    first, second = incident(901), incident(902)
    assert relay.post_bigpanda(first).status_code == 202
    wait_for(
        lambda: relay.metric("pagerbridge_relay_dead_letters_total", reason="expired") == 1,
        timeout=30,
        what="the failing job to expire",
    )
    sim.faults.clear()
    del rule
    assert relay.post_bigpanda(second).status_code == 202
    wait_for(lambda: sim.incident_by_key(second["id"]), timeout=30)
    assert sim.incident_by_key(first["id"]) is None
    assert relay.metric("pagerbridge_relay_outbox_pending") == 0


HOSTILE_IDS = ["a\x00b", "\x00", "x\x1by", "a\x7f", "a\x85b", "x\ud800y", "\udfff", "a" * 256]


def test_hostile_ids_get_a_json_4xx_at_both_edges(pd_sim, relays, tmp_path: Path) -> None:
    _sim, url = pd_sim
    config = write_config(
        tmp_path,
        pd_url=url,
        routing_key=DEFAULT_ROUTING_KEY,
        pd_api_token=DEFAULT_API_TOKEN,
        webhook_secrets=[PD_WEBHOOK_SECRET],
    )
    relay = start_relay(relays, config)
    for bad in HOSTILE_IDS:
        body = incident(903)
        body["id"] = bad
        r = relay.post_bigpanda(json.dumps(body).encode())  # ensure_ascii: \udXXX escapes
        assert r.status_code == 422, (bad, r.text)
        assert set(r.json()) == {"error", "message"}
        for data in (
            {"id": bad, "incident_key": "inc-1"},
            {"id": "Q1A2B3", "incident_key": bad},
        ):
            raw = json.dumps({"event": {"event_type": "incident.resolved", "data": data}})
            r = httpx.post(
                relay.url + "/v1/pagerduty/webhook",
                content=raw.encode(),
                headers={
                    "Content-Type": "application/json",
                    "X-PagerDuty-Signature": sign(PD_WEBHOOK_SECRET, raw.encode()),
                },
                timeout=10,
            )
            assert r.status_code == 422, (bad, data, r.text)
            assert set(r.json()) == {"error", "message"}
    assert relay.metric("pagerbridge_relay_jobs_enqueued_total") == 0
