"""Events API v2 over real HTTP: the incident state machine, validation rules, rate limit."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pagerduty_support import Running, running

from pagerbridge.relay.incidents.limits import MAX_BODY
from pagerbridge_devkit.sandbox.pagerduty import DEFAULT_ROUTING_KEY, PagerDutySimulator

OTHER_KEY = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def pd() -> Iterator[Running]:
    with running() as r:
        yield r


def test_trigger_answers_202_with_the_dedup_key_and_opens_an_incident(pd: Running) -> None:
    response = pd.trigger("disk-1", summary="Disk full on db-1")
    assert response.status_code == 202
    assert response.json() == {
        "status": "success",
        "message": "Event processed",
        "dedup_key": "disk-1",
    }
    incident = pd.sim.incident_by_key("disk-1")
    assert incident is not None
    assert (incident.status, incident.title, incident.routing_key) == (
        "triggered",
        "Disk full on db-1",
        DEFAULT_ROUTING_KEY,
    )
    assert incident.service_id == "PSANDBX"
    assert [e["event_action"] for e in incident.events] == ["trigger"]


def test_trigger_without_dedup_key_gets_a_generated_one(pd: Running) -> None:
    body = {"summary": "x", "source": "h", "severity": "info"}
    first = pd.enqueue(routing_key=DEFAULT_ROUTING_KEY, event_action="trigger", payload=body)
    second = pd.enqueue(routing_key=DEFAULT_ROUTING_KEY, event_action="trigger", payload=body)
    keys = {first.json()["dedup_key"], second.json()["dedup_key"]}
    assert len(keys) == 2
    assert all(pd.sim.incident_by_key(k) is not None for k in keys)


def test_repeated_trigger_updates_the_open_incident(pd: Running) -> None:
    pd.trigger("k")
    pd.trigger("k", summary="again")
    assert len(pd.sim.incidents()) == 1
    incident = pd.sim.incident_by_key("k")
    assert incident is not None
    assert len(incident.events) == 2
    assert incident.title == "Problem k"  # the title stays the first alert's


def test_acknowledge_then_resolve(pd: Running) -> None:
    pd.trigger("k")
    ack = pd.enqueue(routing_key=DEFAULT_ROUTING_KEY, event_action="acknowledge", dedup_key="k")
    assert ack.status_code == 202
    assert pd.sim.incident_by_key("k").status == "acknowledged"  # type: ignore[union-attr]
    pd.enqueue(routing_key=DEFAULT_ROUTING_KEY, event_action="resolve", dedup_key="k")
    incident = pd.sim.incident_by_key("k")
    assert incident is not None
    assert incident.status == "resolved"
    assert incident.resolved_at is not None


def test_resolve_with_another_routing_key_is_dropped(pd: Running) -> None:
    pd.trigger("k")
    response = pd.enqueue(routing_key=OTHER_KEY, event_action="resolve", dedup_key="k")
    assert response.status_code == 202  # accepted, as PagerDuty does...
    assert pd.sim.incident_by_key("k").status == "triggered"  # type: ignore[union-attr]
    # ...even when both keys route to the same service
    pd.sim.add_service("PSANDBX", OTHER_KEY)
    pd.enqueue(routing_key=OTHER_KEY, event_action="resolve", dedup_key="k")
    assert pd.sim.incident_by_key("k").status == "triggered"  # type: ignore[union-attr]


def test_acknowledge_or_resolve_of_unknown_key_is_accepted_and_ignored(pd: Running) -> None:
    for action in ("acknowledge", "resolve"):
        response = pd.enqueue(routing_key=DEFAULT_ROUTING_KEY, event_action=action, dedup_key="x")
        assert response.status_code == 202
    assert pd.sim.incidents() == []


def test_trigger_after_resolve_opens_a_new_incident_with_the_same_key(pd: Running) -> None:
    pd.trigger("k")
    pd.enqueue(routing_key=DEFAULT_ROUTING_KEY, event_action="resolve", dedup_key="k")
    pd.trigger("k")
    first, second = pd.sim.incidents()
    assert first.id != second.id
    assert (first.incident_key, second.incident_key) == ("k", "k")
    assert (first.status, second.status) == ("resolved", "triggered")
    assert pd.sim.incident_by_key("k") == second
    # a resolve now only touches the new one
    pd.enqueue(routing_key=DEFAULT_ROUTING_KEY, event_action="resolve", dedup_key="k")
    assert second.status == "resolved"
    assert len(first.events) == 2


def test_same_dedup_key_on_two_routing_keys_makes_two_incidents(pd: Running) -> None:
    pd.trigger("k")
    pd.trigger("k", routing_key=OTHER_KEY)
    services = {i.service_id for i in pd.sim.incidents()}
    assert len(pd.sim.incidents()) == 2
    assert len(services) == 2


def test_strict_routing_keys_reject_unknown_keys() -> None:
    with running(PagerDutySimulator(strict_routing_keys=True)) as pd:
        response = pd.trigger("k", routing_key=OTHER_KEY)
        assert response.status_code == 400
        assert response.json()["errors"] == ["Invalid routing key"]
        assert pd.trigger("k").status_code == 202


def _trigger(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "routing_key": DEFAULT_ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": "k",
        "payload": {"summary": "s", "source": "h", "severity": "critical"},
    }
    for dotted, value in overrides.items():
        target = event
        *parents, last = dotted.split("__")
        for part in parents:
            target = target[part]
        if value is _DELETE:
            del target[last]
        else:
            target[last] = value
    return event


_DELETE = object()


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        pytest.param(_trigger(routing_key="short"), "Length of 'routing_key'", id="key-short"),
        pytest.param(_trigger(routing_key="x" * 33), "Length of 'routing_key'", id="key-long"),
        pytest.param(_trigger(routing_key=_DELETE), "'routing_key' is a required", id="no-key"),
        pytest.param(_trigger(routing_key=42), "not of type 'string'", id="key-type"),
        pytest.param(_trigger(event_action="create"), "'create' is not one of", id="action"),
        pytest.param(_trigger(event_action=_DELETE), "'event_action' is a required", id="no-act"),
        pytest.param(_trigger(dedup_key="d" * 256), "'dedup_key' is too long", id="dedup-long"),
        pytest.param(_trigger(payload=_DELETE), "'payload' is missing", id="no-payload"),
        pytest.param(_trigger(payload__summary=_DELETE), "'summary' is a required", id="no-sum"),
        pytest.param(_trigger(payload__summary=" "), "'payload.summary' is missing", id="blank"),
        pytest.param(
            _trigger(payload__summary="s" * 1025), "'payload.summary' is too long", id="sum-long"
        ),
        pytest.param(_trigger(payload__source=_DELETE), "'source' is a required", id="no-src"),
        pytest.param(_trigger(payload__severity="high"), "'high' is not one of", id="severity"),
        pytest.param(
            _trigger(payload__severity=_DELETE), "'severity' is a required", id="no-severity"
        ),
        pytest.param(
            _trigger(payload__custom_details="text"), "not of type 'object'", id="details-type"
        ),
        pytest.param(
            _trigger(images=[{"src": "http://example.com/a.png"}]),
            "'images[0].src' must be an HTTPS URL",
            id="image-http",
        ),
        pytest.param(_trigger(images=[{"alt": "x"}]), "'src' is a required", id="image-src"),
        pytest.param(_trigger(links=[{"text": "x"}]), "'href' is a required", id="link-href"),
        pytest.param(_trigger(links=[{"href": 5}]), "not of type 'string'", id="link-type"),
        pytest.param(_trigger(links="x"), "not of type 'array'", id="links-type"),
        pytest.param(
            _trigger(links=[{"href": "wiki/runbook"}]), "'links[0].href' must be a URL", id="rel"
        ),
        pytest.param(
            _trigger(images=[{"src": "https://"}]), "'images[0].src' must be a URL", id="no-host"
        ),
        pytest.param(
            _trigger(images=[{"src": "https://x.example/a.png", "href": "javascript:x"}]),
            "'images[0].href' must be a URL",
            id="image-href",
        ),
        pytest.param(
            _trigger(images=[{"src": "https://x.example/a.png", "alt": 1}]),
            "not of type 'string'",
            id="image-alt-type",
        ),
        pytest.param(
            {"routing_key": DEFAULT_ROUTING_KEY, "event_action": "resolve"},
            "'dedup_key' is required to resolve",
            id="resolve-no-dedup",
        ),
        pytest.param(
            {"routing_key": DEFAULT_ROUTING_KEY, "event_action": "acknowledge", "dedup_key": ""},
            "'dedup_key' is required to acknowledge",
            id="ack-blank-dedup",
        ),
    ],
)
def test_invalid_events_get_400_with_the_reason(
    pd: Running, event: dict[str, Any], expected: str
) -> None:
    response = pd.client.post("/v2/enqueue", json=event)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["status"] == "invalid event"
    assert body["message"] == "Event object is invalid"
    assert any(expected in e for e in body["errors"]), body["errors"]
    assert pd.sim.incidents() == []


def test_documented_examples_are_valid(pd: Running) -> None:
    """PagerDuty's own timestamp format (``+0000``) and a resolve carrying a payload pass."""
    event = _trigger(payload__timestamp="2015-07-17T08:42:58.315+0000")
    event["images"] = [{"src": "https://example.com/chart.png", "href": "https://x", "alt": "a"}]
    event["links"] = [{"href": "https://example.com", "text": "runbook"}]
    event["client"], event["client_url"] = "Monitor", "https://monitor.example.com"
    assert pd.client.post("/v2/enqueue", json=event).status_code == 202
    resolve = {**_trigger(event_action="resolve"), "payload": {"summary": "only summary"}}
    assert pd.client.post("/v2/enqueue", json=resolve).status_code == 202
    assert pd.sim.incident_by_key("k").status == "resolved"  # type: ignore[union-attr]


