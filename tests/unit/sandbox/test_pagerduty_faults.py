"""Fault injection on the PagerDuty simulator, and secrets kept out of every output."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

import httpx
import pytest
from pagerduty_support import FROM, Running, receiving, running

from pagerbridge_devkit.sandbox.pagerduty import (
    DEFAULT_API_TOKEN,
    DEFAULT_ROUTING_KEY,
    PagerDutySimulator,
)
from pagerbridge_devkit.waiting import wait_for


@pytest.fixture
def pd() -> Iterator[Running]:
    with running() as r:
        yield r


def test_drop_closes_the_connection_without_any_answer(pd: Running) -> None:
    pd.sim.faults.drop_next(1, path_prefix="/v2/enqueue")
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)) as caught:
        pd.trigger("dropped")
    assert "without sending" in str(caught.value) or isinstance(caught.value, httpx.ReadError)
    assert pd.sim.incident_by_key("dropped") is None  # never reached the Events API
    # recorded once the server has seen the disconnect (just after the client)
    (recorded,) = wait_for(lambda: pd.sim.requests.matching("POST", "/v2/enqueue"))
    assert recorded.status is None
    # the next request (a new connection) is served normally
    assert pd.trigger("after").status_code == 202


def test_drop_over_the_admin_route_and_with_keep_alive(pd: Running) -> None:
    rule = {"kind": "drop", "path_prefix": "/incidents", "remaining": 1}
    assert pd.client.post("/_sandbox/faults", json=rule).status_code == 201
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        pd.rest("GET", "/incidents")
    assert pd.rest("GET", "/incidents").status_code == 200


def test_fail_next_and_latency(pd: Running) -> None:
    pd.sim.faults.fail_next(2, status=503, path_prefix="/v2/enqueue")
    assert [pd.trigger("k").status_code for _ in range(3)] == [503, 503, 202]
    pd.sim.faults.add_latency(0.3, count=1, path_prefix="/incidents")
    started = time.monotonic()
    assert pd.rest("GET", "/incidents").status_code == 200
    assert time.monotonic() - started >= 0.3
    assert pd.sim.faults.rules == []


def test_secrets_stay_out_of_logs_inspection_and_reprs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sim = PagerDutySimulator(webhook_retry_delays=(0.01,) * 4)
    with running(sim) as pd, receiving() as receiver:
        receiver.statuses = [500, 404]
        created = pd.rest(
            "POST",
            "/webhook_subscriptions",
            json={
                "webhook_subscription": {
                    "type": "webhook_subscription",
                    "delivery_method": {
                        "type": "http_delivery_method",
                        "url": receiver.url,
                        "custom_headers": [{"name": "X-Token", "value": "header-s3cret"}],
                    },
                    "events": ["incident.triggered"],
                    "filter": {"type": "account_reference"},
                }
            },
        ).json()["webhook_subscription"]
        secret = created["delivery_method"]["secret"]
        pd.trigger("k")
        incident = pd.sim.incident_by_key("k")
        assert incident is not None
        pd.rest(
            "POST", f"/incidents/{incident.id}/notes", headers=FROM, json={"note": {"content": "x"}}
        )
        pd.client.get("/incidents", headers={"Authorization": "Token token=wrong-token"})
        assert pd.sim.wait_webhooks_idle(5)
        outputs = [
            caplog.text,
            pd.client.get("/_sandbox/incidents").text,
            pd.client.get("/_sandbox/webhook-deliveries").text,
            pd.rest("GET", "/webhook_subscriptions").text,
            repr(pd.sim.webhook_deliveries),
            repr(pd.sim._webhooks.list()),
            json.dumps([dict(r.headers) for r in pd.sim.requests.entries]),
            pd.client.get("/_sandbox/requests").text,
        ]
    assert "given up" in caplog.text or "dropped" in caplog.text  # the 404 was logged
    assert receiver.received[0].headers["x-token"] == "header-s3cret"  # delivered, though
    for output in outputs:
        assert secret not in output
        assert "header-s3cret" not in output
        assert DEFAULT_API_TOKEN not in output
        assert "wrong-token" not in output
        assert DEFAULT_ROUTING_KEY not in output


def test_request_log_over_http_and_unknown_routes(pd: Running) -> None:
    pd.trigger("k")
    pd.client.get("/nowhere")
    logged = pd.client.get("/_sandbox/requests").json()
    assert [(e["method"], e["path"], e["status"]) for e in logged] == [
        ("POST", "/v2/enqueue", 202),
        ("GET", "/nowhere", 404),
    ]
    assert json.loads(logged[0]["body"])["routing_key"] == "<redacted>"
    assert (
        pd.sim.requests.entries[0].json()["routing_key"] == DEFAULT_ROUTING_KEY
    )  # Python: as sent
    assert pd.client.get("/nowhere").json() == {"error": {"message": "Not Found", "code": 2100}}
    assert pd.client.delete("/_sandbox/requests").status_code == 204
    assert pd.client.get("/_sandbox/requests").json() == []
