"""Webhooks v3 out of the simulator, received by a real HTTP endpoint.

Signatures are checked here with :mod:`hmac` directly, not with the simulator's code.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pagerduty_support import FROM, REST_HEADERS, Receiver, Running, receiving, running

from pagerbridge_devkit.sandbox.pagerduty import DEFAULT_ROUTING_KEY, PagerDutySimulator

OTHER_KEY = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def pd() -> Iterator[Running]:
    with running() as r:
        yield r


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as r:
        yield r


def _verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    signatures = [s.strip() for s in headers["x-pagerduty-signature"].split(",")]
    return any(hmac.compare_digest(s, f"v1={expected}") for s in signatures)


def _events(receiver: Receiver) -> list[dict[str, Any]]:
    return [json.loads(r.body)["event"] for r in receiver.received]


def test_full_lifecycle_emits_signed_v3_webhooks(pd: Running, receiver: Receiver) -> None:
    sub_id, secret = pd.sim.create_subscription(receiver.url)
    pd.trigger("bp-1", summary="CPU high")
    incident = pd.sim.incident_by_key("bp-1")
    assert incident is not None
    pd.sim.acknowledge(incident.id, by_email="alice@example.com")
    pd.sim.add_note(incident.id, "looking", by_email="alice@example.com")
    pd.sim.resolve(incident.id, by_email="bob@example.com")
    assert pd.sim.wait_webhooks_idle(5)
    events = _events(receiver)
    assert [e["event_type"] for e in events] == [
        "incident.triggered",
        "incident.acknowledged",
        "incident.annotated",
        "incident.resolved",
    ]
    for received in receiver.received:
        assert _verify(secret, received.headers, received.body)
        assert received.headers["content-type"] == "application/json"
        assert received.headers["x-webhook-subscription"] == sub_id
    assert len({r.headers["x-webhook-id"] for r in receiver.received}) == 4
    triggered, acknowledged, annotated, resolved = events
    assert triggered["resource_type"] == "incident"
    assert triggered["agent"]["type"] == "integration_reference"
    assert triggered["data"]["type"] == "incident"
    assert triggered["data"]["status"] == "triggered"  # as it was then, not as it is now
    assert triggered["data"]["incident_key"] == "bp-1"
    assert triggered["data"]["title"] == "CPU high"
    assert triggered["data"]["service"]["id"] == "PSANDBX"
    assert acknowledged["agent"]["type"] == "user_reference"
    assert acknowledged["agent"]["summary"] == "alice"
    assert annotated["data"] == {
        "incident": {
            "id": incident.id,
            "type": "incident_reference",
            "summary": "CPU high",
            "self": f"https://api.pagerduty.com/incidents/{incident.id}",
            "html_url": f"https://sandbox.pagerduty.com/incidents/{incident.id}",
        },
        "id": incident.notes[0].id,
        "content": "looking",
        "trimmed": False,
        "type": "incident_note",
    }
    assert resolved["data"]["status"] == "resolved"
    assert resolved["agent"]["summary"] == "bob"
    assert all(e["occurred_at"].endswith("Z") for e in events)


def test_tampered_body_fails_independent_verification(pd: Running, receiver: Receiver) -> None:
    _, secret = pd.sim.create_subscription(receiver.url)
    pd.trigger("k")
    assert pd.sim.wait_webhooks_idle(5)
    received = receiver.received[0]
    assert _verify(secret, received.headers, received.body)
    assert not _verify(secret, received.headers, received.body.replace(b"k", b"K"))
    assert not _verify("another-secret", received.headers, received.body)


def test_events_api_changes_carry_the_integration_agent(pd: Running, receiver: Receiver) -> None:
    pd.sim.create_subscription(receiver.url)
    pd.trigger("k")
    pd.enqueue(routing_key=DEFAULT_ROUTING_KEY, event_action="acknowledge", dedup_key="k")
    pd.enqueue(routing_key=DEFAULT_ROUTING_KEY, event_action="acknowledge", dedup_key="k")
    pd.trigger("k")  # no change: no webhook
    pd.enqueue(routing_key=DEFAULT_ROUTING_KEY, event_action="resolve", dedup_key="k")
    assert pd.sim.wait_webhooks_idle(5)
    events = _events(receiver)
    assert [e["event_type"] for e in events] == [
        "incident.triggered",
        "incident.acknowledged",
        "incident.resolved",
    ]
    assert {e["agent"]["type"] for e in events} == {"integration_reference"}
    assert DEFAULT_ROUTING_KEY not in str(events)  # the key is a secret


def test_rest_note_and_reopen_emit_with_the_from_user(pd: Running, receiver: Receiver) -> None:
    pd.sim.create_subscription(receiver.url)
    pd.trigger("k")
    incident = pd.sim.incident_by_key("k")
    assert incident is not None
    pd.rest(
        "POST", f"/incidents/{incident.id}/notes", headers=FROM, json={"note": {"content": "n"}}
    )
    for status in ("resolved", "acknowledged"):
        pd.rest(
            "PUT",
            f"/incidents/{incident.id}",
            headers=FROM,
            json={"incident": {"type": "incident_reference", "status": status}},
        )
    assert pd.sim.wait_webhooks_idle(5)
    events = _events(receiver)
    assert [e["event_type"] for e in events] == [
        "incident.triggered",
        "incident.annotated",
        "incident.resolved",
        "incident.reopened",
        "incident.acknowledged",
    ]
    assert {e["agent"]["summary"] for e in events[1:]} == {"responder"}
    assert events[3]["data"]["status"] == "acknowledged"


def test_subscription_filters_by_service_and_event_type(pd: Running, receiver: Receiver) -> None:
    pd.sim.add_service("POTHER", OTHER_KEY)
    pd.sim.create_subscription(receiver.url, service_id="POTHER", events=["incident.resolved"])
    pd.trigger("ours")
    pd.trigger("theirs", routing_key=OTHER_KEY)
    for key, routing_key in (("ours", DEFAULT_ROUTING_KEY), ("theirs", OTHER_KEY)):
        pd.enqueue(routing_key=routing_key, event_action="resolve", dedup_key=key)
    assert pd.sim.wait_webhooks_idle(5)
    events = _events(receiver)
    assert [(e["event_type"], e["data"]["incident_key"]) for e in events] == [
        ("incident.resolved", "theirs")
    ]


def test_subscription_created_over_rest_delivers_custom_headers(
    pd: Running, receiver: Receiver
) -> None:
    created = pd.rest(
        "POST",
        "/webhook_subscriptions",
        json={
            "webhook_subscription": {
                "type": "webhook_subscription",
                "delivery_method": {
                    "type": "http_delivery_method",
                    "url": receiver.url,
                    "custom_headers": [{"name": "X-Relay-Token", "value": "t0ken"}],
                },
                "events": ["incident.triggered"],
                "filter": {"type": "account_reference"},
            }
        },
    ).json()["webhook_subscription"]
    pd.trigger("k")
    assert pd.sim.wait_webhooks_idle(5)
    (received,) = receiver.received
    assert received.headers["x-relay-token"] == "t0ken"
    assert _verify(created["delivery_method"]["secret"], received.headers, received.body)
    shown = pd.rest("GET", f"/webhook_subscriptions/{created['id']}").json()
    assert "t0ken" not in json.dumps(shown)


def test_retries_5xx_and_429_with_the_same_webhook_id(pd: Running, receiver: Receiver) -> None:
    receiver.statuses = [500, 429, 503]
    pd.sim.create_subscription(receiver.url)
    pd.trigger("k")
    assert pd.sim.wait_webhooks_idle(5)
    assert [r.headers["x-webhook-id"] for r in receiver.received].count(
        receiver.received[0].headers["x-webhook-id"]
    ) == 4
    attempts = pd.sim.webhook_deliveries
    assert [(a.attempt, a.status) for a in attempts] == [(1, 500), (2, 429), (3, 503), (4, 202)]
    assert attempts[-1].delivered


def test_order_is_kept_while_retrying(pd: Running, receiver: Receiver) -> None:
    receiver.statuses = [500, 500]
    pd.sim.create_subscription(receiver.url)
    pd.trigger("k")
    incident = pd.sim.incident_by_key("k")
    assert incident is not None
    pd.sim.add_note(incident.id, "one")
    pd.sim.resolve(incident.id)
    assert pd.sim.wait_webhooks_idle(5)
    delivered = [
        json.loads(r.body)["event"]["event_type"]
        for r, status in zip(receiver.received, [500, 500, 202, 202, 202], strict=True)
        if status == 202
    ]
    assert delivered == ["incident.triggered", "incident.annotated", "incident.resolved"]


def test_gives_up_after_five_attempts_and_drops_on_4xx(pd: Running, receiver: Receiver) -> None:
    receiver.statuses = [500] * 5 + [410]
    pd.sim.create_subscription(receiver.url, events=["incident.triggered"])
    pd.trigger("a")
    pd.trigger("b")
    assert pd.sim.wait_webhooks_idle(5)
    statuses = [(a.event_type, a.attempt, a.status) for a in pd.sim.webhook_deliveries]
    assert statuses == [("incident.triggered", n, 500) for n in range(1, 6)] + [
        ("incident.triggered", 1, 410)
    ]


def test_unreachable_endpoint_is_retried_then_given_up() -> None:
    from pagerbridge_devkit.ports import free_port

    sim = PagerDutySimulator(webhook_retry_delays=(0.01, 0.01, 0.01, 0.01), webhook_timeout=1)
    with running(sim) as pd:
        pd.sim.create_subscription(f"http://127.0.0.1:{free_port()}/nobody")
        pd.trigger("k")
        assert pd.sim.wait_webhooks_idle(5)
        attempts = pd.sim.webhook_deliveries
        assert len(attempts) == 5
        assert all(a.status is None and a.error == "ConnectError" for a in attempts)


def test_timeout_counts_as_a_failure_and_is_retried() -> None:
    sim = PagerDutySimulator(webhook_retry_delays=(0.01,) * 4, webhook_timeout=0.3)
    with running(sim) as pd, running() as slow:
        # the slow receiver is another simulator with injected latency on its /v2/enqueue
        slow.sim.faults.add_latency(1.0, count=1, path_prefix="/v2/enqueue")
        pd.sim.create_subscription(f"{slow.url}/v2/enqueue", events=["incident.triggered"])
        pd.trigger("k")
        assert pd.sim.wait_webhooks_idle(5)
        first, second = pd.sim.webhook_deliveries[:2]
        assert (first.status, first.error) == (None, "ReadTimeout")
        assert second.attempt == 2
        assert second.status == 400


def test_human_actions_over_the_admin_routes(pd: Running, receiver: Receiver) -> None:
    pd.sim.create_subscription(receiver.url)
    pd.trigger("k")
    incident = pd.sim.incident_by_key("k")
    assert incident is not None
    base = f"/_sandbox/incidents/{incident.id}"
    assert pd.client.post(f"{base}/acknowledge", json={"by_email": "a@example.com"}).is_success
    noted = pd.client.post(f"{base}/notes", json={"content": "hi", "by_email": "a@example.com"})
    assert noted.json()["notes"][0]["content"] == "hi"
    assert pd.client.post(f"{base}/resolve").json()["status"] == "resolved"
    assert pd.client.post("/_sandbox/incidents/QNOPE/resolve").status_code == 404
    assert pd.client.post(f"{base}/notes", json={}).status_code == 400
    listed = pd.client.get("/_sandbox/incidents").json()
    assert [i["status"] for i in listed] == ["resolved"]
    assert DEFAULT_ROUTING_KEY not in json.dumps(listed)
    assert pd.sim.wait_webhooks_idle(5)
    assert [e["event_type"] for e in _events(receiver)] == [
        "incident.triggered",
        "incident.acknowledged",
        "incident.annotated",
        "incident.resolved",
    ]
    deliveries = pd.client.get("/_sandbox/webhook-deliveries").json()
    assert len(deliveries) == 4
    assert all(d["status"] == 202 for d in deliveries)


def test_concurrent_http_events_and_python_actions_stay_consistent(receiver: Receiver) -> None:
    """Events over HTTP (server thread) and human actions (test threads) at the same time."""
    from concurrent.futures import ThreadPoolExecutor

    sim = PagerDutySimulator(events_per_minute=0)
    with running(sim) as pd:
        pd.sim.create_subscription(receiver.url, events=["incident.triggered", "incident.resolved"])

        def life(n: int) -> None:
            with httpx.Client(base_url=pd.url) as client:
                for _ in range(3):  # repeated triggers: still one incident
                    event = {
                        "routing_key": DEFAULT_ROUTING_KEY,
                        "event_action": "trigger",
                        "dedup_key": f"c{n}",
                        "payload": {"summary": f"c{n}", "source": "h", "severity": "error"},
                    }
                    assert client.post("/v2/enqueue", json=event).status_code == 202
            incident = pd.sim.incident_by_key(f"c{n}")
            assert incident is not None
            pd.sim.resolve(incident.id)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(life, range(24)))
        assert pd.sim.wait_webhooks_idle(10)
        incidents = pd.sim.incidents()
        assert sorted(i.incident_key for i in incidents) == sorted(f"c{n}" for n in range(24))
        assert {i.status for i in incidents} == {"resolved"}
        assert [len(i.events) for i in incidents] == [3] * 24
        seen: dict[str, list[str]] = {}
        for event in _events(receiver):
            seen.setdefault(event["data"]["incident_key"], []).append(event["event_type"])
        assert all(v == ["incident.triggered", "incident.resolved"] for v in seen.values())
        assert len(seen) == 24


def test_subscription_filters_by_team_account_and_active(pd: Running, receiver: Receiver) -> None:
    """Issue 27: team and account filters, and an inactive subscription gets nothing."""
    pd.sim.add_service("POTHER", OTHER_KEY, team_id="PTEAM01")
    team_sub, _ = pd.sim.create_subscription(receiver.url, team_id="PTEAM01")
    pd.trigger("ours")
    pd.trigger("theirs", routing_key=OTHER_KEY)
    assert pd.sim.wait_webhooks_idle(5)
    assert [e["data"]["incident_key"] for e in _events(receiver)] == ["theirs"]
    # Set inactive over REST (as a person or PagerDuty would): nothing more arrives.
    answer = pd.client.put(
        f"/webhook_subscriptions/{team_sub}",
        json={"webhook_subscription": {"active": False}},
        headers=REST_HEADERS,
    )
    assert answer.status_code == 200
    assert answer.json()["webhook_subscription"]["active"] is False
    pd.enqueue(routing_key=OTHER_KEY, event_action="resolve", dedup_key="theirs")
    assert pd.sim.wait_webhooks_idle(5)
    assert len(_events(receiver)) == 1
    pd.sim.create_subscription(receiver.url)  # the account: every service
    pd.enqueue(routing_key=DEFAULT_ROUTING_KEY, event_action="resolve", dedup_key="ours")
    assert pd.sim.wait_webhooks_idle(5)
    assert [e["data"]["incident_key"] for e in _events(receiver)] == ["theirs", "ours"]


def test_webhooks_dropped_on_demand_are_never_delivered(pd: Running, receiver: Receiver) -> None:
    pd.sim.create_subscription(receiver.url, events=["incident.resolved"])
    pd.trigger("lost")
    incident = pd.sim.incident_by_key("lost")
    assert incident is not None
    pd.sim.drop_webhooks()
    pd.sim.resolve(incident.id)
    pd.sim.drop_webhooks(False)
    assert pd.sim.wait_webhooks_idle(5)
    assert _events(receiver) == []
    assert pd.sim.dropped_webhooks == ["incident.resolved"]