def test_links_and_images_of_the_latest_trigger_are_kept(pd: Running) -> None:
    first = _trigger(links=[{"href": "https://wiki.example/a", "text": "Runbook"}])
    assert pd.client.post("/v2/enqueue", json=first).status_code == 202
    incident = pd.sim.incident_by_key("k")
    assert incident is not None
    assert incident.links == [{"href": "https://wiki.example/a", "text": "Runbook"}]
    assert incident.images == []
    image = {"src": "https://charts.example/g.png", "href": "https://charts.example/g", "alt": "g"}
    second = _trigger(links=[{"href": "https://wiki.example/b"}], images=[image])
    assert pd.client.post("/v2/enqueue", json=second).status_code == 202
    assert (incident.links, incident.images) == ([{"href": "https://wiki.example/b"}], [image])
    assert pd.client.post("/v2/enqueue", json=_trigger(event_action="resolve")).status_code == 202
    assert incident.images == [image]  # a resolve carries no links of its own


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'"text"'])
def test_unparseable_body_is_an_unrecognized_object(pd: Running, body: bytes) -> None:
    response = pd.client.post(
        "/v2/enqueue", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["status"] == "Unrecognized object"


def test_body_over_512_kb_is_rejected_and_at_the_limit_accepted(pd: Running) -> None:
    import json

    event = _trigger()
    event["payload"]["custom_details"] = {"blob": ""}
    overhead = len(json.dumps(event).encode())
    event["payload"]["custom_details"]["blob"] = "x" * (MAX_BODY - overhead)
    assert len(json.dumps(event).encode()) == MAX_BODY
    assert pd.client.post("/v2/enqueue", content=json.dumps(event)).status_code == 202
    event["dedup_key"] = "big"
    event["payload"]["custom_details"]["blob"] += "y"
    response = pd.client.post("/v2/enqueue", content=json.dumps(event))
    assert response.status_code == 400
    assert "512 KB" in response.json()["errors"][0]
    assert pd.sim.incident_by_key("big") is None


def test_rate_limit_per_routing_key_answers_429() -> None:
    with running(PagerDutySimulator(events_per_minute=3)) as pd:
        statuses = [pd.trigger(f"k{i}").status_code for i in range(5)]
        assert statuses == [202, 202, 202, 429, 429]
        throttled = pd.trigger("k9")
        assert throttled.json()["status"] == "throttle event"
        assert pd.sim.incident_by_key("k9") is None
        # another routing key has its own budget
        assert pd.trigger("other", routing_key=OTHER_KEY).status_code == 202
        # raised at run time over the admin route, counting starts afresh
        limits = pd.client.put("/_sandbox/rate-limits", json={"events_per_minute": 0})
        assert limits.json()["events_per_minute"] == 0
        assert all(pd.trigger(f"n{i}").status_code == 202 for i in range(10))


def test_stricter_bucket_answers_429_with_retry_after() -> None:
    """PagerDuty stricter than documented: 2 per second, 2 deep, Retry-After on a 429."""
    with running(PagerDutySimulator()) as pd:
        pd.sim.set_events_bucket(0.5, 2)  # slow enough that no token comes back meanwhile
        answers = [pd.trigger(f"b{i}") for i in range(3)]
        assert [a.status_code for a in answers] == [202, 202, 429]
        assert int(answers[2].headers["retry-after"]) == 2  # one token at 0.5/s
        assert "retry-after" not in answers[0].headers
        assert pd.trigger("other", routing_key=OTHER_KEY).status_code == 202  # per key
        pd.sim.set_rate_limits(events_per_minute=0)  # back to the window (off)
        assert all(pd.trigger(f"w{i}").status_code == 202 for i in range(5))


def test_validation_can_be_switched_off_but_documented_rules_still_hold() -> None:
    with running(PagerDutySimulator(validate=False)) as pd:
        event = _trigger(payload__custom_details="not an object")
        assert pd.client.post("/v2/enqueue", json=event).status_code == 202
        assert pd.client.post("/v2/enqueue", json=_trigger(routing_key="x")).status_code == 400
        for broken in (
            _trigger(routing_key=_DELETE),
            _trigger(event_action="explode"),
            _trigger(payload__severity="high"),
            _trigger(dedup_key=7),
            _trigger(payload="text"),
        ):
            response = pd.client.post("/v2/enqueue", json=broken)
            assert response.status_code == 400, broken
            assert len(response.json()["errors"]) == 1
        assert pd.sim.incidents() != []


def test_each_problem_is_reported_once(pd: Running) -> None:
    event = _trigger(payload__severity="high", payload__summary=_DELETE, routing_key="short")
    errors = pd.client.post("/v2/enqueue", json=event).json()["errors"]
    assert len(errors) == 3, errors


# -- acknowledged alerts, as documented ("Send an Alert Event", PagerDuty/developer-docs
# docs/events-API-v2/02-Trigger-Events.md; see docs/relay.md, "Incident lifecycle") ---------


def _ack(pd: Running, key: str, routing_key: str = DEFAULT_ROUTING_KEY) -> None:
    response = pd.enqueue(routing_key=routing_key, event_action="acknowledge", dedup_key=key)
    assert response.status_code == 202


def test_trigger_for_an_acknowledged_alert_is_deduplicated_and_notifies_nobody(
    pd: Running,
) -> None:
    pd.sim.drop_webhooks()  # collects the webhook event types the changes emit
    pd.trigger("k")
    _ack(pd, "k")
    incident = pd.sim.incident_by_key("k")
    assert incident is not None
    acknowledged_at = incident.acknowledged_at
    assert (incident.status, len(incident.notified)) == ("acknowledged", 1)

    again = pd.trigger("k", summary="a new alert during the snooze")
    assert again.status_code == 202
    assert again.json()["dedup_key"] == "k"
    assert len(pd.sim.incidents()) == 1  # the same incident: a trigger log entry on its alert
    incident = pd.sim.incident_by_key("k")
    assert incident is not None
    assert [e["event_action"] for e in incident.events] == ["trigger", "acknowledge", "trigger"]
    assert incident.status == "acknowledged"  # not re-opened...
    assert incident.acknowledged_at == acknowledged_at
    assert len(incident.notified) == 1  # ...and nobody notified again
    assert pd.sim.dropped_webhooks == ["incident.triggered", "incident.acknowledged"]


def test_acknowledge_of_an_acknowledged_alert_changes_nothing(pd: Running) -> None:
    pd.sim.drop_webhooks()
    pd.trigger("k")
    _ack(pd, "k")
    _ack(pd, "k")
    assert pd.sim.incident_by_key("k").status == "acknowledged"  # type: ignore[union-attr]
    assert pd.sim.dropped_webhooks == ["incident.triggered", "incident.acknowledged"]


def test_acknowledge_with_another_routing_key_is_dropped(pd: Running) -> None:
    pd.trigger("k")
    _ack(pd, "k", routing_key=OTHER_KEY)
    assert pd.sim.incident_by_key("k").status == "triggered"  # type: ignore[union-attr]


def test_acknowledge_after_resolve_is_dropped_and_reopens_nothing(pd: Running) -> None:
    pd.trigger("k")
    pd.enqueue(routing_key=DEFAULT_ROUTING_KEY, event_action="resolve", dedup_key="k")
    pd.sim.drop_webhooks()
    _ack(pd, "k")
    incident = pd.sim.incident_by_key("k")
    assert incident is not None
    assert incident.status == "resolved"
    assert [e["event_action"] for e in incident.events] == ["trigger", "resolve"]
    assert pd.sim.dropped_webhooks == []


def test_resolve_resolves_an_acknowledged_incident(pd: Running) -> None:
    pd.trigger("k")
    _ack(pd, "k")
    pd.enqueue(routing_key=DEFAULT_ROUTING_KEY, event_action="resolve", dedup_key="k")
    incident = pd.sim.incident_by_key("k")
    assert incident is not None
    assert (incident.status, incident.acknowledged_at) == ("resolved", None)


def test_ack_timeout_triggers_it_again_and_pages(pd: Running) -> None:
    pd.sim.drop_webhooks()
    pd.trigger("k")
    incident = pd.sim.incident_by_key("k")
    assert incident is not None
    pd.sim.ack_timeout(incident.id)  # not acknowledged: nothing happens
    assert (incident.status, len(incident.notified)) == ("triggered", 1)
    _ack(pd, "k")
    timed_out = pd.client.post(f"/_sandbox/incidents/{incident.id}/ack-timeout")
    assert timed_out.status_code == 200
    assert timed_out.json()["status"] == "triggered"
    assert len(timed_out.json()["notified"]) == 2
    assert pd.sim.dropped_webhooks == [
        "incident.triggered",
        "incident.acknowledged",
        "incident.unacknowledged",
    ]
