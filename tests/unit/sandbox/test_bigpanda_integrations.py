"""BigPanda Webhook v2 integrations API of the simulator, and shares driven by its configs."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from bigpanda_support import SAMPLE_ALERTS, SAMPLE_TAGS, Receiver, receiving, running

from pagerbridge_devkit.sandbox.bigpanda import DEFAULT_API_TOKEN, TRIGGER_FIELD, BigPandaSimulator
from pagerbridge_devkit.sandbox.bigpanda.workflow import MASKED
from pagerbridge_devkit.sandbox.server import BackgroundServer

AUTH = {"Authorization": f"Bearer {DEFAULT_API_TOKEN}"}
INTEGRATIONS = "/resources/v2.1/integrations"


def event(trigger: str, enabled: bool = True, **fields: Any) -> dict[str, Any]:
    return {TRIGGER_FIELD: trigger, "enabled": enabled, **fields}


def config(base_url: str, *events: dict[str, Any]) -> dict[str, Any]:
    return {"config": {"base_url": base_url, "expects_callbacks": False}, "events": list(events)}


def create_body(name: str, workflow: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "parent_system_id": "webhook_v2", "workflow_config": workflow}


@pytest.fixture
def sim() -> BigPandaSimulator:
    return BigPandaSimulator(requests_per_second=None, webhook_backoff=0.02)


@pytest.fixture
def api(sim: BigPandaSimulator) -> Iterator[httpx.Client]:
    with running(sim) as server, httpx.Client(base_url=server.url, timeout=5) as http:
        yield http


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, BackgroundServer]]:
    with receiving() as pair:
        yield pair


def test_crud_round_trip(api: httpx.Client, sim: BigPandaSimulator) -> None:
    workflow = config("https://relay.example.com/v1/bigpanda/webhook", event("default"))
    created = api.post(INTEGRATIONS, headers=AUTH, json=create_body("pagerbridge", workflow))
    assert created.status_code == 201
    item = {"name": "pagerbridge", "parent_system_id": "webhook_v2", "workflow_config": workflow}
    assert created.json() == [item]  # the reference documents an array answer

    assert api.get(INTEGRATIONS, headers=AUTH).json() == [item]
    one = api.get(f"{INTEGRATIONS}/webhook_v2.pagerbridge", headers=AUTH)
    assert (one.status_code, one.json()) == (200, [item])
    stored = sim.integration("webhook_v2.pagerbridge")
    assert stored is not None
    assert stored.workflow_config.config.base_url == "https://relay.example.com/v1/bigpanda/webhook"

    patched_workflow = config(
        "https://relay.example.com/v1/bigpanda/webhook",
        event("default", enabled=False),
        event("incident#new", headers='"x-bp-config-pdfield" : "pd_routing_key"'),
    )
    patched = api.patch(
        f"{INTEGRATIONS}/webhook_v2.pagerbridge",
        headers=AUTH,
        json={"workflow_config": patched_workflow},
    )
    assert patched.status_code == 200
    assert patched.json()[0]["workflow_config"] == patched_workflow
    assert (
        api.get(f"{INTEGRATIONS}/webhook_v2.pagerbridge", headers=AUTH).json()[0]["workflow_config"]
        == patched_workflow
    )

    deleted = api.delete(f"{INTEGRATIONS}/webhook_v2.pagerbridge", headers=AUTH)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert api.get(INTEGRATIONS, headers=AUTH).json() == []
    assert sim.integration("webhook_v2.pagerbridge") is None


def test_unknown_fields_are_kept(api: httpx.Client) -> None:
    workflow = config("http://x.example/", event("default", future_option=1))
    workflow["config"]["extra"] = "kept"
    api.post(INTEGRATIONS, headers=AUTH, json=create_body("keep", workflow))
    stored = api.get(f"{INTEGRATIONS}/webhook_v2.keep", headers=AUTH).json()[0]["workflow_config"]
    assert stored == workflow


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "webhook_v2.missing"), ("PATCH", "webhook_v2.missing"),
     ("DELETE", "webhook_v2.missing")],
)  # fmt: skip
def test_unknown_integration_is_404(api: httpx.Client, method: str, path: str) -> None:
    body = {"workflow_config": config("http://x.example", event("default"))}
    response = api.request(method, f"{INTEGRATIONS}/{path}", headers=AUTH, json=body)
    assert response.status_code == 404
    assert response.json() == {"status": 404, "errors": ["Integration not found"]}


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", INTEGRATIONS), ("POST", INTEGRATIONS), ("GET", INTEGRATIONS + "/webhook_v2.a"),
     ("PATCH", INTEGRATIONS + "/webhook_v2.a"), ("DELETE", INTEGRATIONS + "/webhook_v2.a"),
     ("GET", "/resources/v2.1/fields-resolver/workflows")],
)  # fmt: skip
def test_401_without_valid_key(
    api: httpx.Client, sim: BigPandaSimulator, method: str, path: str
) -> None:
    workflow = config("http://x.example", event("default"))
    assert api.post(INTEGRATIONS, headers=AUTH, json=create_body("a", workflow)).status_code == 201
    for headers in ({}, {"Authorization": "Bearer not-the-key"}):
        response = api.request(method, path, headers=headers, json=create_body("b", workflow))
        assert response.status_code == 401
        assert response.json()["status"] == 401
    assert [i.name for i in sim.integrations.all()] == ["a"]


def one_event(**fields: Any) -> dict[str, Any]:
    """A create body whose single default event has these fields."""
    return create_body("n", config("http://x", event("default", **fields)))


BAD_BODIES: list[tuple[str, Any]] = [
    ("not an object", ["x"]),
    ("no name", {k: v for k, v in one_event().items() if k != "name"}),
    ("wrong parent", one_event() | {"parent_system_id": "snmp"}),
    ("no workflow", {"name": "n", "parent_system_id": "webhook_v2"}),
    ("no base_url", create_body("n", {"config": {}, "events": []})),
    ("relative base_url", create_body("n", config("/relay", event("default")))),
    ("no events", create_body("n", {"config": {"base_url": "http://x"}})),
    ("event without trigger", create_body("n", config("http://x", {"enabled": True}))),
    ("unknown trigger", create_body("n", config("http://x", event("incident#exploded")))),
    ("duplicate trigger", create_body("n", config("http://x", event("default"), event("default")))),
    ("enabled missing", create_body("n", config("http://x", {TRIGGER_FIELD: "default"}))),
    ("bad method", one_event(method="GET")),
    ("body not object", one_event(body="text")),
    ("bad headers", one_event(headers="x-a: b")),
    ("bad authorization", one_event(authorization="token")),
    ("path not absolute", one_event(path="x/{{incident.id}}")),
    ("bad name", create_body("a/b", config("http://x", event("default")))),
]  # fmt: skip


@pytest.mark.parametrize(("why", "body"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_invalid_create_is_400(
    api: httpx.Client, sim: BigPandaSimulator, why: str, body: Any
) -> None:
    response = api.post(INTEGRATIONS, headers=AUTH, json=body)
    assert response.status_code == 400, why
    answer = response.json()
    assert answer["status"] == 400
    assert answer["errors"]
    assert all(isinstance(e, str) for e in answer["errors"])
    assert sim.integrations.all() == []


def test_invalid_patch_is_400_and_keeps_config(api: httpx.Client) -> None:
    workflow = config("http://x.example", event("default"))
    api.post(INTEGRATIONS, headers=AUTH, json=create_body("a", workflow))
    for body in (
        {},
        {"workflow_config": {"config": {}}},
        {"workflow_config": workflow, "name": "b"},
    ):
        response = api.patch(f"{INTEGRATIONS}/webhook_v2.a", headers=AUTH, json=body)
        assert response.status_code == 400
    assert (
        api.get(f"{INTEGRATIONS}/webhook_v2.a", headers=AUTH).json()[0]["workflow_config"]
        == workflow
    )


def test_duplicate_name_is_refused(api: httpx.Client) -> None:
    body = create_body("dup", config("http://x.example", event("default")))
    assert api.post(INTEGRATIONS, headers=AUTH, json=body).status_code == 201
    again = api.post(INTEGRATIONS, headers=AUTH, json=body)
    assert again.status_code == 400
    assert "webhook_v2.dup" in again.json()["errors"][0]


def test_fields_resolver_lists_variables(api: httpx.Client, sim: BigPandaSimulator) -> None:
    sim.open_incident(alerts=SAMPLE_ALERTS, incident_tags=SAMPLE_TAGS)
    response = api.get("/resources/v2.1/fields-resolver/workflows", headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert {"title": "id", "value": "incident.id"} in body["incident"]
    assert {"title": "host", "value": "primaryAlert.tags.host"} in body["primaryAlert.tags"]
    assert {"title": "priority", "value": "incidentTags.priority"} in body["incidentTags"]
    assert {"title": "comment", "value": "metadata.comment"} in body["metadata"]


def test_stored_config_drives_the_share(
    api: httpx.Client, sim: BigPandaSimulator, receiver: tuple[Receiver, BackgroundServer]
) -> None:
    catcher, server = receiver
    body_template = {
        "incident_id": "{{incident.id}}",
        "started": "{{incident.start}}",
        "priority": "{{ incidentTags.priority }}",
        "summary": "{{primaryAlert.description}} on {{primaryAlert.tags.host}}",
        "nested": {
            "key": "{{primaryAlert.tags.pd_routing_key}}",
            "trigger": "{{metadata.trigger}}",
        },
        "comment": "{{metadata.comment}}",
    }
    workflow = config(
        server.url + "/base",
        event(
            "incident#new",
            method="PUT",
            path="/incident/{{incident.id}}",
            authorization="Bearer inbound-token-abc",
            headers=(
                '"x-bp-config-pdfield" : "pd_routing_key", '
                '"x-client-id" : "{{ primaryAlert.tags.host }}"'
            ),
            body=body_template,
        ),
        event("incident#commented", method="PATCH", body=body_template),
        event("default"),  # no body template, no path: native payload to base_url
    )
    assert api.post(INTEGRATIONS, headers=AUTH, json=create_body("pb", workflow)).status_code == 201

    incident = sim.open_incident(alerts=SAMPLE_ALERTS, incident_tags=SAMPLE_TAGS)
    sim.add_comment(incident.id, "Failing over", by="alice@example.com")
    sim.resolve_incident(incident.id)
    assert sim.wait_webhooks_idle(5)
    new, commented, closed = catcher.received

    assert (new.method, new.path) == ("PUT", f"/base/incident/{incident.id}")
    assert new.headers["authorization"] == "Bearer inbound-token-abc"
    assert new.headers["x-bp-config-pdfield"] == "pd_routing_key"
    assert new.headers["x-client-id"] == "db-prod-01"
    assert new.headers["content-type"] == "application/json"
    assert new.json() == {
        "incident_id": incident.id,
        "started": incident.startedOn,  # a whole-variable value keeps its JSON type
        "priority": "P1",
        "summary": "CPU load above 95% for 10 minutes on db-prod-01",
        "nested": {"key": "0123456789abcdef0123456789abcdef", "trigger": "incident#new"},
        "comment": "",
    }

    assert (commented.method, commented.path) == ("PATCH", "/base")
    assert "authorization" not in commented.headers
    assert commented.json()["comment"] == "Failing over"
    assert commented.json()["nested"]["trigger"] == "incident#commented"

    assert (closed.method, closed.path) == ("POST", "/base")
    assert closed.json() == sim.incident(incident.id).to_payload()
    assert [(d.target, d.trigger) for d in sim.webhook_deliveries] == [
        ("webhook_v2.pb", "incident#new"),
        ("webhook_v2.pb", "incident#commented"),
        ("webhook_v2.pb", "incident#closed"),
    ]


@pytest.mark.parametrize(
    ("events", "shared"),
    [
        # default alone: every trigger
        ([event("default")], ["incident#new", "incident#commented", "incident#closed"]),
        # default off: only the explicitly enabled one
        ([event("default", False), event("incident#closed")], ["incident#closed"]),
        # a disabled trigger wins over an enabled default
        (
            [event("default"), event("incident#commented", False)],
            ["incident#new", "incident#closed"],
        ),
        # no default: only listed triggers
        (
            [event("incident#new"), event("incident#commented")],
            ["incident#new", "incident#commented"],
        ),
        ([], []),
    ],
)
def test_trigger_enable_flags(
    api: httpx.Client,
    sim: BigPandaSimulator,
    receiver: tuple[Receiver, BackgroundServer],
    events: list[dict[str, Any]],
    shared: list[str],
) -> None:
    catcher, server = receiver
    workflow = config(server.url + "/hook", *events)
    assert (
        api.post(INTEGRATIONS, headers=AUTH, json=create_body("flags", workflow)).status_code == 201
    )
    incident = sim.open_incident(alerts=SAMPLE_ALERTS)
    sim.add_comment(incident.id, "c")
    sim.resolve_incident(incident.id)
    assert sim.wait_webhooks_idle(5)
    assert [d.trigger for d in sim.webhook_deliveries] == shared
    assert len(catcher.received) == len(shared)


def test_patch_changes_later_shares_and_delete_stops_them(
    api: httpx.Client, sim: BigPandaSimulator, receiver: tuple[Receiver, BackgroundServer]
) -> None:
    catcher, server = receiver
    first = config(server.url + "/v1", event("default"))
    api.post(INTEGRATIONS, headers=AUTH, json=create_body("moving", first))
    incident = sim.open_incident(alerts=SAMPLE_ALERTS)
    second = copy.deepcopy(first)
    second["config"]["base_url"] = server.url + "/v2"
    api.patch(f"{INTEGRATIONS}/webhook_v2.moving", headers=AUTH, json={"workflow_config": second})
    sim.add_comment(incident.id, "after patch")
    api.delete(f"{INTEGRATIONS}/webhook_v2.moving", headers=AUTH)
    sim.resolve_incident(incident.id)
    assert sim.wait_webhooks_idle(5)
    assert [r.path for r in catcher.received] == ["/v1", "/v2"]


def test_path_variables_are_url_encoded(
    api: httpx.Client, sim: BigPandaSimulator, receiver: tuple[Receiver, BackgroundServer]
) -> None:
    catcher, server = receiver
    workflow = config(server.url, event("default", path="/h/{{primaryAlert.tags.host}}"))
    api.post(INTEGRATIONS, headers=AUTH, json=create_body("enc", workflow))
    sim.open_incident(alerts=[{"status": "critical", "host": "a b/c"}])
    assert sim.wait_webhooks_idle(5)
    assert catcher.received[0].path == "/h/a b/c"  # decoded by the receiver
    assert sim.webhook_deliveries[0].url.endswith("/h/a%20b%2Fc")


def test_authorization_value_not_in_inspection(
    api: httpx.Client, sim: BigPandaSimulator, receiver: tuple[Receiver, BackgroundServer]
) -> None:
    catcher, server = receiver
    secret = "inbound-secret-0123456789"
    workflow = config(server.url, event("default", authorization=f"Bearer {secret}"))
    api.post(INTEGRATIONS, headers=AUTH, json=create_body("sec", workflow))
    sim.open_incident(alerts=SAMPLE_ALERTS)
    assert sim.wait_webhooks_idle(5)
    assert catcher.received[0].headers["authorization"] == f"Bearer {secret}"
    (recorded,) = sim.requests.matching("POST", INTEGRATIONS)
    stored_event = recorded.json()["workflow_config"]["events"][0]
    assert stored_event == {
        TRIGGER_FIELD: "default",
        "enabled": True,
        "authorization": "<redacted>",
    }
    for output in (
        api.get("/_sandbox/requests").text,
        api.get("/_sandbox/webhook-deliveries").text,
        repr(sim.webhook_deliveries),
        repr(sim.requests.entries),
    ):
        assert secret not in output
        assert DEFAULT_API_TOKEN not in output


def test_authorization_masked_in_answers_by_default(
    api: httpx.Client, sim: BigPandaSimulator
) -> None:
    """As BigPanda stores it encrypted: no answer shows an event's authorization; the
    stored value (what the simulator sends with its webhooks) is the written one."""
    written = "Bearer inbound-token-abc"
    workflow = config("https://relay.example.com/h", event("incident#new", authorization=written))
    answers = [
        api.post(INTEGRATIONS, headers=AUTH, json=create_body("masked", workflow)),
        api.get(INTEGRATIONS, headers=AUTH),
        api.get(f"{INTEGRATIONS}/webhook_v2.masked", headers=AUTH),
        api.patch(
            f"{INTEGRATIONS}/webhook_v2.masked", headers=AUTH, json={"workflow_config": workflow}
        ),
    ]
    for answer in answers:
        assert answer.status_code in (200, 201)
        (item,) = answer.json()
        (shown,) = item["workflow_config"]["events"]
        assert shown["authorization"] == MASKED
        assert written not in answer.text
    stored = sim.integration("webhook_v2.masked")
    assert stored is not None
    assert stored.workflow_config.events[0].authorization == written


def test_authorization_as_written_when_masking_is_off() -> None:
    sim = BigPandaSimulator(requests_per_second=None, mask_authorization=False)
    written = "Bearer inbound-token-abc"
    workflow = config("https://relay.example.com/h", event("incident#new", authorization=written))
    with running(sim) as server, httpx.Client(base_url=server.url, timeout=5) as http:
        http.post(INTEGRATIONS, headers=AUTH, json=create_body("plain", workflow))
        (item,) = http.get(f"{INTEGRATIONS}/webhook_v2.plain", headers=AUTH).json()
    assert item["workflow_config"] == workflow
