"""PagerDuty's incident lifecycle (``sync.pagerDutyEvents``) reaching BigPanda: each change
turned on becomes exactly one BigPanda comment saying who did what, each one turned off
none, and none of them comes back to PagerDuty as a note. Real relay process, both
simulators; the PagerDuty simulator's subscription delivers every type it emits."""

from __future__ import annotations

import json
import uuid

import pytest

from pagerbridge_devkit.waiting import wait_for

from .support import Wired, signed_post

pytestmark = pytest.mark.component

ON = {
    "acknowledged": True,
    "unacknowledged": True,
    "reassigned": True,
    "escalated": False,  # off: must write nothing
    "delegated": True,
    "priorityUpdated": True,
    "statusUpdatePublished": True,
    "responderAdded": True,
    "reopened": True,
}


def _comments(w: Wired, bp_id: str) -> list[str]:
    return [c.text.split("\n\n")[0] for c in w.bp.api_comments(bp_id)]


def test_each_enabled_change_is_one_comment_and_a_disabled_one_none(
    tmp_path, relays, pd_sim, bp_sim
):
    w = Wired(
        tmp_path,
        relays,
        pd_sim,
        bp_sim,
        extra={"sync": {"resolve": True, "notes": True, "pagerDutyEvents": ON}},
    )
    bp_id, pd_id = w.open()
    pd = w.pd
    pd.acknowledge(pd_id, by_email="jane@example.com")
    pd.unacknowledge(pd_id, by_email="jane@example.com")
    pd.reassign(pd_id, ["bob@example.com"], by_email="jane@example.com")
    pd.escalate(pd_id, ["carol@example.com"], by_email="jane@example.com")
    pd.delegate(
        pd_id, "Payments on-call", by_email="bob@example.com", assignees=["dan@example.com"]
    )
    pd.set_priority(pd_id, "P1", by_email="dan@example.com")
    pd.set_priority(pd_id, "P2", by_email="dan@example.com")
    pd.publish_status_update(pd_id, "Rolled back the deploy", by_email="dan@example.com")
    pd.add_responder(pd_id, "erin@example.com", by_email="dan@example.com")
    expected = [
        "Acknowledged in PagerDuty by jane",
        "Unacknowledged in PagerDuty by jane",
        "Reassigned in PagerDuty to bob (escalation policy Default) by jane",
        "Delegated in PagerDuty to escalation policy Payments on-call, assigned to dan by bob",
        "Priority set to P1 in PagerDuty by dan",
        "Priority set to P2 in PagerDuty by dan",
        "Status update published in PagerDuty by dan: Rolled back the deploy",
        "Responder erin added in PagerDuty by dan",
    ]
    wait_for(lambda: len(_comments(w, bp_id)) >= len(expected), what="lifecycle comments")
    w.settle()
    assert _comments(w, bp_id) == expected  # in PagerDuty's order, once each
    pd.resolve(pd_id, by_email="dan@example.com")
    wait_for(lambda: not w.bp.incident(bp_id).active, what="BigPanda resolved")
    pd.reopen(pd_id, by_email="dan@example.com")
    wait_for(lambda: len(_comments(w, bp_id)) > len(expected), what="reopen comment")
    w.settle()
    assert _comments(w, bp_id) == [*expected, "Reopened in PagerDuty by dan"]
    # Every comment carries the relay's marker, so none came back as a PagerDuty note.
    assert all("[synced from PagerDuty by PagerBridge]" in c.text for c in w.bp.api_comments(bp_id))
    assert [k for k, _ in w.pd_writes()] == ["event"]  # the trigger only
    assert (
        w.relay.metric("pagerbridge_relay_webhooks_total", endpoint="pagerduty", outcome="ignored")
        >= 2
    )


def test_a_redelivered_event_is_one_comment(tmp_path, relays, pd_sim, bp_sim):
    w = Wired(
        tmp_path,
        relays,
        pd_sim,
        bp_sim,
        extra={"sync": {"pagerDutyEvents": {"priorityUpdated": True}}},
    )
    bp_id, pd_id = w.open()
    body = json.dumps(
        {
            "event": {
                "id": uuid.uuid4().hex,
                "event_type": "incident.priority_updated",
                "resource_type": "incident",
                "occurred_at": "2099-01-01T00:00:00.000Z",
                "agent": {"type": "user_reference", "summary": "Jane Doe", "id": "PUSER01"},
                "data": {
                    "id": pd_id,
                    "type": "incident",
                    "incident_key": bp_id,
                    "priority": {"id": "PPRIO01", "type": "priority_reference", "summary": "P3"},
                },
            }
        }
    ).encode()
    answers = [signed_post(w, body, w.secret, webhook_id=f"retry-{n}").json() for n in range(3)]
    assert [a["status"] for a in answers] == ["accepted", "duplicate", "duplicate"]
    wait_for(lambda: _comments(w, bp_id), what="priority comment")
    w.settle()
    assert _comments(w, bp_id) == ["Priority set to P3 in PagerDuty by Jane Doe"]


def test_deprecated_acknowledge_still_syncs_and_off_means_nothing(tmp_path, relays, pd_sim, bp_sim):
    w = Wired(
        tmp_path,
        relays,
        pd_sim,
        bp_sim,
        extra={"sync": {"acknowledge": True}},
    )
    bp_id, pd_id = w.open()
    w.pd.set_priority(pd_id, "P1")  # not turned on: acknowledged with 200, nothing written
    w.pd.acknowledge(pd_id, by_email="frank@example.com")
    wait_for(lambda: _comments(w, bp_id), what="ack comment")
    w.settle()
    assert _comments(w, bp_id) == ["Acknowledged in PagerDuty by frank"]
    assert w.bp_writes() == [("comments", 204)]


def test_a_bigpanda_snooze_acknowledgement_does_not_come_back_as_a_comment(
    tmp_path, relays, pd_sim, bp_sim
):
    """``sync.snooze`` makes the relay acknowledge in PagerDuty; with ``acknowledged`` on,
    PagerDuty's webhook about that acknowledgement (agent: the Events API integration) is
    the relay's own and writes nothing, while a person's acknowledgement still does."""
    w = Wired(
        tmp_path,
        relays,
        pd_sim,
        bp_sim,
        extra={"sync": {"snooze": True, "pagerDutyEvents": {"acknowledged": True}}},
    )
    bp_id, pd_id = w.open()
    w.bp.snooze_incident(bp_id)
    wait_for(lambda: w.pd.incident(pd_id).status == "acknowledged", what="PD acknowledged")
    w.settle()
    assert w.bp_writes() == []
    assert w.relay.metric("pagerbridge_relay_echo_suppressed_total", kind="acknowledge") == 1
    w.pd.unacknowledge(pd_id, by_email="jane@example.com")  # off: nothing
    w.pd.acknowledge(pd_id, by_email="jane@example.com")
    wait_for(lambda: _comments(w, bp_id), what="the person's acknowledgement")
    w.settle()
    assert _comments(w, bp_id) == ["Acknowledged in PagerDuty by jane"]
