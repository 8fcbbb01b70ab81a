"""A job that kills the relay on every attempt is dead-lettered after the poison bound, not
crash-looped (issue 25, item 3), through real relay processes restarted like a kubelet
restarts a container.

The relay SIGKILLs itself at the crash point ``pd_event:attempt_begun`` (the attempt is
recorded; its call is about to start), standing in for the OOM killer reacting to a
hostile answer. Invariants:
- each attempt is recorded before its call, so every death is counted;
- after ``--max-error-attempts`` deaths in a row the job is dead-lettered with the reason
  ``crash_loop`` before it is attempted again, and the relay stays up;
- a job that merely was in flight when the culprit killed the process is delivered.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from pagerbridge.api.contract import RELAY_ADMIN_DEAD_LETTERS_PATH
from pagerbridge.relay.outbound.crashpoints import ENV as CRASH_AT
from pagerbridge_devkit.sandbox.pagerduty import DEFAULT_API_TOKEN, DEFAULT_ROUTING_KEY
from pagerbridge_devkit.waiting import wait_for

from .relayproc import RelayProcess, write_config
from .support import incident

# Every test here starts a real relay process.
pytestmark = pytest.mark.component

ADMIN_TOKEN = "admin-token-Qw4rT7yU1iO9pL3k"
BOUND = 3  # --max-error-attempts


def restart_until(relay: RelayProcess, done: Callable[[], bool]) -> int:
    """Restart the relay each time it dies (as the kubelet restarts a container) until it
    is alive and ``done()``; how many times it died. Fails past the bound."""
    deaths = 0

    def state() -> str | bool:
        if relay.proc is None or relay.proc.poll() is not None:
            return "dead"
        try:
            return done()
        except httpx.TransportError:
            return False  # dying meanwhile: the next look sees it

    while wait_for(state, timeout=60, what="the relay to die or to finish") == "dead":
        deaths += 1
        assert deaths <= BOUND, "still crash-looping past the bound"
        with contextlib.suppress(RuntimeError):  # died again before its liveness probe
            relay.start()
    return deaths


def test_a_job_that_kills_the_relay_every_time_is_dead_lettered_after_the_bound(
    pd_sim, relays, tmp_path: Path
) -> None:
    sim, url = pd_sim
    config = write_config(
        tmp_path,
        pd_url=url,
        routing_key=DEFAULT_ROUTING_KEY,
        pd_api_token=DEFAULT_API_TOKEN,
        admin_token=ADMIN_TOKEN,
    )
    args = ["--max-error-attempts", str(BOUND)]
    relay = RelayProcess(
        config, tmp_path / "relay.log", args, env={CRASH_AT: "pd_event:attempt_begun"}
    )
    relays.append(relay)
    relay.start()
    culprit = incident(1)
    assert relay.post_bigpanda(culprit).status_code == 202
    deaths = restart_until(
        relay, lambda: relay.metric("pagerbridge_relay_dead_letters_total", reason="crash_loop") > 0
    )
    assert deaths == BOUND
    letters = httpx.get(
        relay.internal_url + RELAY_ADMIN_DEAD_LETTERS_PATH,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=10,
    ).json()["deadLetters"]
    assert len(letters) == 1
    assert "crash loop" in letters[0]["error"]
    assert f"last {BOUND} attempts" in letters[0]["error"]
    assert relay.metric("pagerbridge_relay_outbox_pending") == 0
    assert sim.incident_by_key(culprit["id"]) is None  # it never reached PagerDuty
    relay.kill()

    # Without the crash point, the relay delivers what comes next as usual.
    healthy = RelayProcess(config, tmp_path / "relay-healthy.log", args)
    relays.append(healthy)
    healthy.start()
    bystander = incident(2)
    assert healthy.post_bigpanda(bystander).status_code == 202
    wait_for(lambda: sim.incident_by_key(bystander["id"]), what="next incident delivered")


def test_a_job_in_flight_when_another_killed_the_relay_is_delivered(
    pd_sim, relays, tmp_path: Path
) -> None:
    """The bystander is interrupted once, then attempted alone among the suspects: the
    culprit's later deaths are not counted against it."""
    sim, url = pd_sim
    config = write_config(
        tmp_path, pd_url=url, routing_key=DEFAULT_ROUTING_KEY, pd_api_token=DEFAULT_API_TOKEN
    )
    args = ["--max-error-attempts", str(BOUND)]
    # The note of incident 1 kills the relay (any note: the only one there is); its
    # trigger, and incident 2's, are delivered whatever happens to the note.
    env = {CRASH_AT: "pd_note:attempt_begun"}
    relay = RelayProcess(config, tmp_path / "relay.log", args, env=env)
    relays.append(relay)
    relay.start()
    culprit = incident(1, comments=[{"id": "c1", "comment": "this note crashes the relay"}])
    assert relay.post_bigpanda(culprit).status_code == 202
    assert relay.post_bigpanda(incident(2)).status_code == 202
    deaths = restart_until(relay, lambda: relay.metric("pagerbridge_relay_outbox_pending") == 0)
    assert deaths == BOUND
    assert sim.incident_by_key(culprit["id"]) is not None
    assert sim.incident_by_key(incident(2)["id"]) is not None
    assert relay.metric("pagerbridge_relay_dead_letters_total", reason="crash_loop") == 1
