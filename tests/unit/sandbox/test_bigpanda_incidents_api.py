"""BigPanda Incidents API v2 of the simulator, over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from bigpanda_support import SAMPLE_ALERTS, receiving, running

from pagerbridge_devkit.sandbox.bigpanda import (
    DEFAULT_API_TOKEN,
    DEFAULT_API_USER,
    DEFAULT_ENVIRONMENT_ID,
    BigPandaSimulator,
)
from pagerbridge_devkit.sandbox.bigpanda.ratelimit import RateLimiter

ENV = DEFAULT_ENVIRONMENT_ID
AUTH = {"Authorization": f"Bearer {DEFAULT_API_TOKEN}"}


class ManualClock:
    """Time that moves only when the test says so (refills independent of machine load)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sim() -> BigPandaSimulator:
    return BigPandaSimulator(requests_per_second=None)


@pytest.fixture
def client(sim: BigPandaSimulator) -> Iterator[httpx.Client]:
    with running(sim) as server, httpx.Client(base_url=server.url, timeout=5) as http:
        yield http


def incident_url(incident_id: str, env: str = ENV) -> str:
    return f"/resources/v2.0/environments/{env}/incidents/{incident_id}"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": DEFAULT_API_TOKEN},
     {"Authorization": f"Token {DEFAULT_API_TOKEN}"}],
)  # fmt: skip
def test_bad_or_missing_token_is_401_with_error_body(
    sim: BigPandaSimulator, client: httpx.Client, headers: dict[str, str]
) -> None:
    incident = sim.open_incident(alerts=SAMPLE_ALERTS)
    for method, path, body in [
        ("POST", incident_url(incident.id) + "/resolve", {"comments": "x"}),
        ("POST", incident_url(incident.id) + "/comments", {"comment": "x"}),
        ("GET", incident_url(incident.id), None),
        ("GET", f"/resources/v2.0/incidents/{incident.id}/activities", None),
    ]:
        response = client.request(method, path, headers=headers, json=body)
        assert response.status_code == 401, path
        assert response.json()["status"] == 401
        assert response.json()["errors"]
    assert sim.incident(incident.id).active is True
    assert sim.api_comments() == []


def test_resolve_202_then_409(sim: BigPandaSimulator, client: httpx.Client) -> None:
    incident = sim.open_incident(alerts=SAMPLE_ALERTS)
    first = client.post(
        incident_url(incident.id) + "/resolve", headers=AUTH, json={"comments": "done in PD"}
    )
    assert first.status_code == 202
    state = sim.incident(incident.id)
    assert (state.status, state.active) == ("ok", False)
    assert [(w.text, w.user) for w in sim.api_resolves(incident.id)] == [
        ("done in PD", DEFAULT_API_USER)
    ]

    again = client.post(
        incident_url(incident.id) + "/resolve", headers=AUTH, json={"comments": "again"}
    )
    assert again.status_code == 409
    assert again.json() == {"status": 409, "errors": ["Incident is already resolved"]}
    assert len(sim.api_resolves(incident.id)) == 1


def test_comment_204_lands_on_incident_and_is_shared_back(
    sim: BigPandaSimulator, client: httpx.Client
) -> None:
    with receiving() as (receiver, target):
        sim.add_webhook_target(target.url + "/hook")
        incident = sim.open_incident(alerts=SAMPLE_ALERTS)
        response = client.post(
            incident_url(incident.id) + "/comments",
            headers=AUTH,
            json={"comment": "PD note: on it"},
        )
        assert response.status_code == 204
        assert response.content == b""
        assert sim.wait_webhooks_idle(5)
        comments = sim.incident(incident.id).comments
        assert [(c["comment"], c["created_by"]) for c in comments] == [
            ("PD note: on it", DEFAULT_API_USER)
        ]
        assert [w.text for w in sim.api_comments(incident.id)] == ["PD note: on it"]
        # the relay's own comment comes back through the webhook, as in BigPanda
        last = receiver.received[-1].json()
        assert last["comments"][0]["comment"] == "PD note: on it"
        assert last["comments"][0]["created_by"] == DEFAULT_API_USER
        assert [d.trigger for d in sim.webhook_deliveries] == ["incident#new", "incident#commented"]


