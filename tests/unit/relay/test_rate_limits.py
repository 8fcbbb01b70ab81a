"""PagerDuty's rate limit as PagerDuty states it, against real relay processes.

Invariants:
- two active-active replicas on one real PostgreSQL outbox together send at most ``N``
  events per routing key in any ``W``-second window, counted where PagerDuty counts them
  (the simulator's arrival times, its own limit switched off so nothing hides an excess).
  ``N`` and ``W`` are the relay's settings, scaled down from PagerDuty's 120 per 60 s so
  the test takes seconds; the code path is the one the defaults take;
- an event about an incident goes only to that incident's routing key (its override key),
  and a resolve whose trigger was skipped (resolved in BigPanda before the trigger could
  be sent) is not sent at all.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from pagerbridge.api.contract import OUTBOX_DSN_ENV
from pagerbridge_devkit.sandbox.bigpanda import DEFAULT_API_TOKEN as BP_TOKEN
from pagerbridge_devkit.sandbox.bigpanda import DEFAULT_ENVIRONMENT_ID
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

LIMIT = 20  # --events-rate-limit
WINDOW = 10.0  # --events-rate-window
OVERRIDE = "o" * 32


def _most_in_any_window(times: list[float], window: float) -> int:
    """The largest number of ``times`` inside one half-open window ``[t, t + window)``."""
    times = sorted(times)
    return max((bisect.bisect_left(times, t + window) - i for i, t in enumerate(times)), default=0)


def _events(sim: PagerDutySimulator) -> list[tuple[float, dict[str, Any]]]:
    return [(r.at, r.json()) for r in sim.requests.matching("POST", "/v2/enqueue")]


def test_two_replicas_together_keep_to_n_events_per_key_in_any_window(
    pd_sim, relays, tmp_path: Path, pg_dsn: str
) -> None:
    sim, url = pd_sim
    sim.set_rate_limits(events_per_minute=0)  # count what arrives; refuse nothing
    config = write_config(
        tmp_path,
        pd_url=url,
        routing_key=DEFAULT_ROUTING_KEY,
        pd_api_token=DEFAULT_API_TOKEN,
        extra={"keyOverrideTag": "pd_key"},
    )
    args = ["--events-rate-limit", str(LIMIT), "--events-rate-window", str(WINDOW)]
    replicas = []
    for n in range(2):
        relay = RelayProcess(
            config,
            tmp_path / f"relay-{n}.log",
            args=["--late-trigger-after", "3600", *args],
            env={OUTBOX_DSN_ENV: pg_dsn},
        )
        relays.append(relay)
        replicas.append(relay.start())
    per_key = LIMIT * 17 // 10  # 1.7 times the limit, like 170 events against 120
    bodies = []
    for n in range(per_key):
        default = incident(3000 + n)
        override = incident(4000 + n)
        override["alerts"][0]["pd_key"] = OVERRIDE
        bodies += [default, override]
    for n, body in enumerate(bodies):  # every replica accepts half of each key's burst
        assert replicas[(n // 2) % 2].post_bigpanda(body).status_code == 202
    wait_for(
        lambda: len(sim.incidents()) == len(bodies),
        timeout=4 * per_key * WINDOW / LIMIT,
        what="every incident delivered",
    )
    sent = Counter(e["routing_key"] for _, e in _events(sim))
    assert sent == {DEFAULT_ROUTING_KEY: per_key, OVERRIDE: per_key}  # none twice
    for relay in replicas:  # both replicas delivered: the limit held across them
        assert relay.metric("pagerbridge_relay_deliveries_total", outcome="delivered") > 0
    arrivals: dict[str, list[float]] = defaultdict(list)
    for at, event in _events(sim):
        arrivals[event["routing_key"]].append(at)
    for times in arrivals.values():
        most = _most_in_any_window(times, WINDOW)
        assert most <= LIMIT, f"{most} events in one {WINDOW} s window on one key"
        # ...and the limit is used: the burst was not simply spread over many windows.
        assert most >= LIMIT // 2, f"only {most} events in the busiest window"


def test_events_go_to_the_incidents_own_key_and_no_resolve_for_a_skipped_trigger(
    pd_sim, bp_sim, relays, tmp_path: Path
) -> None:
    pd, pd_url = pd_sim
    bp, bp_url = bp_sim
    bp.set_rate_limit(None)
    config = write_config(
        tmp_path,
        pd_url=pd_url,
        bp_url=bp_url,
        routing_key=DEFAULT_ROUTING_KEY,
        pd_api_token=DEFAULT_API_TOKEN,
        bp_api_token=BP_TOKEN,
        bp_environment=DEFAULT_ENVIRONMENT_ID,
        extra={"keyOverrideTag": "pd_key"},
    )
    relay = RelayProcess(config, tmp_path / "relay.log")
    relays.append(relay)
    relay.start()
    # Delivered, then resolved: both events on its override key.
    kept = incident(5001)
    kept["alerts"][0]["pd_key"] = OVERRIDE
    assert relay.post_bigpanda(kept).status_code == 202
    wait_for(lambda: pd.incident_by_key(kept["id"]), what="the first trigger")
    # Its trigger fails (PagerDuty 503) until BigPanda has resolved it: the retried, late
    # trigger is skipped, and so is its resolve.
    pd.faults.fail_next(None, 503, path_prefix="/v2/enqueue")
    skipped = incident(5002)
    skipped["alerts"][0]["pd_key"] = OVERRIDE
    assert relay.post_bigpanda(skipped).status_code == 202
    wait_for(lambda: len(_events(pd)) >= 2, what="the failing trigger attempt")
    for n, body in ((5001, kept), (5002, skipped)):
        resolved = incident(n, status="ok")
        resolved["alerts"][0]["pd_key"] = OVERRIDE
        resolved["updatedOn"] = int(body["updatedOn"]) + 10
        assert relay.post_bigpanda(resolved).status_code == 202
    wait_for(
        lambda: (
            relay.metric("pagerbridge_relay_ignored_total", reason="late_trigger_resolved") == 1
        ),
        timeout=30,
        what="the late trigger skipped",
    )
    pd.faults.clear()
    wait_for(lambda: relay.metric("pagerbridge_relay_outbox_pending") == 0, timeout=30)
    accepted = [e for _, e in _events(pd) if e.get("event_action")]
    by_incident: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for event in accepted:
        by_incident[event["dedup_key"]].append((event["event_action"], event["routing_key"]))
    assert {key for _, key in by_incident[kept["id"]]} == {OVERRIDE}
    assert [a for a, _ in by_incident[kept["id"]]][-1] == "resolve"
    # The skipped incident: only its refused trigger attempts, never a resolve, and no
    # event on any key other than its own.
    assert by_incident[skipped["id"]], "its trigger attempts reached PagerDuty"
    assert {a for a, _ in by_incident[skipped["id"]]} == {"trigger"}
    assert {key for _, key in by_incident[skipped["id"]]} == {OVERRIDE}
    assert pd.incident_by_key(skipped["id"]) is None
    assert relay.metric("pagerbridge_relay_skipped_dependents_total", kind="pd_event") == 1
