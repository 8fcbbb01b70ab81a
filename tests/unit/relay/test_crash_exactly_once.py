"""Exactly one PagerDuty note per BigPanda comment, whatever instant the relay is killed at.

The relay process SIGKILLs itself at a named instant of a note's delivery (see
``pagerbridge.relay.outbound.crashpoints``: inert unless ``PAGERBRIDGE_RELAY_CRASH_AT`` is
set), in the middle of a burst of incidents with comments; a fresh process then finishes
the work. For
every instant (before the POST, after it, before the completion's commit, after it) and
for several occurrences of it in the burst, each comment must exist as exactly one note.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from pagerbridge.relay.outbound.crashpoints import ENV as CRASH_ENV
from pagerbridge_devkit.sandbox.pagerduty import DEFAULT_API_TOKEN, DEFAULT_ROUTING_KEY
from pagerbridge_devkit.waiting import wait_for

from .relayproc import RelayProcess, write_config
from .support import incident

# Every test here starts a real relay process.
pytestmark = pytest.mark.component

INSTANTS = [
    "pd_note:before_post",
    "pd_note:after_post",
    "pd_note:before_commit",
    "pd_note:after_commit",
]
INCIDENTS = 6
COMMENTS = 2


def _burst(tag: str) -> list[dict[str, object]]:
    bodies = []
    for n in range(INCIDENTS):
        body = incident(n)
        body["id"] = f"{tag}-{n:03d}"
        body["comments"] = [
            {"id": f"c{c}", "comment": f"step {c} of {body['id']}", "created_by": "a@example.com"}
            for c in range(COMMENTS)
        ]
        bodies.append(body)
    return bodies


@pytest.mark.parametrize(
    ("instant", "occurrence"),
    # Each instant, at a different position in the burst (the first note, a later one).
    [(INSTANTS[0], 1), (INSTANTS[1], 4), (INSTANTS[2], 2), (INSTANTS[3], 5)],
)
def test_one_note_per_comment_whatever_instant_the_relay_dies(
    pd_sim, relays, tmp_path: Path, instant: str, occurrence: int
) -> None:
    sim, url = pd_sim
    config = write_config(
        tmp_path, pd_url=url, routing_key=DEFAULT_ROUTING_KEY, pd_api_token=DEFAULT_API_TOKEN
    )
    relay = RelayProcess(
        config,
        tmp_path / "relay.log",
        # However long the restart takes: exactly-once must not depend on a job's age.
        args=["--late-trigger-after", "3600"],
        env={CRASH_ENV: f"{instant}@{occurrence}"},
    )
    relays.append(relay)
    relay.start()
    bodies = _burst(f"{instant.replace(':', '-')}-{occurrence}")
    for body in bodies:
        try:
            assert relay.post_bigpanda(body).status_code == 202
        except Exception:  # the crash may come while the burst is still being posted
            break
    assert relay.proc is not None
    wait_for(lambda: relay.proc.poll() is not None, timeout=30, what=f"relay to die at {instant}")
    relay.env = None
    relay.start()
    for body in bodies:  # BigPanda re-sends whatever it was not sure about, and more
        assert relay.post_bigpanda(body).status_code == 202
    expected = {(str(b["id"]), f"step {c} of {b['id']}") for b in bodies for c in range(COMMENTS)}

    def notes() -> Counter[tuple[str, str]]:
        found: Counter[tuple[str, str]] = Counter()
        for inc in sim.incidents():
            for note in inc.notes:
                text = note.content.split("\n\n")[0]
                found[(inc.incident_key, text)] += 1
        return found

    wait_for(lambda: set(notes()) >= expected, timeout=60, what="every comment as a note")
    wait_for(lambda: relay.metric("pagerbridge_relay_outbox_pending") == 0, timeout=30)
    counted = notes()
    assert set(counted) == expected
    duplicated = {k: v for k, v in counted.items() if v != 1}
    assert not duplicated, f"notes written more than once after a kill at {instant}: {duplicated}"
