"""Translating a parsed incident into a PagerDuty Events v2 event
(relay.incidents.translate): trigger and resolve, the summary cap, a stable content hash."""

from __future__ import annotations

from pagerbridge.relay.incidents.overrides import (
    choose_routing,
)
from pagerbridge.relay.incidents.parsing import parse_incident
from pagerbridge.relay.incidents.translate import MAX_SUMMARY, translate

from .support import CONFIG, sample


def test_translate_trigger_and_resolve():
    inc = parse_incident(sample("incident-new.json"))
    t = translate(inc, CONFIG, choose_routing(inc, None, None), [])
    assert t.action == "trigger"
    payload = t.event["payload"]
    assert payload["summary"].startswith("[CRITICAL] db-prod-01 cpu_load: CPU load")
    assert payload["class"] == "cpu_load"
    assert "routing_key" not in t.event
    assert t.event["links"][0]["href"].endswith("/incidents/65f1c0de9a1b2c3d4e5f6a7b")
    resolved = translate(
        parse_incident(sample("incident-resolved.json")),
        CONFIG,
        choose_routing(inc, None, None),
        [],
    )
    assert resolved.event == {"event_action": "resolve", "dedup_key": inc.id}


def test_summary_is_capped_and_hash_is_stable():
    inc = parse_incident({"id": "i", "alerts": [{"description": "x" * 5000}] * 3})
    t1 = translate(inc, CONFIG, choose_routing(inc, None, None), [])
    t2 = translate(inc, CONFIG, choose_routing(inc, None, None), [])
    assert len(t1.event["payload"]["summary"]) == MAX_SUMMARY
    assert t1.content_hash == t2.content_hash
    other = parse_incident({"id": "i", "alerts": [{"description": "y"}]})
    assert (
        translate(other, CONFIG, choose_routing(other, None, None), []).content_hash
        != t1.content_hash
    )
