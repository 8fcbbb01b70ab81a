"""Exactly one BigPanda comment per PagerDuty lifecycle event, whatever instant the relay is
killed at.

As ``test_crash_exactly_once`` does for notes: the relay SIGKILLs itself at a named instant
of a ``bp_comment`` delivery (``pagerbridge.relay.outbound.crashpoints``) in the middle of
a burst of signed PagerDuty webhooks (acknowledged and priority_updated for several
incidents); a fresh process finishes the work while PagerDuty redelivers every webhook
(at least once, the same event ids). Before the POST, after it (BigPanda's answer
unrecorded), before the completion's commit and after it: each event is exactly one
comment, because a restored comment job reads the incident's activity feed before writing
again.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from pagerbridge.relay.outbound.crashpoints import ENV as CRASH_ENV
from pagerbridge_devkit.waiting import wait_for

from .support import Wired, signed_post

pytestmark = pytest.mark.component

INCIDENTS = 3


def _event(event_id: str, event_type: str, pd_id: str, bp_id: str, **data: Any) -> bytes:
    return json.dumps(
        {
            "event": {
                "id": event_id,
                "event_type": event_type,
                "resource_type": "incident",
                "occurred_at": "2099-01-01T00:00:00.000Z",
                "agent": {"type": "user_reference", "summary": "Jane Doe", "id": "PUSER01"},
                "data": {"id": pd_id, "type": "incident", "incident_key": bp_id, **data},
            }
        }
    ).encode()


@pytest.mark.parametrize(
    ("instant", "occurrence"),
    [
        ("bp_comment:before_post", 1),
        ("bp_comment:after_post", 3),
        ("bp_comment:before_commit", 2),
        ("bp_comment:after_commit", 4),
    ],
)
def test_one_comment_per_event_whatever_instant_the_relay_dies(
    tmp_path, relays, pd_sim, bp_sim, instant: str, occurrence: int
) -> None:
    w = Wired(
        tmp_path,
        relays,
        pd_sim,
        bp_sim,
        args=["--late-trigger-after", "3600", "--sweep-interval", "0"],
        extra={"sync": {"pagerDutyEvents": {"acknowledged": True, "priorityUpdated": True}}},
    )
    opened = [w.open() for _ in range(INCIDENTS)]
    bodies: list[tuple[str, bytes]] = []
    for n, (bp_id, pd_id) in enumerate(opened):
        bodies.append((f"ack-{n}", _event(f"ack-{n}", "incident.acknowledged", pd_id, bp_id)))
        priority = {"id": "PPRIO01", "type": "priority_reference", "summary": f"P{n + 1}"}
        bodies.append(
            (
                f"prio-{n}",
                _event(f"prio-{n}", "incident.priority_updated", pd_id, bp_id, priority=priority),
            )
        )
    expected = {
        (bp_id, text)
        for n, (bp_id, _) in enumerate(opened)
        for text in (
            "Acknowledged in PagerDuty by Jane Doe",
            f"Priority set to P{n + 1} in PagerDuty by Jane Doe",
        )
    }
    relay = w.relay
    relay.kill()
    relay.env = {CRASH_ENV: f"{instant}@{occurrence}"}
    relay.start()
    for event_id, body in bodies:
        try:
            signed_post(w, body, w.secret, webhook_id=event_id)
        except Exception:  # the crash may come while the burst is still being posted
            break
    assert relay.proc is not None
    wait_for(lambda: relay.proc.poll() is not None, timeout=30, what=f"relay to die at {instant}")
    relay.env = None
    relay.start()
    for event_id, body in bodies:  # PagerDuty redelivers what it was not sure about
        assert signed_post(w, body, w.secret, webhook_id=event_id).status_code == 200

    def comments() -> Counter[tuple[str, str]]:
        found: Counter[tuple[str, str]] = Counter()
        for bp_id, _ in opened:
            for comment in w.bp.api_comments(bp_id):
                found[(bp_id, comment.text.split("\n\n")[0])] += 1
        return found

    wait_for(lambda: set(comments()) >= expected, timeout=60, what="every event as a comment")
    w.settle()
    counted = comments()
    assert set(counted) == expected
    duplicated = {k: v for k, v in counted.items() if v != 1}
    assert not duplicated, (
        f"comments written more than once after a kill at {instant}: {duplicated}"
    )
