"""Webhook v2 template rendering and dynamic variables (pure functions, no HTTP)."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from bigpanda_support import SAMPLE_ALERTS, SAMPLE_TAGS

from pagerbridge_devkit.sandbox.bigpanda.store import IncidentStore
from pagerbridge_devkit.sandbox.bigpanda.templates import (
    TemplateError,
    parse_headers,
    render_headers,
    render_string,
    render_value,
)
from pagerbridge_devkit.sandbox.bigpanda.variables import (
    catalogue,
    primary_alert,
    resolve_variables,
)


def test_render_string_interpolates_with_or_without_spaces() -> None:
    text = render_string("{{incident.id}}/{{ primaryAlert.tags.host }}", {
        "incident.id": "abc", "primaryAlert.tags.host": "db-1",
    })  # fmt: skip
    assert text == "abc/db-1"


def test_render_string_unknown_variable_renders_empty_and_escape_applies() -> None:
    assert render_string("x{{nope}}y", {}) == "xy"
    escaped = render_string("/i/{{v}}", {"v": "a b/c"}, escape=lambda s: quote(s, safe=""))
    assert escaped == "/i/a%20b%2Fc"


def test_render_value_keeps_types_for_whole_placeholders_and_text_otherwise() -> None:
    variables = {"incident.start": 1764140000, "incident.active": True, "incident.id": "i1"}
    body = {
        "start": "{{incident.start}}",
        "active": "{{ incident.active }}",
        "text": "Incident {{incident.id}} started {{incident.start}}",
        "nested": {"list": ["{{incident.id}}", 3, None], "quoted": "'{{incident.id}}'"},
        "missing": "{{incident.nope}}",
    }
    assert render_value(body, variables) == {
        "start": 1764140000,
        "active": True,
        "text": "Incident i1 started 1764140000",
        "nested": {"list": ["i1", 3, None], "quoted": "'i1'"},
        "missing": "",
    }


def test_parse_headers_accepts_documented_forms() -> None:
    assert parse_headers('"x-client-id" : "{{ primaryAlert.tags.host }}"\n') == [
        ("x-client-id", "{{ primaryAlert.tags.host }}")
    ]
    assert parse_headers('{"a": "1", "b" : "two \\"quoted\\""}') == [
        ("a", "1"),
        ("b", 'two "quoted"'),
    ]
    assert parse_headers("") == []


@pytest.mark.parametrize(
    "bad", ["x-a: 1", '"a" "b"', '"a" : "1" junk', '"bad name" : "v"', '"" : "v"']
)
def test_parse_headers_rejects_malformed(bad: str) -> None:
    with pytest.raises(TemplateError):
        parse_headers(bad)


def test_render_headers_strips_line_breaks_from_values() -> None:
    rendered = render_headers('"x-host" : "{{h}}", "x-static" : "s"', {"h": "evil\r\nX-Other: 1"})
    assert rendered == {"x-host": "evil X-Other: 1", "x-static": "s"}


def test_variables_from_an_incident_like_the_samples() -> None:
    store = IncidentStore("env1")
    incident = store.open(SAMPLE_ALERTS, SAMPLE_TAGS)
    variables = resolve_variables(incident, {"trigger": "incident#new"})
    assert variables["incident.id"] == incident.id
    assert variables["incident.start"] == incident.startedOn
    assert variables["incident.updated_at"] == incident.updatedOn
    assert variables["incident.status"] == "critical"
    assert variables["incidentTags.priority"] == "P1"
    # primary alert = most severe (oldest first): a1, whose tags are flat properties
    assert variables["primaryAlert.alert_id"] == "a1"
    assert variables["primaryAlert.tags.host"] == "db-prod-01"
    assert variables["primaryAlert.tags.pd_routing_key"] == "0123456789abcdef0123456789abcdef"
    assert "primaryAlert.tags.description" not in variables
    assert variables["metadata.trigger"] == "incident#new"
    assert incident.id in variables["links.incident"]


def test_primary_alert_reads_tags_list_and_prefers_oldest_of_equal_severity() -> None:
    store = IncidentStore("env1")
    incident = store.open([SAMPLE_ALERTS[1], {**SAMPLE_ALERTS[1], "alert_id": "a3"}])
    assert primary_alert(incident) is not None
    variables = resolve_variables(incident, {})
    assert variables["primaryAlert.alert_id"] == "a2"
    assert variables["primaryAlert.tags.check"] == "replication_lag"


def test_catalogue_lists_standard_fields_and_the_orgs_tags() -> None:
    store = IncidentStore("env1")
    store.open(SAMPLE_ALERTS, SAMPLE_TAGS)
    listed = catalogue(store.all())
    assert {"title": "id", "value": "incident.id"} in listed["incident"]
    assert {"title": "priority", "value": "incidentTags.priority"} in listed["incidentTags"]
    assert {"title": "host", "value": "primaryAlert.tags.host"} in listed["primaryAlert.tags"]
    assert set(listed) == {
        "incident", "incidentTags", "primaryAlert.tags", "primaryAlert", "metadata",
        "links", "assignee", "assigner", "additional_fields",
    }  # fmt: skip
    # every listed variable (except tags absent from the data) renders from an incident
    variables = resolve_variables(store.all()[0], {"trigger": "incident#new"})
    for entry in listed["incidentTags"] + listed["primaryAlert.tags"]:
        assert entry["value"] in variables
