"""Snooze and flapping, BigPanda → PagerDuty, through a real relay process and the
simulators: the rows of docs/relay.md's state table as PagerDuty ends up showing them."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pagerbridge_devkit.waiting import wait_for

from .support import ALERT, Wired, incident, relay_for

# Every test here starts a real relay process.
pytestmark = pytest.mark.component

SNOOZE = {"snoozed": True, "end_time": 1764150000, "autoCancel": False}


def later(body: dict[str, Any], seconds: int, **changes: Any) -> dict[str, Any]:
    """The next share of ``body``: ``seconds`` newer, with ``changes``."""
    out = copy.deepcopy(body)
    out["updatedOn"] += seconds
    out.update(changes)
    return out


def actions(sim: Any, dedup_key: str) -> list[str]:
    found = sim.incident_by_key(dedup_key)
    return [e["event_action"] for e in found.events] if found else []


def drained(relay: Any) -> None:
    wait_for(lambda: relay.metric("pagerbridge_relay_outbox_pending") == 0, what="outbox drained")


def test_snooze_acknowledges_and_unsnooze_leaves_it_acknowledged(pd_sim, relays, tmp_path):
    sim, url = pd_sim
    relay = relay_for(tmp_path, relays, url, extra={"sync": {"snooze": True}})
    body = incident(1)
    assert relay.post_bigpanda(body).json()["queued"] == 1
    key = body["id"]
    wait_for(lambda: sim.incident_by_key(key), what="PD incident")

    # Snoozed: the update, then an acknowledge, in that order.
    snoozed = later(body, 1, snooze=SNOOZE)
    assert relay.post_bigpanda(snoozed).json()["queued"] == 2
    wait_for(lambda: sim.incident_by_key(key).status == "acknowledged", what="acknowledged")
    assert actions(sim, key) == ["trigger", "trigger", "acknowledge"]
    # BigPanda re-sending the same share: nothing new.
    again = relay.post_bigpanda(snoozed).json()
    assert (again["queued"], again["duplicates"]) == (0, 2)

    # A new alert during the snooze: PagerDuty de-duplicates it into the acknowledged
    # incident, which stays acknowledged and pages nobody; the relay acknowledges again.
    during = later(snoozed, 2, alerts=[*snoozed["alerts"], {**ALERT, "host": "web-2"}])
    assert relay.post_bigpanda(during).json()["queued"] == 2
    wait_for(lambda: len(actions(sim, key)) == 5, what="trigger and acknowledge")
    assert actions(sim, key)[3:] == ["trigger", "acknowledge"]

    # The snooze ends: an update only, and PagerDuty keeps the incident acknowledged.
    unsnoozed = later(during, 3, snooze={**SNOOZE, "snoozed": False})
    assert relay.post_bigpanda(unsnoozed).json()["queued"] == 1
    wait_for(lambda: len(actions(sim, key)) == 6, what="the unsnooze's update")
    drained(relay)
    found = sim.incident_by_key(key)
    assert actions(sim, key)[5:] == ["trigger"]
    assert found.status == "acknowledged"
    assert len(found.notified) == 1  # paged once, at the first trigger
    assert len(sim.incidents()) == 1

    # A resolve after all of it still resolves.
    relay.post_bigpanda(later(unsnoozed, 4, status="ok", active=False))
    wait_for(lambda: sim.incident_by_key(key).status == "resolved", what="resolved")


def test_without_sync_snooze_a_snoozed_incident_is_not_acknowledged(pd_sim, relays, tmp_path):
    sim, url = pd_sim
    relay = relay_for(tmp_path, relays, url)
    body = incident(2)
    relay.post_bigpanda(body)
    snoozed = later(body, 1, snooze=SNOOZE)
    assert relay.post_bigpanda(snoozed).json()["queued"] == 1
    wait_for(lambda: len(actions(sim, body["id"])) == 2, what="the snoozed share's update")
    drained(relay)
    assert actions(sim, body["id"]) == ["trigger", "trigger"]
    assert sim.incident_by_key(body["id"]).status == "triggered"
    sent = [r.json()["event_action"] for r in sim.requests.matching("POST", "/v2/enqueue")]
    assert "acknowledge" not in sent


def test_a_resolve_after_a_snooze_keeps_its_place_in_the_lane(pd_sim, relays, tmp_path):
    """PagerDuty failing while the snooze and the resolve come in: once it answers again
    they reach it in the order BigPanda sent them, and the incident ends resolved."""
    sim, url = pd_sim
    relay = relay_for(tmp_path, relays, url, extra={"sync": {"snooze": True}})
    body = incident(3)
    relay.post_bigpanda(body)
    wait_for(lambda: sim.incident_by_key(body["id"]), what="PD incident")
    sim.faults.fail_next(None, 503, path_prefix="/v2/enqueue")
    snoozed = later(body, 1, snooze=SNOOZE)
    assert relay.post_bigpanda(snoozed).json()["queued"] == 2
    wait_for(lambda: len(sim.requests.matching("POST", "/v2/enqueue")) >= 2, what="a failure")
    relay.post_bigpanda(later(snoozed, 2, status="ok", active=False))
    sim.faults.clear()
    wait_for(lambda: sim.incident_by_key(body["id"]).status == "resolved", what="resolved")
    drained(relay)
    assert actions(sim, body["id"]) == ["trigger", "trigger", "acknowledge", "resolve"]


def test_an_acknowledge_whose_incident_was_resolved_meanwhile_opens_nothing(
    tmp_path, relays, pd_sim, bp_sim
):
    """PagerDuty down from the first share: the trigger, the snooze's trigger and its
    acknowledge wait, BigPanda resolves meanwhile. The late triggers are skipped (resolved
    in BigPanda; every trigger counts as late here), so the acknowledge and the resolve
    have no PagerDuty incident: skipped, and PagerDuty never gets an incident at all."""
    w = Wired(
        tmp_path,
        relays,
        pd_sim,
        bp_sim,
        extra={"sync": {"snooze": True}},
        args=["--late-trigger-after", "0", "--sweep-interval", "0"],
    )
    w.pd.faults.fail_next(None, 503, path_prefix="/v2/enqueue")
    opened = w.bp.open_incident(alerts=[dict(ALERT)])
    wait_for(lambda: w.pd.requests.matching("POST", "/v2/enqueue"), what="a failed trigger")
    w.bp.snooze_incident(opened.id)
    w.bp.resolve_incident(opened.id)
    assert w.bp.wait_webhooks_idle(10)
    wait_for(lambda: w.relay.metric("pagerbridge_relay_outbox_pending") == 4, what="4 jobs")
    w.pd.faults.clear()
    w.settle()
    assert w.pd.incidents() == []
    assert w.relay.metric("pagerbridge_relay_skipped_dependents_total", kind="pd_event") == 2
    sent = [
        r.json()["event_action"]
        for r in w.pd.requests.matching("POST", "/v2/enqueue")
        if r.status == 202
    ]
    assert sent == []


def test_flapping_sends_the_chosen_severity_and_detail(pd_sim, relays, tmp_path):
    sim, url = pd_sim
    flapping = {"severity": "warning", "customDetail": {"key": "flapping_hint", "value": "noisy"}}
    relay = relay_for(tmp_path, relays, url, extra={"sync": {"flapping": flapping}})
    steady, flapper = incident(4), incident(5, flapping=True)
    for body in (steady, flapper):
        relay.post_bigpanda(body)
    for body in (steady, flapper):
        wait_for(lambda body=body: sim.incident_by_key(body["id"]), what="PD incident")
    sent = {
        r.json()["dedup_key"]: r.json()["payload"]
        for r in sim.requests.matching("POST", "/v2/enqueue")
    }
    assert sent[flapper["id"]]["severity"] == "warning"
    assert sent[flapper["id"]]["custom_details"]["flapping_hint"] == "noisy"
    assert sent[flapper["id"]]["custom_details"]["flapping"] is True
    assert sent[steady["id"]]["severity"] == "critical"
    assert "flapping_hint" not in sent[steady["id"]]["custom_details"]
