"""The wording of the BigPanda comments for PagerDuty's incident changes, built from the
webhook payloads the PagerDuty simulator sends (the fields PagerDuty documents)."""

from __future__ import annotations

from typing import Any

import pytest

from pagerbridge.api.pagerduty_events import EVENT_TYPES
from pagerbridge.relay.errors import InvalidIncident
from pagerbridge.relay.incidents import echo, lifecycle
from pagerbridge.relay.incidents.limits import MAX_COMMENT, MAX_COMMENT_NAMES
from pagerbridge_devkit.sandbox.pagerduty import render
from pagerbridge_devkit.sandbox.pagerduty.state import (
    AccountState,
    SimIncident,
    SimResponder,
    SimStatusUpdate,
)

JANE = "jane.doe@example.com"


def _incident(**changes: Any) -> tuple[AccountState, SimIncident]:
    state = AccountState("https://api.pagerduty.com", "https://sandbox.pagerduty.com")
    state.add_service("PSVC001", "e93facc04764012d7bfb002500d5d1a6", "Payments")
    incident = SimIncident(
        id="PINC001",
        number=1,
        incident_key="bp-incident-1",
        routing_key="e93facc04764012d7bfb002500d5d1a6",
        service_id="PSVC001",
        status="triggered",
        title="Disk full",
        urgency="high",
        created_at="2026-12-08T00:00:00Z",
        updated_at="2026-12-08T00:00:00Z",
        last_status_change_at="2026-12-08T00:00:00Z",
        last_status_change_by={},
    )
    for name, value in changes.items():
        setattr(incident, name, value)
    return state, incident


def _text(event_type: str, data: dict[str, Any], agent: str | None = "Jane Doe") -> str:
    change = lifecycle.comment_for(event_type, data, agent)
    assert change is not None
    return change.text


def test_every_matrix_type_has_wording_and_nothing_else_does() -> None:
    assert set(EVENT_TYPES.values()) == lifecycle.EVENT_TYPES
    state, inc = _incident()
    data = render.webhook_incident_data(state, inc)
    assert lifecycle.comment_for("incident.annotated", data, "x") is None
    assert lifecycle.comment_for("incident.resolved", data, "x") is None
    assert lifecycle.comment_for("incident.some_future_type", data, "x") is None


@pytest.mark.parametrize(
    ("event_type", "expected"),
    [
        ("incident.acknowledged", "Acknowledged in PagerDuty by Jane Doe"),
        ("incident.unacknowledged", "Unacknowledged in PagerDuty by Jane Doe"),
        ("incident.reopened", "Reopened in PagerDuty by Jane Doe"),
    ],
)
def test_status_changes_say_who(event_type: str, expected: str) -> None:
    state, inc = _incident()
    data = render.webhook_incident_data(state, inc)
    change = lifecycle.comment_for(event_type, data, "Jane Doe")
    assert change == lifecycle.LifecycleComment("PINC001", "bp-incident-1", expected)


def test_without_an_agent_the_comment_says_what_only() -> None:
    state, inc = _incident()
    data = render.webhook_incident_data(state, inc)
    assert _text("incident.unacknowledged", data, None) == "Unacknowledged in PagerDuty"


def test_reassigned_names_the_assignees_and_policy() -> None:
    state, inc = _incident(
        assignees=[JANE, "bob@example.com"], escalation_policy="Payments on-call"
    )
    data = render.webhook_incident_data(state, inc)
    assert _text("incident.reassigned", data, "Ops Lead") == (
        "Reassigned in PagerDuty to jane.doe, bob (escalation policy Payments on-call) by Ops Lead"
    )
    data["assignees"] = []
    assert _text("incident.reassigned", data, "Ops Lead") == (
        "Reassigned in PagerDuty to Payments on-call by Ops Lead"
    )


