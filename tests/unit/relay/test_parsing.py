"""Parsing BigPanda webhook bodies (relay.incidents.parsing): the documented samples,
what is refused as not an incident, and leniency about field types."""

from __future__ import annotations

import pytest

from pagerbridge.relay.errors import InvalidIncident
from pagerbridge.relay.incidents.overrides import (
    choose_routing,
)
from pagerbridge.relay.incidents.parsing import parse_incident
from pagerbridge.relay.incidents.translate import translate

from .support import CONFIG, sample


def test_parse_bare_and_wrapped_samples_keep_unknown_fields():
    wrapped = parse_incident(sample("incident-new.json"))
    bare = parse_incident(sample("incident-commented.json"))
    assert wrapped.id == bare.id == "65f1c0de9a1b2c3d4e5f6a7b"
    assert wrapped.raw["flapping"] is False
    assert wrapped.alerts[0].tags["service"] == "payments"
    assert wrapped.alerts[1].tags == {"host": "db-prod-02", "check": "replication_lag"}
    assert wrapped.incident_tags == {"priority": "P1"}
    assert bare.comments[0].id == "c1"
    assert bare.comments[0].text == "Failing over to replica"
    assert parse_incident(sample("incident-resolved.json")).resolved


@pytest.mark.parametrize(
    "body", [[], "x", {"incident": {}}, {"id": ""}, {"id": None}, {"id": "a\nb"}, {"id": "x" * 300}]
)
def test_parse_refuses_non_incidents(body):
    with pytest.raises(InvalidIncident):
        parse_incident(body)


def test_parse_is_lenient_about_types():
    inc = parse_incident(
        {"id": 42, "status": 7, "active": "yes", "alerts": [1, {"tags": "x"}], "comments": {}}
    )
    assert inc.id == "42"
    assert inc.active is None
    # An unknown status is kept and maps like "unknown".
    assert (
        translate(inc, CONFIG, choose_routing(inc, None, None), []).event["payload"]["severity"]
        == "error"
    )
    assert len(inc.alerts) == 1
    assert inc.comments == ()


def test_comment_without_id_gets_stable_content_id():
    body = {"id": "i", "comment": {"text": "hi", "created_by": "a", "created_at": 1}}
    assert parse_incident(body).comments[0].id == parse_incident(body).comments[0].id
