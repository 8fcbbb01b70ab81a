"""BigPanda → PagerDuty through a real relay process and the PagerDuty simulator."""

from __future__ import annotations

import copy
import json

import pytest

from pagerbridge_devkit.sandbox.pagerduty import DEFAULT_ROUTING_KEY
from pagerbridge_devkit.waiting import wait_for

from .support import OVERRIDE_KEY, SAMPLES, enqueues, incident, relay_for

# Every test here starts a real relay process.
pytestmark = pytest.mark.component


def test_trigger_update_resolve_same_incident(pd_sim, relays, tmp_path):
    sim, url = pd_sim
    relay = relay_for(tmp_path, relays, url)
    body = incident(1)
    assert relay.post_bigpanda(body).status_code == 202
    found = wait_for(lambda: sim.incident_by_key(body["id"]), what="PD incident")
    assert found.status == "triggered"
    # A re-share with changed content updates the same incident.
    body2 = copy.deepcopy(body)
    body2["updatedOn"] += 60
    body2["alerts"][0]["description"] = "CPU load above 99%"
    assert relay.post_bigpanda({"incident": body2}).status_code == 202
    wait_for(lambda: len(sim.incident_by_key(body["id"]).events) == 2, what="second event")
    resolved = incident(1, status="ok")
    resolved["updatedOn"] += 120
    r = relay.post_bigpanda(resolved)
    assert r.status_code == 202
    assert r.json()["action"] == "resolve"
    wait_for(lambda: sim.incident_by_key(body["id"]).status == "resolved", what="resolved")
    assert len(sim.incidents()) == 1
    events = sim.incident_by_key(body["id"]).events
    assert [e["event_action"] for e in events] == ["trigger", "trigger", "resolve"]


def test_translation_of_sample(pd_sim, relays, tmp_path):
    sim, url = pd_sim
    relay = relay_for(tmp_path, relays, url)
    sample = json.loads((SAMPLES / "incident-new.json").read_text())
    assert relay.post_bigpanda(sample).status_code == 202
    inc_id = sample["incident"]["id"]
    pd_incident = wait_for(lambda: sim.incident_by_key(inc_id))
    sent = sim.requests.matching("POST", "/v2/enqueue")[0].json()
    payload = sent["payload"]
    assert sent["dedup_key"] == inc_id
    assert sent["event_action"] == "trigger"
    assert payload["severity"] == "critical"
    assert payload["source"] == "db-prod-01"
    assert "CPU load above 95%" in payload["summary"]
    assert "Replication lag" in payload["summary"]
    assert len(payload["summary"]) <= 1024
    assert payload["timestamp"].startswith("2025-")
    details = payload["custom_details"]
    assert details["tags"]["service"] == "payments"
    assert details["tags"]["check"] in ("cpu_load", "replication_lag")
    assert len(details["alerts"]) == 2
    assert inc_id in sent["links"][0]["href"]
    assert pd_incident.status == "triggered"


def test_comments_become_notes_exactly_once(pd_sim, relays, tmp_path):
    sim, url = pd_sim
    relay = relay_for(tmp_path, relays, url)
    body = incident(2)
    body["comments"] = [
        {"id": "c1", "comment": "Failing over", "created_by": "alice@example.com"},
    ]
    for _ in range(3):  # BigPanda re-sends the whole incident
        assert relay.post_bigpanda(body).status_code == 202
    wait_for(lambda: sim.incident_by_key(body["id"]) and sim.incident_by_key(body["id"]).notes)
    body["comments"].append({"id": "c2", "text": "Failover done", "created_by": "bob@example.com"})
    body["updatedOn"] += 10
    for _ in range(2):
        assert relay.post_bigpanda({"incident": body}).status_code == 202
    wait_for(lambda: len(sim.incident_by_key(body["id"]).notes) == 2, what="two notes")
    notes = sim.incident_by_key(body["id"]).notes
    assert "Failing over" in notes[0].content
    assert "alice@example.com" in notes[0].content
    assert "Failover done" in notes[1].content
    # Nothing more arrives later: exactly one note per comment.
    relay.post_bigpanda(body)
    assert wait_for(lambda: relay.metric("pagerbridge_relay_outbox_pending") == 0)
    assert len(sim.incident_by_key(body["id"]).notes) == 2
    assert len(sim.requests.matching("POST", "/incidents/")) == 2
    assert len(sim.incidents()) == 1


