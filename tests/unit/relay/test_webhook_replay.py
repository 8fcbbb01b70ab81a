"""Replays of a signed PagerDuty webhook (issue 18.6): a captured body re-sent under a new
``X-Webhook-Id`` is a duplicate (the key is the signed ``event.id``), and an event whose
signed ``occurred_at`` is older than the window is ignored. Real relay process, real
simulators, real SQLite outbox."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pagerbridge.relay.inbound.pagerduty_webhook import is_stale

from .support import Wired, signed_post


@pytest.fixture
def wired(tmp_path: Path, relays: Any, pd_sim: Any, bp_sim: Any) -> Wired:
    return Wired(tmp_path, relays, pd_sim, bp_sim)


def _resolved(pd_id: str, key: str, occurred: datetime | None) -> bytes:
    event: dict[str, object] = {
        "id": uuid.uuid4().hex,
        "event_type": "incident.resolved",
        "resource_type": "incident",
        "data": {"id": pd_id, "type": "incident", "incident_key": key},
    }
    if occurred is not None:
        event["occurred_at"] = occurred.isoformat().replace("+00:00", "Z")
    return json.dumps({"event": event}).encode()


@pytest.mark.component
def test_signed_body_replayed_under_a_new_webhook_id_is_a_duplicate(wired: Wired) -> None:
    bp_id, pd_id = wired.open()
    body = _resolved(pd_id, bp_id, datetime.now(UTC))
    first = signed_post(wired, body, wired.secret, webhook_id="delivery-1")
    assert first.json()["status"] == "accepted"
    replay = signed_post(wired, body, wired.secret, webhook_id=f"attacker-{uuid.uuid4().hex}")
    assert replay.status_code == 200
    assert replay.json()["status"] == "duplicate"
    no_header = signed_post(wired, body, wired.secret)
    assert no_header.json()["status"] == "duplicate"
    wired.settle()
    assert [w for w in wired.bp_writes() if w[0] == "resolve"] == [("resolve", 202)]


@pytest.mark.component
def test_event_older_than_the_window_is_ignored(wired: Wired) -> None:
    bp_id, pd_id = wired.open()
    old = _resolved(pd_id, bp_id, datetime.now(UTC) - timedelta(hours=25))
    stale = signed_post(wired, old, wired.secret, webhook_id="old-1")
    assert stale.status_code == 200
    assert stale.json() == {"status": "ignored", "reason": "stale"}
    wired.settle()
    assert [w for w in wired.bp_writes() if w[0] == "resolve"] == []
    assert (
        wired.relay.metric(
            "pagerbridge_relay_webhooks_total", endpoint="pagerduty", outcome="stale"
        )
        == 1
    )
    fresh = _resolved(pd_id, bp_id, datetime.now(UTC) - timedelta(hours=23))
    assert signed_post(wired, fresh, wired.secret).json()["status"] == "accepted"
    wired.settle()
    assert [w for w in wired.bp_writes() if w[0] == "resolve"] == [("resolve", 202)]


def test_is_stale() -> None:
    now = datetime(2026, 1, 2, tzinfo=UTC).timestamp()
    day = 24 * 3600.0
    assert is_stale("2026-01-01T00:00:00Z", now + 1, day)
    assert not is_stale("2026-01-01T00:00:00.000Z", now, day)
    assert not is_stale("2026-01-01T00:00:01+00:00", now, day)
    for unknown in (None, 5, "yesterday", "2026-01-01T00:00:00"):  # signed, so PagerDuty's
        assert not is_stale(unknown, now + 10 * day, day)