def test_token_mapping_names_the_user() -> None:
    sim = BigPandaSimulator(api_tokens={"tok-a": "relay-a@example.com"}, requests_per_second=None)
    with running(sim) as server:
        incident = sim.open_incident(alerts=SAMPLE_ALERTS)
        response = httpx.post(
            server.url + incident_url(incident.id) + "/comments",
            headers={"Authorization": "Bearer tok-a"},
            json={"comment": "hi"},
        )
        assert response.status_code == 204
        assert sim.incident(incident.id).comments[0]["created_by"] == "relay-a@example.com"


def test_get_incident_and_activities(sim: BigPandaSimulator, client: httpx.Client) -> None:
    incident = sim.open_incident(alerts=SAMPLE_ALERTS)
    sim.add_comment(incident.id, "human note", by="alice@example.com")
    client.post(incident_url(incident.id) + "/resolve", headers=AUTH, json={"comments": "bye"})
    got = client.get(incident_url(incident.id), headers=AUTH)
    assert got.status_code == 200
    assert got.json() == sim.incident(incident.id).to_payload()
    assert got.json()["status"] == "ok"

    feed = client.get(f"/resources/v2.0/incidents/{incident.id}/activities", headers=AUTH)
    assert feed.status_code == 200
    entries = feed.json()["activities"]
    assert [(e["type"], e["created_by"]) for e in entries] == [
        ("new", "bigpanda"),
        ("comment", "alice@example.com"),
        ("resolve", DEFAULT_API_USER),
    ]
    assert entries[2]["comment"] == "bye"


def test_unknown_incident_or_environment_is_404(
    sim: BigPandaSimulator, client: httpx.Client
) -> None:
    incident = sim.open_incident(alerts=SAMPLE_ALERTS)
    cases = [
        ("POST", incident_url("f" * 24) + "/resolve", {"comments": "x"}),
        ("POST", incident_url("f" * 24) + "/comments", {"comment": "x"}),
        ("GET", incident_url("f" * 24), None),
        ("POST", incident_url(incident.id, env="0" * 24) + "/resolve", {"comments": "x"}),
        ("POST", incident_url(incident.id, env="0" * 24) + "/comments", {"comment": "x"}),
        ("GET", f"/resources/v2.0/incidents/{'f' * 24}/activities", None),
        ("GET", "/resources/v2.0/nothing-here", None),
    ]
    for method, path, body in cases:
        response = client.request(method, path, headers=AUTH, json=body)
        assert response.status_code == 404, path
        assert response.json()["status"] == 404
    assert sim.incident(incident.id).active is True


@pytest.mark.parametrize(
    ("suffix", "body"),
    [
        ("/resolve", {}),
        ("/resolve", {"comments": ""}),
        ("/resolve", {"comments": 5}),
        ("/comments", {"text": "wrong field"}),
        ("/comments", ["not", "an", "object"]),
        ("/comments", "not json"),
    ],
)
def test_validation_errors_are_400(
    sim: BigPandaSimulator, client: httpx.Client, suffix: str, body: object
) -> None:
    incident = sim.open_incident(alerts=SAMPLE_ALERTS)
    content = body if isinstance(body, str) else json.dumps(body)
    response = client.post(
        incident_url(incident.id) + suffix,
        headers={**AUTH, "Content-Type": "application/json"},
        content=content,
    )
    assert response.status_code == 400
    assert response.json()["status"] == 400
    assert all(isinstance(e, str) for e in response.json()["errors"])
    assert sim.incident(incident.id).active is True
    assert sim.incident(incident.id).comments == []


