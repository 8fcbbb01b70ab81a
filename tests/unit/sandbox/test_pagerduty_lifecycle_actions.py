"""The PagerDuty simulator's test control endpoint for the incident lifecycle (issue 28):
each ``POST /_sandbox/incidents/{id}/<action>`` changes the incident as PagerDuty would and
emits exactly its signed Webhooks v3 event; bad bodies get 400, unknown incidents 404."""

from __future__ import annotations

import json
from typing import Any

from pagerduty_support import receiving, running

from pagerbridge.relay.inbound.signatures import verify


def test_each_action_emits_its_one_webhook_and_changes_the_incident() -> None:
    with running() as pd, receiving() as receiver:
        _, secret = pd.sim.create_subscription(receiver.url)
        pd.trigger("act")
        incident = pd.sim.incident_by_key("act")
        assert incident is not None
        base = f"/_sandbox/incidents/{incident.id}"

        def act(action: str, **body: Any) -> dict[str, Any]:
            answer = pd.client.post(
                f"{base}/{action}", json={"by_email": "jane@example.com", **body}
            )
            assert answer.status_code == 200, answer.text
            shown: dict[str, Any] = answer.json()
            return shown

        act("acknowledge")
        assert act("unacknowledge")["status"] == "triggered"
        assert act("reassign", assignees=["bob@example.com"])["assignees"] == ["bob@example.com"]
        act("escalate", assignees=["carol@example.com"])
        shown = act("delegate", escalation_policy="Payments on-call", assignees=["dan@example.com"])
        assert shown["escalation_policy"] == "Payments on-call"
        assert act("priority", priority="P1")["priority"] == "P1"
        act("priority", priority="P1")  # unchanged: no webhook
        act("status_update", message="Rolled back")
        act("responders", responder_email="erin@example.com", message="join please")
        act("resolve")
        assert act("reopen")["status"] == "triggered"
        # Refused: bad bodies, unknown incidents.
        bad = [
            ("reassign", {"assignees": "bob"}),
            ("delegate", {}),
            ("priority", {"priority": 3}),
            ("status_update", {}),
            ("responders", {}),
        ]
        for action, body in bad:
            assert pd.client.post(f"{base}/{action}", json=body).status_code == 400, action
        assert pd.client.post("/_sandbox/incidents/QNOPE/reopen", json={}).status_code == 404
        assert pd.sim.wait_webhooks_idle(5)
        received = list(receiver.received)
    for r in received:
        assert verify(r.headers["x-pagerduty-signature"], r.body, [secret])
    events = [json.loads(r.body)["event"] for r in received]
    assert [e["event_type"] for e in events] == [
        "incident.triggered",
        "incident.acknowledged",
        "incident.unacknowledged",
        "incident.reassigned",
        "incident.escalated",
        "incident.delegated",
        "incident.priority_updated",
        "incident.status_update_published",
        "incident.responder.added",
        "incident.resolved",
        "incident.reopened",
    ]
    assert all(e["agent"]["summary"] == "jane" for e in events[1:])
    by_type = {e["event_type"]: e["data"] for e in events}
    assert [a["summary"] for a in by_type["incident.escalated"]["assignees"]] == ["carol"]
    assert by_type["incident.status_update_published"]["message"] == "Rolled back"
    assert by_type["incident.responder.added"]["user"]["summary"] == "erin"
    assert by_type["incident.reopened"]["status"] == "triggered"