def test_resend_after_timeout_is_idempotent(pd_sim, relays, tmp_path):
    sim, url = pd_sim
    relay = relay_for(tmp_path, relays, url)
    body = incident(3)
    answers = [relay.post_bigpanda(body).json() for _ in range(4)]
    assert answers[0]["queued"] == 1
    assert all(a["duplicates"] == 1 and a["queued"] == 0 for a in answers[1:])
    wait_for(lambda: sim.incident_by_key(body["id"]))
    wait_for(lambda: relay.metric("pagerbridge_relay_outbox_pending") == 0)
    assert len(enqueues(sim)) == 1
    assert relay.metric("pagerbridge_relay_duplicates_total", kind="pd_event") == 3


def test_503_then_202_gives_exactly_one_incident(pd_sim, relays, tmp_path):
    sim, url = pd_sim
    sim.faults.fail_next(2, 503, path_prefix="/v2/enqueue")
    relay = relay_for(tmp_path, relays, url)
    body = incident(4)
    assert relay.post_bigpanda(body).status_code == 202
    wait_for(lambda: sim.incident_by_key(body["id"]), timeout=15)
    wait_for(lambda: relay.metric("pagerbridge_relay_outbox_pending") == 0)
    attempts = sim.requests.matching("POST", "/v2/enqueue")
    assert [a.status for a in attempts] == [503, 503, 202]
    assert len(sim.incidents()) == 1
    assert relay.metric("pagerbridge_relay_deliveries_total", outcome="transient") == 2


def test_429_storm_keeps_per_incident_order(pd_sim, relays, tmp_path):
    sim, url = pd_sim
    sim.faults.fail_next(8, 429, path_prefix="/v2/enqueue", headers={"Retry-After": "0.2"})
    relay = relay_for(tmp_path, relays, url)
    ids = []
    for n in range(10, 14):
        body = incident(n)
        ids.append(body["id"])
        assert relay.post_bigpanda(body).status_code == 202
        ok = incident(n, status="ok")
        ok["updatedOn"] += 5
        assert relay.post_bigpanda(ok).status_code == 202
    for inc_id in ids:
        wait_for(
            lambda i=inc_id: sim.incident_by_key(i) and sim.incident_by_key(i).status == "resolved",
            timeout=20,
            what=f"{inc_id} resolved",
        )
        assert [e["event_action"] for e in sim.incident_by_key(inc_id).events] == [
            "trigger",
            "resolve",
        ]
    assert relay.metric("pagerbridge_relay_deliveries_total", outcome="rate_limited") == 8
    assert len(sim.incidents()) == 4


def test_sigkill_after_202_then_restart_delivers_once(pd_sim, relays, tmp_path):
    sim, url = pd_sim
    rule = sim.faults.fail_next(None, 503, path_prefix="/v2/enqueue")
    relay = relay_for(tmp_path, relays, url)
    body = incident(20)
    assert relay.post_bigpanda(body).status_code == 202
    wait_for(lambda: sim.requests.matching("POST", "/v2/enqueue"), what="first attempt")
    relay.kill()  # SIGKILL: no shutdown code
    sim.faults.clear()
    del rule
    relay.start()
    wait_for(lambda: sim.incident_by_key(body["id"]), timeout=15, what="delivered after restart")
    wait_for(lambda: relay.metric("pagerbridge_relay_outbox_pending") == 0)
    # And BigPanda re-sending it after the restart changes nothing.
    assert relay.post_bigpanda(body).json()["duplicates"] == 1
    assert len(enqueues(sim)) == 1
    assert len(sim.incidents()) == 1


def test_sigterm_is_graceful_and_keeps_undelivered(pd_sim, relays, tmp_path):
    sim, url = pd_sim
    sim.faults.fail_next(None, 503, path_prefix="/v2/enqueue")
    relay = relay_for(tmp_path, relays, url)
    body = incident(21)
    assert relay.post_bigpanda(body).status_code == 202
    # uvicorn re-raises SIGTERM after its graceful shutdown: -15 is the clean exit here.
    assert relay.terminate() in (0, -15)
    assert '"relay stopped"' in relay.logs()
    assert '"undelivered_jobs": 1' in relay.logs()
    sim.faults.clear()
    relay.start()
    wait_for(lambda: sim.incident_by_key(body["id"]), timeout=15)
    assert len(enqueues(sim)) == 1


