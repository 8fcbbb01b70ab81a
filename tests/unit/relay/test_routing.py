"""Routing and tag mappings (relay.incidents.overrides): which integration key an incident
goes to, and the x-bp-config-tag-* header mappings merged with the configured ones."""

from __future__ import annotations

from pagerbridge.api.contract import is_routing_key
from pagerbridge.api.tag_mapping import TagMapping
from pagerbridge.relay.incidents.overrides import (
    choose_routing,
    header_mappings,
    merge_mappings,
)
from pagerbridge.relay.incidents.parsing import parse_incident


def test_routing_choice():
    key = "A" * 32
    inc = parse_incident({"id": "i", "alerts": [{"k1": key, "k2": "short"}]})
    assert choose_routing(inc, "k1", None).key == key
    assert choose_routing(inc, "k2", "k1").key == key  # header wins
    bad = choose_routing(inc, "k2", None)
    assert bad.key is None
    assert bad.fallback_reason == "invalid"
    assert "short" not in (bad.note or "")
    assert choose_routing(inc, "absent", None).fallback_reason == "missing"
    assert choose_routing(inc, None, None).key is None
    assert is_routing_key(key)
    assert not is_routing_key(key + "x")


def test_header_mappings_and_merge():
    mappings, ignored = header_mappings(
        [("X-BP-Config-Tag-host", "source"), ("x-bp-config-tag-a", "nope"), ("other", "x")]
    )
    assert mappings == [TagMapping(tag="host", field="source")]
    assert ignored == ["x-bp-config-tag-a"]
    merged = merge_mappings([TagMapping(tag="h2", field="source")], mappings)
    assert merged == [TagMapping(tag="host", field="source")]
