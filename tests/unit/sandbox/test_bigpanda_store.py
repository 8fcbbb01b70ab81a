"""The BigPanda incident store: lifecycle and payload shape against the public samples."""

from __future__ import annotations

import re

import pytest
from bigpanda_support import (
    SAMPLE_ALERTS,
    SAMPLE_COMMENTED_KEYS,
    SAMPLE_NEW_KEYS,
    SAMPLE_RESOLVED_KEYS,
    SAMPLE_TAGS,
)

from pagerbridge_devkit.sandbox.bigpanda import (
    DEFAULT_ENVIRONMENT_ID,
    AlreadyResolved,
    BigPandaSimulator,
    IncidentNotFound,
)
from pagerbridge_devkit.sandbox.bigpanda.store import Change, IncidentStore


@pytest.fixture
def sim() -> BigPandaSimulator:
    return BigPandaSimulator()


def test_open_gives_the_sample_shape(sim: BigPandaSimulator) -> None:
    incident = sim.open_incident(alerts=SAMPLE_ALERTS, incident_tags=SAMPLE_TAGS)
    payload = incident.to_payload()
    assert set(payload) == SAMPLE_NEW_KEYS
    assert re.fullmatch(r"[0-9a-f]{24}", incident.id)
    assert payload["status"] == payload["severity"] == "critical"  # most severe alert
    assert payload["active"] is True
    assert payload["environments"] == [DEFAULT_ENVIRONMENT_ID]
    assert payload["folders"] == ["active"]
    assert payload["alerts"] == SAMPLE_ALERTS
    assert payload["startedOn"] == payload["changedOn"] == payload["updatedOn"]


def test_comment_then_resolve_follow_the_samples(sim: BigPandaSimulator) -> None:
    incident = sim.open_incident(alerts=SAMPLE_ALERTS, incident_tags=SAMPLE_TAGS)
    comment = sim.add_comment(incident.id, "Failing over to replica", by="alice@example.com")
    assert set(comment) == {"id", "comment", "created_by", "created_at"}
    commented = sim.incident(incident.id).to_payload()
    assert set(commented) == SAMPLE_COMMENTED_KEYS
    assert commented["comments"] == [comment]

    resolved = sim.resolve_incident(incident.id).to_payload()
    assert set(resolved) == SAMPLE_RESOLVED_KEYS
    assert resolved["status"] == "ok"
    assert resolved["active"] is False
    assert resolved["severity"] == "critical"  # highest reached, kept
    assert resolved["folders"] == ["resolved"]
    assert resolved["endedOn"] >= resolved["startedOn"]
    assert [a["status"] for a in resolved["alerts"]] == ["ok", "ok"]
    assert [a["severity"] for a in resolved["alerts"]] == ["critical", "warning"]
    with pytest.raises(AlreadyResolved):
        sim.resolve_incident(incident.id)


def test_escalate_reopen_and_severity(sim: BigPandaSimulator) -> None:
    incident = sim.open_incident(alerts=[{"host": "h", "status": "warning"}])
    assert (incident.status, incident.severity) == ("warning", "warning")
    escalated = sim.update_incident(incident.id, status="critical")
    assert (escalated.status, escalated.severity) == ("critical", "critical")
    calmer = sim.update_incident(incident.id, status="warning")
    assert (calmer.status, calmer.severity) == ("warning", "critical")
    closed = sim.update_incident(incident.id, status="ok")  # correlation closes it
    assert closed.active is False
    reopened = sim.update_incident(incident.id, status="critical")
    assert reopened.active is True
    assert reopened.endedOn is None
    assert reopened.folders == ["active"]


def test_changes_carry_triggers_in_order() -> None:
    changes: list[Change] = []
    store = IncidentStore("env", listener=changes.append)
    incident = store.open([{"host": "h", "status": "critical"}])
    store.update(incident.id, status="warning")
    store.update(incident.id, incident_tags=[{"tag_id": "team", "tag_value": "dba"}])
    store.add_comment(incident.id, "looking", by="bob@example.com")
    store.resolve(incident.id, by="bob@example.com")
    store.update(incident.id, status="critical")
    assert [c.trigger for c in changes] == [
        "incident#new",
        "incident#updated",
        "incident-tag#upserted",
        "incident#commented",
        "incident#closed",
        "incident#reopen",
    ]
    assert changes[3].metadata["comment"] == "looking"
    # snapshots: the first change still shows the incident as it was
    assert changes[0].incident.status == "critical"
    assert changes[0].incident.comments == []


def test_snapshots_are_copies(sim: BigPandaSimulator) -> None:
    incident = sim.open_incident(alerts=[{"host": "h"}])
    incident.alerts.append({"host": "intruder"})
    incident.to_payload()["alerts"].clear()
    assert len(sim.incident(incident.id).alerts) == 1


def test_unknown_incident_and_bad_status(sim: BigPandaSimulator) -> None:
    with pytest.raises(IncidentNotFound):
        sim.incident("0" * 24)
    with pytest.raises(IncidentNotFound):
        sim.add_comment("0" * 24, "x")
    with pytest.raises(ValueError, match="status"):
        sim.open_incident(alerts=[{"host": "h"}], status="bad")
    with pytest.raises(ValueError, match="ok"):
        sim.open_incident(alerts=[{"host": "h"}], status="ok")


def test_snooze_unsnooze_and_flapping_carry_their_triggers_and_fields() -> None:
    changes: list[Change] = []
    store = IncidentStore("env", listener=changes.append)
    incident = store.open([{"host": "h", "status": "critical"}])
    store.snooze(incident.id, by="bob@example.com", end_time=1764150000)
    store.update(incident.id, alerts=[{"host": "h", "status": "critical"}])  # no autoCancel
    store.unsnooze(incident.id, by="bob@example.com")
    store.update(incident.id, flapping=True)
    store.update(incident.id, flapping=True)  # already flapping: an ordinary update
    assert [c.trigger for c in changes] == [
        "incident#new",
        "incident#snoozed",
        "incident#updated",
        "incident#updated",
        "incident#become-flapping",
        "incident#updated",
    ]
    payloads = [c.incident.to_payload() for c in changes]
    assert "snooze" not in payloads[0]  # never snoozed: no snooze object
    assert payloads[1]["snooze"] == {"snoozed": True, "end_time": 1764150000, "autoCancel": False}
    assert payloads[2]["snooze"]["snoozed"] is True
    assert payloads[3]["snooze"]["snoozed"] is False
    assert (payloads[3]["flapping"], payloads[4]["flapping"]) == (False, True)


def test_a_snooze_with_auto_cancel_ends_with_the_next_alert_change(sim: BigPandaSimulator) -> None:
    incident = sim.open_incident([{"host": "h", "status": "critical"}])
    sim.snooze_incident(incident.id, auto_cancel=True)
    sim.update_incident(incident.id, incident_tags=[{"tag_id": "t", "tag_value": "v"}])
    assert sim.incident(incident.id).to_payload()["snooze"]["snoozed"] is True
    sim.update_incident(incident.id, alerts=[{"host": "h2", "status": "critical"}])
    assert sim.incident(incident.id).to_payload()["snooze"]["snoozed"] is False