def test_rate_limit_per_endpoint_429(sim: BigPandaSimulator, client: httpx.Client) -> None:
    incidents = [sim.open_incident(alerts=SAMPLE_ALERTS) for _ in range(2)]
    clock = ManualClock()
    sim.limiter = sim.guard.limiter = RateLimiter(2, clock=clock)

    def comment(incident: Any) -> httpx.Response:
        return client.post(
            incident_url(incident.id) + "/comments", headers=AUTH, json={"comment": "c"}
        )

    # a burst: the bucket holds 2 and refills 2/s; different ids are one endpoint
    statuses = [comment(incidents[i % 2]).status_code for i in range(8)]
    assert statuses == [204, 204] + [429] * 6
    limited = comment(incidents[0])
    assert limited.status_code == 429
    assert limited.json()["status"] == 429
    assert limited.json()["errors"]
    assert "retry-after" not in limited.headers
    # another endpoint has its own bucket
    assert client.get(incident_url(incidents[0].id), headers=AUTH).status_code == 200
    # and the bucket refills at the rate
    clock.now += 0.5
    assert [comment(incidents[0]).status_code for _ in range(2)] == [204, 429]
    sim.set_rate_limit(None)
    assert all(
        client.get(incident_url(incidents[0].id), headers=AUTH).status_code == 200
        for _ in range(20)
    )


def test_rate_limit_default_is_5_per_second_per_endpoint() -> None:
    sim = BigPandaSimulator()
    clock = ManualClock()
    sim.limiter = sim.guard.limiter = RateLimiter(sim.limiter.rate, clock=clock)
    with running(sim) as server:
        first, second = (sim.open_incident(alerts=SAMPLE_ALERTS) for _ in range(2))

        def get(incident: Any) -> int:
            return httpx.get(server.url + incident_url(incident.id), headers=AUTH).status_code

        # A full bucket holds one second's worth: 5, then 429 while time stands still.
        assert [get(first) for _ in range(7)] == [200] * 5 + [429] * 2
        # The same endpoint whatever the id.
        assert get(second) == 429
        clock.now += 0.2  # one token back at 5/s
        assert [get(second), get(first)] == [200, 429]
        clock.now += 10  # never more than a second's worth
        assert [get(first) for _ in range(6)] == [200] * 5 + [429]


def test_injected_faults_apply_to_the_api(sim: BigPandaSimulator, client: httpx.Client) -> None:
    incident = sim.open_incident(alerts=SAMPLE_ALERTS)
    sim.faults.fail_next(
        1, 503, path_prefix="/resources/v2.0/", body={"status": 503, "errors": ["down"]}
    )
    first = client.post(
        incident_url(incident.id) + "/resolve", headers=AUTH, json={"comments": "x"}
    )
    assert first.status_code == 503
    assert sim.incident(incident.id).active is True
    sim.faults.drop_next(1, path_prefix="/resources/v2.0/")
    with pytest.raises(httpx.TransportError):
        client.post(incident_url(incident.id) + "/resolve", headers=AUTH, json={"comments": "x"})
    assert (
        client.post(
            incident_url(incident.id) + "/resolve", headers=AUTH, json={"comments": "x"}
        ).status_code
        == 202
    )
    assert [r.status for r in sim.requests.matching("POST", "/resources/")] == [503, None, 202]


def test_no_token_in_any_recorded_output(sim: BigPandaSimulator, client: httpx.Client) -> None:
    """The API key and the webhook target's credential appear in no log or inspection."""
    webhook_secret = "webhook-secret-value-1234567890"
    with receiving() as (receiver, target):
        sim.add_webhook_target(target.url, headers={"Authorization": f"Bearer {webhook_secret}"})
        incident = sim.open_incident(alerts=SAMPLE_ALERTS)
        client.post(incident_url(incident.id) + "/comments", headers=AUTH, json={"comment": "c"})
        client.get(incident_url(incident.id), headers={"Authorization": "Bearer wrong-token-xyz"})
        assert sim.wait_webhooks_idle(5)
        # the webhook did carry it (so the check below is meaningful)
        assert receiver.received[0].headers["authorization"] == f"Bearer {webhook_secret}"
    recorded = sim.requests.matching()
    assert recorded
    assert all(r.headers["authorization"] == "<redacted>" for r in recorded)
    outputs = [
        client.get("/_sandbox/requests").text,
        client.get("/_sandbox/webhook-deliveries").text,
        client.get("/_sandbox/webhook-targets").text,
        client.get("/_sandbox/api-writes").text,
        repr(sim.requests.entries),
        repr(sim.webhook_deliveries),
        repr(sim.targets.all()[0].to_dict()),
    ]
    for output in outputs:
        assert DEFAULT_API_TOKEN not in output
        assert "wrong-token-xyz" not in output
        assert webhook_secret not in output
