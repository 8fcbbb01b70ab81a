"""BigPanda's outbound (classic) webhook: shares, retries, order, and the admin routes."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from bigpanda_support import (
    SAMPLE_ALERTS,
    SAMPLE_COMMENTED_KEYS,
    SAMPLE_NEW_KEYS,
    SAMPLE_RESOLVED_KEYS,
    SAMPLE_TAGS,
    Receiver,
    receiving,
    running,
)

from pagerbridge_devkit.ports import free_port
from pagerbridge_devkit.sandbox.bigpanda import BigPandaSimulator
from pagerbridge_devkit.sandbox.server import BackgroundServer
from pagerbridge_devkit.waiting import wait_for


@pytest.fixture
def sim() -> Iterator[BigPandaSimulator]:
    simulator = BigPandaSimulator(webhook_backoff=0.02, webhook_max_attempts=5)
    with running(simulator):
        yield simulator


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, BackgroundServer]]:
    with receiving() as pair:
        yield pair


def test_every_change_is_shared_bare_with_custom_headers(
    sim: BigPandaSimulator, receiver: tuple[Receiver, BackgroundServer]
) -> None:
    catcher, server = receiver
    sim.add_webhook_target(
        server.url + "/v1/bigpanda/webhook",
        headers={"Authorization": "Bearer inbound", "x-bp-config-pdfield": "pd_routing_key"},
    )
    incident = sim.open_incident(alerts=SAMPLE_ALERTS, incident_tags=SAMPLE_TAGS)
    sim.add_comment(incident.id, "Failing over to replica", by="alice@example.com")
    sim.resolve_incident(incident.id)
    assert sim.wait_webhooks_idle(5)
    got = catcher.received
    assert [r.path for r in got] == ["/v1/bigpanda/webhook"] * 3
    assert all(r.method == "POST" for r in got)
    assert all(r.headers["content-type"] == "application/json" for r in got)
    assert all(r.headers["authorization"] == "Bearer inbound" for r in got)
    assert all(r.headers["x-bp-config-pdfield"] == "pd_routing_key" for r in got)
    new, commented, resolved = (r.json() for r in got)
    assert set(new) == SAMPLE_NEW_KEYS
    assert set(commented) == SAMPLE_COMMENTED_KEYS
    assert set(resolved) == SAMPLE_RESOLVED_KEYS
    assert new["id"] == commented["id"] == resolved["id"] == incident.id
    assert commented["comments"][0]["comment"] == "Failing over to replica"
    assert (resolved["status"], resolved["active"]) == ("ok", False)
    assert [(d.trigger, d.status, d.attempt) for d in sim.webhook_deliveries] == [
        ("incident#new", 200, 1),
        ("incident#commented", 200, 1),
        ("incident#closed", 200, 1),
    ]


def test_wrap_true_sends_incident_envelope(
    sim: BigPandaSimulator, receiver: tuple[Receiver, BackgroundServer]
) -> None:
    catcher, server = receiver
    sim.add_webhook_target(server.url + "/wrapped", wrap=True)
    sim.add_webhook_target(server.url + "/bare")
    incident = sim.open_incident(alerts=SAMPLE_ALERTS)
    assert sim.wait_webhooks_idle(5)
    by_path = {r.path: r.json() for r in catcher.received}
    assert by_path["/wrapped"] == {"incident": by_path["/bare"]}
    assert by_path["/bare"]["id"] == incident.id


@pytest.mark.parametrize("fault", ["500", "503", "429", "408", "drop", "slow"])
def test_retried_after_failure_then_delivered_once(
    receiver: tuple[Receiver, BackgroundServer], fault: str
) -> None:
    catcher, server = receiver
    sim = BigPandaSimulator(webhook_backoff=0.02, webhook_timeout=0.3)
    with running(sim):
        sim.add_webhook_target(server.url + "/hook")
        if fault == "drop":
            catcher.faults.drop_next(2)
        elif fault == "slow":
            catcher.faults.add_latency(1.0, count=2)
        else:
            catcher.faults.fail_next(2, int(fault))
        incident = sim.open_incident(alerts=SAMPLE_ALERTS)
        assert sim.wait_webhooks_idle(5)
        attempts = [(d.attempt, d.status, d.final) for d in sim.webhook_deliveries]
        failed = None if fault in ("drop", "slow") else int(fault)
        assert attempts == [(1, failed, False), (2, failed, False), (3, 200, True)]
        if failed is None:
            assert all(d.error for d in sim.webhook_deliveries[:2])
        delivered = [r for r in catcher.received if r.json()["id"] == incident.id]
        # a dropped request still reached the receiver: at-least-once, not exactly-once
        assert len(delivered) >= 1
        assert delivered[-1].json() == sim.incident(incident.id).to_payload()


def test_connection_refused_is_retried_then_given_up(sim: BigPandaSimulator) -> None:
    sim.add_webhook_target(f"http://127.0.0.1:{free_port()}/nobody-listens")
    sim.open_incident(alerts=SAMPLE_ALERTS)
    assert sim.wait_webhooks_idle(10)
    deliveries = sim.webhook_deliveries
    assert [d.attempt for d in deliveries] == [1, 2, 3, 4, 5]
    assert all(d.status is None and d.error for d in deliveries)
    assert deliveries[-1].final


def test_4xx_is_final_not_retried(
    sim: BigPandaSimulator, receiver: tuple[Receiver, BackgroundServer]
) -> None:
    catcher, server = receiver
    sim.add_webhook_target(server.url + "/hook")
    catcher.faults.fail_next(1, 400)
    sim.open_incident(alerts=SAMPLE_ALERTS)
    assert sim.wait_webhooks_idle(5)
    assert [(d.status, d.final) for d in sim.webhook_deliveries] == [(400, True)]


def test_order_per_incident_survives_failures(
    sim: BigPandaSimulator, receiver: tuple[Receiver, BackgroundServer]
) -> None:
    catcher, server = receiver
    sim.add_webhook_target(server.url + "/hook")
    incidents = [sim.open_incident(alerts=SAMPLE_ALERTS) for _ in range(3)]
    # fail a few requests in the middle of the stream
    catcher.faults.fail_next(3, 503)
    for n in range(4):
        for incident in incidents:
            sim.add_comment(incident.id, f"note {n}")
    for incident in incidents:
        sim.resolve_incident(incident.id)
    assert sim.wait_webhooks_idle(10)
    for incident in incidents:
        bodies = [r.json() for r in catcher.received if r.json()["id"] == incident.id]
        # each delivery is a snapshot; successive ones never go backwards
        assert [len(b.get("comments", [])) for b in bodies] == [0, 1, 2, 3, 4, 4]
        assert [b["active"] for b in bodies] == [True] * 5 + [False]
    assert sum(d.status == 503 for d in sim.webhook_deliveries) == 3


def test_a_retrying_incident_does_not_block_others(
    receiver: tuple[Receiver, BackgroundServer],
) -> None:
    catcher, server = receiver
    sim = BigPandaSimulator(webhook_backoff=2.0, webhook_max_attempts=3)
    with running(sim):
        sim.add_webhook_target(server.url + "/hook")
        blocked = sim.open_incident(alerts=SAMPLE_ALERTS)
        assert wait_for(lambda: len(catcher.received) == 1)
        catcher.faults.fail_next(1, 503)
        sim.add_comment(blocked.id, "will be retried after a backoff of 1-2 s")
        assert wait_for(lambda: any(d.status == 503 for d in sim.webhook_deliveries))
        other = sim.open_incident(alerts=SAMPLE_ALERTS)
        assert sim.wait_webhooks_idle(10)
        order = [(d.incident_id, d.trigger, d.status) for d in sim.webhook_deliveries]
        assert order == [
            (blocked.id, "incident#new", 200),
            (blocked.id, "incident#commented", 503),
            (other.id, "incident#new", 200),  # did not wait for the blocked lane
            (blocked.id, "incident#commented", 200),
        ]


def test_admin_routes_drive_the_simulator(
    sim: BigPandaSimulator, receiver: tuple[Receiver, BackgroundServer]
) -> None:
    catcher, target = receiver
    server_url = _server_url(sim)
    with httpx.Client(base_url=server_url, timeout=5) as http:
        added = http.post(
            "/_sandbox/webhook-targets",
            json={"url": target.url + "/hook", "headers": {"x-bp-config-tag-team": "group"}},
        )
        assert added.status_code == 201
        opened = http.post(
            "/_sandbox/incidents", json={"alerts": SAMPLE_ALERTS, "incident_tags": SAMPLE_TAGS}
        )
        assert opened.status_code == 201
        incident_id = opened.json()["id"]
        assert (
            http.patch(f"/_sandbox/incidents/{incident_id}", json={"status": "warning"}).json()[
                "status"
            ]
            == "warning"
        )
        comment = http.post(
            f"/_sandbox/incidents/{incident_id}/comments", json={"text": "hello", "by": "bob@x.io"}
        )
        assert comment.status_code == 201
        assert comment.json()["created_by"] == "bob@x.io"
        assert http.post(f"/_sandbox/incidents/{incident_id}/resolve").status_code == 200
        assert http.post(f"/_sandbox/incidents/{incident_id}/resolve").status_code == 409
        assert http.post("/_sandbox/incidents/nope/resolve").status_code == 404
        assert http.post("/_sandbox/incidents", json={"alerts": []}).status_code == 400
        listed = http.get("/_sandbox/incidents").json()
        assert [i["id"] for i in listed] == [incident_id]
        assert listed[0]["status"] == "ok"
        assert sim.wait_webhooks_idle(5)
        deliveries = http.get("/_sandbox/webhook-deliveries").json()
        assert [d["trigger"] for d in deliveries] == [
            "incident#new",
            "incident#updated",
            "incident#commented",
            "incident#closed",
        ]
        assert all(r.headers["x-bp-config-tag-team"] == "group" for r in catcher.received)
        assert http.post("/_sandbox/rate-limit", json={"requests_per_second": 1}).status_code == 200
        assert sim.limiter.rate == 1


def _server_url(sim: BigPandaSimulator) -> str:
    """The running fixture's server is not returned; serve the same sim once more."""
    server = BackgroundServer(sim.app).start()
    _extra_servers.append(server)
    return server.url


_extra_servers: list[BackgroundServer] = []


@pytest.fixture(autouse=True)
def _stop_extra_servers() -> Iterator[None]:
    yield
    while _extra_servers:
        _extra_servers.pop().stop()


def test_webhooks_dropped_on_demand_are_never_sent(
    sim: BigPandaSimulator, receiver: tuple[Receiver, BackgroundServer]
) -> None:
    """Issue 27: a test can lose BigPanda's webhooks for good (here the resolve's)."""
    catcher, server = receiver
    sim.add_webhook_target(server.url + "/v1/bigpanda/webhook")
    incident = sim.open_incident(alerts=SAMPLE_ALERTS)
    assert sim.wait_webhooks_idle(5)
    sim.drop_webhooks()
    sim.resolve_incident(incident.id)
    sim.drop_webhooks(False)
    sim.add_comment(incident.id, "after", by="alice@example.com")
    assert sim.wait_webhooks_idle(5)
    assert [d.trigger for d in sim.webhook_deliveries] == ["incident#new", "incident#commented"]
    assert len(catcher.received) == 2
    assert sim.dropped_webhooks == 1
    assert not sim.incident(incident.id).active