def test_400_is_permanent_and_dead_lettered(pd_sim, relays, tmp_path):
    sim, url = pd_sim
    sim.faults.fail_next(
        1, 400, path_prefix="/v2/enqueue", body={"status": "invalid event", "errors": ["x"]}
    )
    relay = relay_for(tmp_path, relays, url)
    body = incident(22)
    assert relay.post_bigpanda(body).status_code == 202
    wait_for(lambda: relay.metric("pagerbridge_relay_dead_letters_total", kind="pd_event") == 1)
    assert len(sim.requests.matching("POST", "/v2/enqueue")) == 1
    assert "dead-lettered" in relay.logs()
    # The next share of the incident goes through: one bad event does not block the incident.
    body["updatedOn"] += 1
    body["alerts"][0]["description"] = "CPU load above 97%"
    relay.post_bigpanda(body)
    wait_for(lambda: sim.incident_by_key(body["id"]))


def test_key_override_from_config_tag_and_resolve_uses_same_key(pd_sim, relays, tmp_path):
    sim, url = pd_sim
    sim.add_service("POVERRIDE", OVERRIDE_KEY, "Override service")
    relay = relay_for(tmp_path, relays, url, extra={"keyOverrideTag": "pd_key"})
    body = incident(30)
    body["alerts"][0]["pd_key"] = OVERRIDE_KEY
    assert relay.post_bigpanda(body).status_code == 202
    found = wait_for(lambda: sim.incident_by_key(body["id"]))
    assert found.routing_key == OVERRIDE_KEY
    # The resolve's body lacks the tag: it still goes with the trigger's key.
    ok = incident(30, status="ok")
    ok["updatedOn"] += 3
    relay.post_bigpanda(ok)
    wait_for(lambda: sim.incident_by_key(body["id"]).status == "resolved")
    assert all(e["routing_key"] == OVERRIDE_KEY for e in enqueues(sim, 2))


def test_key_override_header_wins_and_invalid_value_falls_back(pd_sim, relays, tmp_path):
    sim, url = pd_sim
    sim.add_service("POVERRIDE", OVERRIDE_KEY, "Override service")
    relay = relay_for(tmp_path, relays, url, extra={"keyOverrideTag": "pd_key"})
    body = incident(31)
    body["alerts"][0]["pd_key"] = "not-a-key"
    body["alerts"][0]["routing"] = OVERRIDE_KEY
    relay.post_bigpanda(body, headers={"x-bp-config-pdfield": "routing"})
    assert wait_for(lambda: sim.incident_by_key(body["id"])).routing_key == OVERRIDE_KEY
    bad = incident(32)
    bad["alerts"][0]["pd_key"] = "not-a-key"
    relay.post_bigpanda(bad)
    found = wait_for(lambda: sim.incident_by_key(bad["id"]))
    assert found.routing_key == DEFAULT_ROUTING_KEY
    details = enqueues(sim, 2)[-1]["payload"]["custom_details"]
    assert "not a valid 32-character" in details["pagerbridge_key_override"]
    assert relay.metric("pagerbridge_relay_key_override_fallbacks_total", reason="invalid") == 1


def test_override_key_rejected_by_pagerduty_is_resent_with_default(pd_sim, relays, tmp_path):
    sim, url = pd_sim
    sim.strict_routing_keys = True  # unknown keys → 400, like PagerDuty
    relay = relay_for(tmp_path, relays, url, extra={"keyOverrideTag": "pd_key"})
    body = incident(33)
    body["alerts"][0]["pd_key"] = "ffffffffffffffffffffffffffffffff"
    relay.post_bigpanda(body)
    found = wait_for(lambda: sim.incident_by_key(body["id"]))
    assert found.routing_key == DEFAULT_ROUTING_KEY
    # The simulator records a request once its answer is sent, after the state changed.
    wait_for(lambda: len(sim.requests.matching("POST", "/v2/enqueue")) == 2)
    statuses = [r.status for r in sim.requests.matching("POST", "/v2/enqueue")]
    assert statuses == [400, 202]
    assert (
        "rejected the override"
        in enqueues(sim)[0]["payload"]["custom_details"]["pagerbridge_key_override"]
    )
    assert relay.metric("pagerbridge_relay_key_override_fallbacks_total", reason="rejected") == 1


