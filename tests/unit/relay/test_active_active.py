"""Active-active relays on one real PostgreSQL outbox: real relay processes, the PagerDuty
simulator.

Invariants:
- two replicas accept and deliver one burst; one is SIGKILLed while deliveries are in
  flight: the survivor takes its lanes over and nothing is lost, nothing duplicated (one
  PagerDuty incident per BigPanda incident, each comment exactly one note), and per incident
  the trigger reaches PagerDuty before the resolve;
- PostgreSQL restarted in the middle of a burst: webhooks get 503 while nothing can be
  stored (readiness false), the relay recovers by itself, and everything it accepted (202)
  is delivered.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from pagerbridge.api.contract import OUTBOX_DSN_ENV
from pagerbridge_devkit.postgres import PostgresServer, find_bin_dir
from pagerbridge_devkit.sandbox.pagerduty import (
    DEFAULT_API_TOKEN,
    DEFAULT_ROUTING_KEY,
    PagerDutySimulator,
)
from pagerbridge_devkit.waiting import wait_for

from .relayproc import RelayProcess, write_config
from .support import incident

# Every test here starts a real relay process.
pytestmark = pytest.mark.component

COMMENTS = 2


def _incident(tag: str, n: int, resolved: bool = False) -> dict[str, Any]:
    body = incident(n, status="ok" if resolved else "critical")
    body["id"] = f"{tag}-{n:03d}"
    body["updatedOn"] = 1764140000 + (10 if resolved else 0)
    body["comments"] = [
        {"id": f"c{c}", "comment": f"step {c} of {body['id']}", "created_by": "a@example.com"}
        for c in range(COMMENTS)
    ]
    return body


def _replicas(
    tmp_path: Path,
    relays: list[RelayProcess],
    pd_url: str,
    dsn: str,
    count: int,
    args: list[list[str]] | None = None,
) -> list[RelayProcess]:
    config = write_config(
        tmp_path, pd_url=pd_url, routing_key=DEFAULT_ROUTING_KEY, pd_api_token=DEFAULT_API_TOKEN
    )
    started = []
    for n in range(count):
        relay = RelayProcess(
            config,
            tmp_path / f"relay-{n}.log",
            args=["--late-trigger-after", "3600", *(args[n] if args else [])],
            env={OUTBOX_DSN_ENV: dsn},
        )
        relays.append(relay)
        started.append(relay.start())
    return started


def _wait_or_explain(relay: RelayProcess, dsn: str, predicate: Any, **kw: Any) -> None:
    """wait_for, and on time-out say what the shared outbox still holds."""
    try:
        wait_for(predicate, **kw)
    except AssertionError as exc:
        bin_dir = find_bin_dir()
        state = subprocess.run(
            [
                str(bin_dir / "psql") if bin_dir else "psql",
                dsn,
                "-c",
                "SELECT id, kind, ordering_key, attempts, last_error FROM pagerbridge_jobs",
                "-c",
                "SELECT *, pagerbridge_now() AS now FROM pagerbridge_lanes",
            ],
            capture_output=True,
            text=True,
        ).stdout
        pending = relay.metric("pagerbridge_relay_outbox_pending")
        raise AssertionError(f"{exc}; survivor pending {pending}; store:\n{state}") from None


def _notes(sim: PagerDutySimulator) -> Counter[tuple[str, str]]:
    found: Counter[tuple[str, str]] = Counter()
    for inc in sim.incidents():
        for note in inc.notes:
            found[(inc.incident_key, note.content.split("\n\n")[0])] += 1
    return found


def _actions(sim: PagerDutySimulator) -> dict[str, list[str]]:
    """Per dedup key, the event actions PagerDuty accepted, in arrival order."""
    out: dict[str, list[str]] = {}
    for entry in list(sim.requests.entries):
        if entry.path != "/v2/enqueue" or entry.status != 202:
            continue
        event = entry.json()
        out.setdefault(event["dedup_key"], []).append(event["event_action"])
    return out


def _assert_delivered_once_in_order(
    sim: PagerDutySimulator, bodies: list[dict[str, Any]], resolved: set[str] | None = None
) -> None:
    """Each incident once in PagerDuty, each comment one note, per incident no trigger
    after its resolve; the ``resolved`` ones (default: all) resolved, the others open."""
    keys = {str(b["id"]) for b in bodies}
    expected = {(str(b["id"]), f"step {c} of {b['id']}") for b in bodies for c in range(COMMENTS)}
    counted = _notes(sim)
    assert set(counted) == expected, "lost or foreign notes"
    duplicated = {k: v for k, v in counted.items() if v != 1}
    assert not duplicated, f"notes written more than once: {duplicated}"
    per_key = Counter(inc.incident_key for inc in sim.incidents())
    assert set(per_key) == keys
    assert all(v == 1 for v in per_key.values()), f"incidents opened twice: {per_key}"
    done = keys if resolved is None else resolved
    for key, actions in _actions(sim).items():
        if key in done:
            assert actions[-1] == "resolve", f"{key}: {actions}"
            assert "trigger" not in actions[actions.index("resolve") :], f"{key}: {actions}"
        else:
            assert set(actions) == {"trigger"}, f"{key}: {actions}"
    assert {inc.incident_key for inc in sim.incidents() if not inc.is_open} == done


def test_replica_killed_mid_burst_survivor_delivers_everything_once_in_order(
    pd_sim, relays, tmp_path: Path, pg_dsn: str
) -> None:
    sim, url = pd_sim
    # Replica a may send one event per minute (its limit), so when its first event is
    # delivered nearly all of its lanes still wait: the kill always leaves work to take over.
    a, b = _replicas(tmp_path, relays, url, pg_dsn, 2, [["--events-rate-limit", "1"], []])
    shared = [_incident("kill", n) for n in range(16)]
    only_a = [_incident("kill", n) for n in range(16, 24)]  # never sent to b
    for n, body in enumerate(shared):
        assert (a if n % 2 else b).post_bigpanda(body).status_code == 202
    for body in only_a:
        assert a.post_bigpanda(body).status_code == 202
    # The same incidents again (BigPanda re-sends whole incidents), to the other replica:
    # the shared idempotency memory makes them no-ops.
    for n, body in enumerate(shared):
        assert (b if n % 2 else a).post_bigpanda(body).status_code == 202
    wait_for(
        lambda: a.metric("pagerbridge_relay_deliveries_total", outcome="delivered") >= 1,
        timeout=60,
        what="replica a to be delivering",
    )
    assert a.metric("pagerbridge_relay_outbox_pending") > 0  # work left to take over
    a.kill()
    for body in shared:  # resolved, through the survivor only
        resolved = _incident("kill", int(str(body["id"]).rsplit("-", 1)[1]), resolved=True)
        assert b.post_bigpanda(resolved).status_code == 202
    everything = shared + only_a
    _wait_or_explain(
        b,
        pg_dsn,
        lambda: (
            len({inc.incident_key for inc in sim.incidents()}) == len(everything)
            and sum(not inc.is_open for inc in sim.incidents()) == len(shared)
            and len(_notes(sim)) == len(everything) * COMMENTS
        ),
        timeout=120,
        what="every incident in PagerDuty, the shared ones resolved, every comment a note",
    )
    wait_for(lambda: b.metric("pagerbridge_relay_outbox_pending") == 0, timeout=60)
    _assert_delivered_once_in_order(sim, everything, resolved={str(x["id"]) for x in shared})


def test_database_restart_mid_burst_503_then_recovers_and_loses_nothing(
    pd_sim, relays, tmp_path: Path, pg_server: PostgresServer, pg_dsn: str
) -> None:
    sim, url = pd_sim
    (relay,) = _replicas(tmp_path, relays, url, pg_dsn, 1)
    bodies = [_incident("pgdown", n) for n in range(20)]
    accepted: list[dict[str, Any]] = []
    for body in bodies[:10]:
        assert relay.post_bigpanda(body).status_code == 202
        accepted.append(body)
    pg_server.stop("immediate")  # like a crash of the database server
    refused = relay.post_bigpanda(bodies[10])
    assert refused.status_code == 503
    assert refused.json()["error"] == "outbox_unavailable"
    assert httpx.get(relay.internal_url + "/readyz", timeout=10).status_code == 503
    pg_server.start()
    # BigPanda retries what got a 503; the relay takes it once the database is back.
    wait_for(
        lambda: relay.post_bigpanda(bodies[10]).status_code == 202,
        timeout=60,
        what="webhooks accepted again",
    )
    for body in bodies[11:]:
        assert relay.post_bigpanda(body).status_code == 202
    wait_for(
        lambda: httpx.get(relay.internal_url + "/readyz", timeout=10).status_code == 200,
        timeout=60,
        what="ready again",
    )
    for n in range(len(bodies)):
        assert relay.post_bigpanda(_incident("pgdown", n, resolved=True)).status_code == 202
    wait_for(
        lambda: (
            sum(not inc.is_open for inc in sim.incidents()) == len(bodies)
            and len(_notes(sim)) == len(bodies) * COMMENTS
        ),
        timeout=120,
        what="everything delivered after the restart",
    )
    wait_for(lambda: relay.metric("pagerbridge_relay_outbox_pending") == 0, timeout=60)
    _assert_delivered_once_in_order(sim, bodies)