def test_escalated_and_delegated() -> None:
    state, inc = _incident(assignees=[JANE], escalation_policy="Database")
    data = render.webhook_incident_data(state, inc)
    assert _text("incident.escalated", data) == (
        "Escalated in PagerDuty to jane.doe (escalation policy Database) by Jane Doe"
    )
    assert _text("incident.delegated", data) == (
        "Delegated in PagerDuty to escalation policy Database, assigned to jane.doe by Jane Doe"
    )


def test_priority_set_and_removed() -> None:
    state, inc = _incident(priority="P2")
    data = render.webhook_incident_data(state, inc)
    assert data["priority"]["type"] == "priority_reference"
    assert _text("incident.priority_updated", data) == "Priority set to P2 in PagerDuty by Jane Doe"
    state, inc = _incident(priority=None)
    data = render.webhook_incident_data(state, inc)
    assert _text("incident.priority_updated", data) == "Priority removed in PagerDuty by Jane Doe"


def test_status_update_carries_its_message_and_incident_reference() -> None:
    state, inc = _incident()
    update = SimStatusUpdate("PSU0001", "Fix deployed, watching", JANE, "2026-12-08T00:01:00Z")
    data = render.webhook_status_update_data(state, inc, update)
    change = lifecycle.comment_for("incident.status_update_published", data, "Jane Doe")
    assert change == lifecycle.LifecycleComment(
        "PINC001", None, "Status update published in PagerDuty by Jane Doe: Fix deployed, watching"
    )


def test_responder_added_names_the_responder_and_the_requester() -> None:
    state, inc = _incident()
    responder = SimResponder("bob@example.com", JANE, "please help", "2026-12-08T00:01:00Z")
    data = render.webhook_responder_data(state, inc, responder)
    assert _text("incident.responder.added", data, None) == (
        "Responder bob added in PagerDuty by jane.doe"
    )
    assert _text("incident.responder.added", data, "Jane Doe") == (
        "Responder bob added in PagerDuty by Jane Doe"
    )


def test_sizes_are_bounded() -> None:
    state, inc = _incident(assignees=[f"user{n}@example.com" for n in range(50)])
    data = render.webhook_incident_data(state, inc)
    data["escalation_policy"]["summary"] = "P" * 5000
    text = _text("incident.reassigned", data, "A" * 5000)
    assert f"and {50 - MAX_COMMENT_NAMES} more" in text
    assert len(text) < 1000
    update = SimStatusUpdate("PSU0001", "x" * 100_000, JANE, "2026-12-08T00:01:00Z")
    text = _text(
        "incident.status_update_published", render.webhook_status_update_data(state, inc, update)
    )
    assert len(echo.comment_text(text, None)) <= MAX_COMMENT
    assert text.endswith("…")


def test_implausible_ids_are_refused() -> None:
    state, inc = _incident()
    data = render.webhook_incident_data(state, inc)
    with pytest.raises(InvalidIncident):
        lifecycle.comment_for("incident.acknowledged", {**data, "id": "../../x"}, None)
    with pytest.raises(InvalidIncident):
        lifecycle.comment_for("incident.acknowledged", {**data, "incident_key": "a\nb"}, None)
    assert lifecycle.comment_for("incident.acknowledged", {**data, "id": None}, None) is None


def test_an_acknowledgement_through_the_events_api_is_the_relays_own() -> None:
    """A BigPanda snooze makes the relay send an Events API acknowledge: PagerDuty's
    ``incident.acknowledged`` about it names the integration, and is not mirrored back."""
    state, _ = _incident()
    integration = state.integration_agent("e93facc04764012d7bfb002500d5d1a6", "PSVC001")
    ours = {"event_type": "incident.acknowledged", "agent": integration}
    assert lifecycle.is_relay_acknowledgement(ours)
    person = {"event_type": "incident.acknowledged", "agent": state.user_agent(JANE)}
    assert not lifecycle.is_relay_acknowledgement(person)
    assert not lifecycle.is_relay_acknowledgement({**ours, "event_type": "incident.reopened"})
    assert not lifecycle.is_relay_acknowledgement({"event_type": "incident.acknowledged"})