def test_tag_mappings_from_config_and_headers(pd_sim, relays, tmp_path):
    sim, url = pd_sim
    relay = relay_for(
        tmp_path,
        relays,
        url,
        extra={
            "tagMappings": [
                {"tag": "team", "field": "group"},
                {"tag": "check", "field": "component"},
            ]
        },
    )
    body = incident(40)
    body["alerts"][0]["sev"] = "warning"
    r = relay.post_bigpanda(
        body,
        headers={
            "x-bp-config-tag-host": "custom_details.hostname",
            "x-bp-config-tag-sev": "severity",
            "x-bp-config-tag-team": "class",
            "x-bp-config-tag-check": "no_such_field",
        },
    )
    assert r.status_code == 202
    wait_for(lambda: sim.incident_by_key(body["id"]))
    payload = enqueues(sim)[0]["payload"]
    assert payload["group"] == "dba"
    assert payload["component"] == "cpu"
    assert payload["class"] == "dba"
    assert payload["severity"] == "warning"
    assert payload["custom_details"]["hostname"] == "db-40"
    assert relay.metric("pagerbridge_relay_tag_mapping_headers_ignored_total") == 1
    assert "tag mapping headers ignored" in relay.logs()


def test_reopen_after_resolve_and_stale_resend(pd_sim, relays, tmp_path):
    sim, url = pd_sim
    relay = relay_for(tmp_path, relays, url)
    first = incident(50)
    ok = incident(50, status="ok")
    ok["updatedOn"] += 10
    relay.post_bigpanda(first)
    relay.post_bigpanda(ok)
    wait_for(
        lambda: (
            sim.incident_by_key(first["id"])
            and sim.incident_by_key(first["id"]).status == "resolved"
        )
    )
    # An old trigger re-sent late (older updatedOn) must not reopen anything.
    assert relay.post_bigpanda(first).json()["queued"] == 0
    # A genuine reopen: same content as the first trigger, newer updatedOn.
    reopen = incident(50)
    reopen["updatedOn"] += 20
    assert relay.post_bigpanda(reopen).json()["queued"] == 1
    wait_for(lambda: len([i for i in sim.incidents() if i.incident_key == first["id"]]) == 2)
    assert relay.metric("pagerbridge_relay_ignored_total", reason="stale_webhook") == 1
    assert [e["event_action"] for e in enqueues(sim, 3)] == ["trigger", "resolve", "trigger"]


def test_events_rate_limit_per_routing_key_is_honoured(pd_sim, relays, tmp_path):
    import time

    sim, url = pd_sim
    # 6 per minute, all 6 at once: a burst of 6, then none until the window has passed.
    args = ["--events-rate-limit", "6", "--events-burst", "6"]
    relay = relay_for(tmp_path, relays, url, args=args)
    for n in range(60, 69):
        assert relay.post_bigpanda(incident(n)).status_code == 202
    wait_for(lambda: len(sim.incidents()) == 6, what="the burst")
    time.sleep(1.5)  # a negative check: nothing more may arrive within the refill time
    assert len(sim.incidents()) == 6
    assert all(r.status == 202 for r in sim.requests.matching("POST", "/v2/enqueue"))
    assert relay.metric("pagerbridge_relay_outbox_pending") == 3


def test_no_rate_limit_wait_inside_a_delivery_slot(pd_sim, relays, tmp_path):
    """Invariant: no upstream rate-limit wait holds a delivery slot, so a new incident's
    trigger goes out at once while many notes wait for PagerDuty REST tokens.

    Stated by causality rather than a latency threshold: the notes queued before the trigger
    need at least ``backlog`` REST tokens, which the relay issues at ``rate`` per second; the
    trigger must reach PagerDuty before a quarter of them could have been issued. (Before
    the fix every slot was held by a note waiting for its second token, queued behind all
    the others' first tokens, and the trigger waited for a slot that long.) Few slots and a
    slow REST rate make the backlog independent of how fast this machine posts."""
    sim, url = pd_sim
    per_minute = 60
    rate = per_minute / 60
    args = ["--rest-rate-limit", str(per_minute), "--delivery-concurrency", "4"]
    relay = relay_for(tmp_path, relays, url, args=args)
    backlog = 100  # notes, well over the 4 delivery slots
    for n in range(backlog):
        # Resolved incidents whose comments become notes: the notes come first in each
        # incident's lane and each needs REST tokens (find the incident, write the note).
        body = incident(1000 + n, status="ok")
        body["comments"] = [{"id": "c", "comment": f"note for {n}"}]
        assert relay.post_bigpanda(body).status_code == 202
    new = incident(1999)
    assert relay.post_bigpanda(new).status_code == 202
    wait_for(
        lambda: sim.incident_by_key(new["id"]),
        timeout=backlog / rate / 4,
        what="the new trigger before a quarter of the notes' tokens could have been issued",
    )
    assert relay.metric("pagerbridge_relay_outbox_pending") > backlog / 2  # still queued
