"""Property tests: whatever bytes or JSON arrive, the relay answers < 500 and keeps working."""

from __future__ import annotations

import json
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pagerbridge.relay import settings as settings_mod
from pagerbridge.relay.app import create_app
from pagerbridge.relay.signatures import sign
from pagerbridge_devkit.sandbox.server import BackgroundServer

from .relayproc import PD_WEBHOOK_SECRET, WEBHOOK_TOKEN, write_config

ACCEPTABLE = {202, 400, 413, 415, 422}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=30,
)
field_names = st.sampled_from(
    [
        "id",
        "status",
        "active",
        "alerts",
        "comments",
        "comment",
        "incident_tags",
        "environments",
        "updatedOn",
        "startedOn",
        "incident",
        "tags",
        "primary_property",
        "description",
    ]
)
incident_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(field_names | st.text(max_size=8), children, max_size=8)
    ),
    max_leaves=40,
)


@pytest.fixture(scope="module")
def relay_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp: Path = tmp_path_factory.mktemp("props")
    # PagerDuty unreachable: accepted events just wait in the outbox.
    config = write_config(
        tmp,
        pd_url="http://127.0.0.1:9",
        routing_key="a" * 32,
        extra={"keyOverrideTag": "pd_key"},
        webhook_secrets=[PD_WEBHOOK_SECRET],
    )
    app = create_app(str(config), settings_mod.load(str(config)))
    with BackgroundServer(app) as server:
        yield server.url


@pytest.fixture(scope="module")
def client(relay_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=relay_url,
        headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}", "Content-Type": "application/json"},
        timeout=10,
    ) as c:
        yield c


def _check(r: httpx.Response) -> None:
    assert r.status_code in ACCEPTABLE, (r.status_code, r.text)
    body = r.json()
    assert isinstance(body, dict)
    if r.status_code != 202:
        assert set(body) == {"error", "message"}


PROPS = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))


@PROPS
@given(body=st.binary(max_size=2048))
def test_arbitrary_bytes(client: httpx.Client, body: bytes) -> None:
    _check(client.post("/v1/bigpanda/webhook", content=body))


@PROPS
@given(body=json_values)
def test_arbitrary_json(client: httpx.Client, body: Any) -> None:
    _check(client.post("/v1/bigpanda/webhook", content=json.dumps(body)))


@PROPS
@given(
    body=st.dictionaries(field_names, incident_like, max_size=10),
    inc_id=st.one_of(st.text(min_size=1, max_size=40), st.integers()),
    wrapped=st.booleans(),
    headers=st.dictionaries(
        st.sampled_from(
            [
                "x-bp-config-pdfield",
                "x-bp-config-tag-host",
                "x-bp-config-tag-a.b",
                "x-bp-config-tag-",
                "x-bp-config-tag-pd_key",
            ]
        ),
        st.text(alphabet=string.ascii_letters + string.digits + "._-", max_size=40),
        max_size=3,
    ),
)
def test_incident_shaped_json(
    client: httpx.Client, body: dict[str, Any], inc_id: Any, wrapped: bool, headers: dict[str, str]
) -> None:
    body["id"] = inc_id
    payload = {"incident": body} if wrapped else body
    r = client.post("/v1/bigpanda/webhook", content=json.dumps(payload), headers=headers)
    _check(r)


@PROPS
@given(
    body=st.binary(max_size=512),
    sig=st.text(alphabet=string.ascii_letters + string.digits + "=,", max_size=80),
)
def test_pagerduty_endpoint_never_5xx(client: httpx.Client, body: bytes, sig: str) -> None:
    r = client.post(
        "/v1/pagerduty/webhook",
        content=body,
        headers={"X-PagerDuty-Signature": sig},
    )
    assert r.status_code == 401


pd_events = st.fixed_dictionaries(
    {
        "event": st.fixed_dictionaries(
            {
                "event_type": st.sampled_from(
                    [
                        "incident.resolved",
                        "incident.annotated",
                        "incident.acknowledged",
                        "incident.triggered",
                        "x",
                    ]
                ),
                "data": json_values,
            },
            optional={"id": json_values, "agent": json_values},
        )
    }
)


@PROPS
@given(
    body=st.one_of(
        st.binary(max_size=512),
        json_values.map(json.dumps).map(str.encode),
        pd_events.map(json.dumps).map(str.encode),
    ),
    webhook_id=st.text(alphabet=string.ascii_letters + string.digits, max_size=20),
)
def test_signed_pagerduty_bodies_never_5xx(client: httpx.Client, body: bytes, webhook_id: str):
    """Correctly signed but arbitrary content: parsed defensively, never a 5xx."""
    headers = {"X-PagerDuty-Signature": sign(PD_WEBHOOK_SECRET, body)}
    if webhook_id:
        headers["X-Webhook-Id"] = webhook_id
    r = client.post("/v1/pagerduty/webhook", content=body, headers=headers)
    assert r.status_code in {200, 400, 422}, (r.status_code, r.text)


def test_still_healthy_after_all_that(client: httpx.Client) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").json()["ready"] is True
