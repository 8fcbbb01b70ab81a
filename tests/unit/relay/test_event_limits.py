"""Every event the relay builds is within PagerDuty's documented Events v2 limits.

Invariant (hypothesis over incidents with huge tags, thousands of tags, long alert fields,
non-ASCII text, and tag mappings onto every payload field): the event, routing key
included, is at most 512 KB however the HTTP client encodes it; summary, source,
component, group and class are at most 1024 characters; dedup_key is the incident id
(at most 255); PagerDuty's own validation (the simulator's rules) finds nothing; the
trimming is deterministic and says what it cut; the incident's identity is never lost.
Then the two cases the issue found, through a real relay and the simulator: the page
arrives.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pagerbridge.api.relay_config import RelayConfig
from pagerbridge.api.tag_mapping import TagMapping
from pagerbridge.relay.incidents.limits import MAX_EVENT_BYTES as LIMIT
from pagerbridge.relay.incidents.limits import TRIM_NOTE_KEY
from pagerbridge.relay.incidents.overrides import choose_routing
from pagerbridge.relay.incidents.parsing import parse_incident
from pagerbridge.relay.incidents.translate import translate
from pagerbridge_devkit.sandbox.pagerduty import DEFAULT_ROUTING_KEY
from pagerbridge_devkit.sandbox.pagerduty.events import rule_errors
from pagerbridge_devkit.waiting import wait_for

from .conftest import start_relay
from .relayproc import write_config

CONFIG = RelayConfig.model_validate(
    {
        "pagerDuty": {"routingKeyFile": "/x"},
        "bigPanda": {"webhookTokenFile": "/y", "environmentId": "env1"},
    }
)
FIELDS = ["summary", "source", "component", "group", "class"]
EXAMPLES = max(10, int(os.environ.get("PAGERBRIDGE_PROPERTY_EXAMPLES", "300")) // 10)

chars = st.characters(exclude_categories=("Cs",))  # the edge already replaced surrogates
big_text = st.one_of(
    st.sampled_from(["", " ", "\n\t"]),
    st.text(chars, max_size=30),
    st.builds(lambda c, n: c * n, st.text(chars, min_size=1, max_size=3), st.integers(0, 300_000)),
)


def body_sizes(event: dict[str, Any]) -> list[int]:
    sent = {**event, "routing_key": DEFAULT_ROUTING_KEY}
    return [
        len(json.dumps(sent).encode()),
        len(json.dumps(sent, ensure_ascii=False, separators=(",", ":")).encode()),
        len(json.dumps(sent, ensure_ascii=False).encode()),
    ]


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    inc_id=st.text(chars, min_size=1, max_size=255).filter(lambda s: s.strip() == s and s),
    n_tags=st.integers(0, 25_000),
    tag_value=big_text,
    description=big_text,
    n_alerts=st.integers(1, 40),
    mapped=st.lists(st.sampled_from([*FIELDS, "custom_details.big", "custom_details.x"])),
)
def test_every_event_is_within_pagerduty_limits(
    inc_id: str,
    n_tags: int,
    tag_value: str,
    description: str,
    n_alerts: int,
    mapped: list[str],
) -> None:
    alert: dict[str, Any] = {
        "status": "critical",
        "description": description,
        "primary_property": "host",
        "host": "db-1",
        "big": tag_value,
    }
    alert.update({f"t{i}": f"v{i}" for i in range(n_tags)})
    raw = {"id": inc_id, "status": "critical", "alerts": [alert] * n_alerts}
    try:
        incident = parse_incident(raw)
    except Exception:  # an id the edge refuses (control characters): not this test's case
        return
    mappings = [TagMapping(tag="big", field=field) for field in dict.fromkeys(mapped)]
    routing = choose_routing(incident, None, None)
    first = translate(incident, CONFIG, routing, mappings)
    again = translate(incident, CONFIG, routing, mappings)
    event = first.event
    assert event == again.event  # deterministic
    assert first.content_hash == again.content_hash
    assert max(body_sizes(event)) <= LIMIT
    payload = event["payload"]
    for field in FIELDS:
        assert len(payload.get(field) or "") <= 1024, field
    assert event["dedup_key"] == incident.id
    assert len(event["dedup_key"]) <= 255
    assert rule_errors({**event, "routing_key": DEFAULT_ROUTING_KEY}, schema_checked=False) == []
    details = payload["custom_details"]
    assert details["bigpanda_incident_id"] == incident.id or TRIM_NOTE_KEY in details
    untrimmed = len(json.dumps(raw)) < LIMIT // 4 and "custom_details.big" not in mapped
    if untrimmed:
        assert TRIM_NOTE_KEY not in details
    if TRIM_NOTE_KEY in details:
        assert "cut" in details[TRIM_NOTE_KEY] or "dropped" in details[TRIM_NOTE_KEY]


@pytest.mark.component
def test_the_oversized_events_found_reach_pagerduty(pd_sim, relays, tmp_path) -> None:
    """A 400 KB tag mapped into custom_details, and 20,000 tags: both pages arrive."""
    sim, url = pd_sim
    config = write_config(
        tmp_path,
        pd_url=url,
        routing_key=DEFAULT_ROUTING_KEY,
        extra={"tagMappings": [{"tag": "blob", "field": "custom_details.blob"}]},
    )
    relay = start_relay(relays, config)
    huge = {"id": "huge-tag", "status": "critical", "alerts": [{"blob": "x" * 400_000}]}
    many = {
        "id": "many-tags",
        "status": "critical",
        "alerts": [{f"tag{i}": f"value-{i}" for i in range(20_000)}],
    }
    for body in (huge, many):
        assert relay.post_bigpanda(body).status_code == 202
    for body in (huge, many):
        wait_for(lambda b=body: sim.incident_by_key(b["id"]), timeout=30, what=body["id"])
    assert relay.metric("pagerbridge_relay_dead_letters_total") == 0


@pytest.mark.parametrize("inc_id", ["a b", "x#y", "../../admin", "ü/ß?q=1&r", "%zz"])
def test_the_bigpanda_link_is_a_url_whatever_the_incident_id(inc_id: str) -> None:
    """The relay's own link to BigPanda carries the incident id: un-encoded, an id with a
    space or a '#' made ``links[0].href`` no URL and PagerDuty refuse the whole trigger."""
    incident = parse_incident({"id": inc_id, "status": "critical", "alerts": [{"host": "h"}]})
    event = translate(incident, CONFIG, choose_routing(incident, None, None), []).event
    href = event["links"][0]["href"]
    assert rule_errors({**event, "routing_key": DEFAULT_ROUTING_KEY}, schema_checked=False) == []
    assert href.endswith("/incidents/" + quote(inc_id, safe=""))
