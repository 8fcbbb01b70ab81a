"""Property tests: whatever bytes or JSON arrive, the relay answers < 500 and keeps working.

Invariant (both endpoints, authenticated senders included): no 5xx for any input; 503 only
when the store cannot commit (never here). Text includes lone surrogates and control
characters, ids included; nesting goes past Python's recursion limit.

``PAGERBRIDGE_PROPERTY_EXAMPLES`` sets the examples per test (CI default below, a few
thousand in all); ``tests/bench/relay_fuzz.py`` runs the same tests much longer.
"""

from __future__ import annotations

import json
import os
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pagerbridge.relay.app import create_app
from pagerbridge.relay.config import settings as settings_mod
from pagerbridge.relay.inbound.signatures import sign
from pagerbridge_devkit.ports import free_port
from pagerbridge_devkit.sandbox.server import BackgroundServer

from .relayproc import PD_WEBHOOK_SECRET, WEBHOOK_TOKEN, write_config

ACCEPTABLE = {202, 400, 413, 415, 422}
EXAMPLES = int(os.environ.get("PAGERBRIDGE_PROPERTY_EXAMPLES", "300"))

# Any code point: lone surrogates (JSON can escape them, UTF-8 cannot carry them), NUL,
# control characters, U+FFFD.
hostile_text = st.text(st.characters(exclude_categories=()), max_size=40)
hostile_id = st.one_of(
    hostile_text,
    st.sampled_from(["\x00", "a\x00b", "\ud800", "x\udfffy", "\x7f", "\u0085", "a/b?c#d", " "]),
    st.text(min_size=250, max_size=300),
)


def nested(depth: int, leaf: Any, kind: str) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value] if kind == "list" else {"k": value}
    return value


deep_values = st.builds(
    nested,
    st.integers(min_value=0, max_value=1200),
    st.none() | hostile_text,
    st.sampled_from(["list", "dict"]),
)

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
def relay_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The public and the internal URL of one relay."""
    tmp: Path = tmp_path_factory.mktemp("props")
    # PagerDuty unreachable: accepted events just wait in the outbox.
    config = write_config(
        tmp,
        pd_url="http://127.0.0.1:9",
        routing_key="a" * 32,
        pd_api_token="pd-api-token-for-properties",
        bp_url="http://127.0.0.1:9",
        bp_api_token="bp-api-token-for-properties",
        bp_environment="env1",
        extra={"keyOverrideTag": "pd_key", "sync": {"acknowledge": True}},
        webhook_secrets=[PD_WEBHOOK_SECRET],
    )
    internal = free_port()
    app = create_app(str(config), settings_mod.load(str(config)), internal_port=internal)
    with BackgroundServer(app, also_port=internal) as server:
        yield server.url, f"http://127.0.0.1:{internal}"


@pytest.fixture(scope="module")
def relay_url(relay_urls: tuple[str, str]) -> str:
    return relay_urls[0]


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


PROPS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
FEWER = settings(PROPS, max_examples=max(20, EXAMPLES // 3))


@FEWER
@given(body=st.binary(max_size=2048))
def test_arbitrary_bytes(client: httpx.Client, body: bytes) -> None:
    _check(client.post("/v1/bigpanda/webhook", content=body))


@FEWER
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


@FEWER
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


@PROPS
@given(
    inc_id=hostile_id,
    status=st.sampled_from(["critical", "warning", "ok", None]),
    comment_text=hostile_text,
    comment_id=st.none() | hostile_text,
    tag=hostile_text,
    deep=deep_values,
    wrapped=st.booleans(),
)
def test_hostile_text_ids_and_nesting_never_5xx(
    client: httpx.Client,
    inc_id: str,
    status: str | None,
    comment_text: str,
    comment_id: str | None,
    tag: str,
    deep: Any,
    wrapped: bool,
) -> None:
    """Lone surrogates, NUL and control characters in the incident id, comments and tags,
    and an alert field nested up to 1200 deep: a 202 or a clear 4xx, never a 5xx. An id
    that cannot be a PagerDuty dedup_key is refused with 422; any other text is accepted."""
    comment: dict[str, Any] = {"comment": comment_text, "created_by": tag}
    if comment_id is not None:
        comment["id"] = comment_id
    body: dict[str, Any] = {
        "id": inc_id,
        "status": status,
        "alerts": [{"status": status, "host": tag, "primary_property": "host", "deep": deep}],
        "comments": [comment],
        "incident_tags": [{"tag_id": tag, "tag_value": tag}],
    }
    raw = json.dumps({"incident": body} if wrapped else body)  # ensure_ascii: \\udXXX escapes
    r = client.post("/v1/bigpanda/webhook", content=raw)
    _check(r)
    if r.status_code == 202:
        assert r.json()["incident_id"] == inc_id.strip()


pd_hostile_events = st.fixed_dictionaries(
    {
        "event": st.fixed_dictionaries(
            {
                "id": st.none() | hostile_text,
                "event_type": st.sampled_from(
                    ["incident.resolved", "incident.annotated", "incident.acknowledged"]
                ),
                "agent": st.fixed_dictionaries({"summary": hostile_text}),
                "data": st.fixed_dictionaries(
                    {
                        "id": hostile_id | st.just("Q1A2B3C4D5"),
                        "incident_key": st.none() | hostile_id | st.just("inc-1"),
                        "content": hostile_text,
                        "incident": st.fixed_dictionaries({"id": hostile_id | st.just("Q9Z8Y7X6")}),
                        "deep": deep_values,
                    }
                ),
            }
        )
    }
)


@PROPS
@given(event=pd_hostile_events)
def test_signed_hostile_pagerduty_webhooks_never_5xx(
    client: httpx.Client, event: dict[str, Any]
) -> None:
    """A correctly signed PagerDuty webhook whose ids and text carry NUL, control
    characters, lone surrogates or deep nesting: 200 or a clear 4xx, never a 5xx."""
    body = json.dumps(event).encode()
    headers = {"X-PagerDuty-Signature": sign(PD_WEBHOOK_SECRET, body)}
    r = client.post("/v1/pagerduty/webhook", content=body, headers=headers)
    assert r.status_code in {200, 400, 422}, (r.status_code, r.text)
    assert isinstance(r.json(), dict)


def test_still_healthy_after_all_that(relay_urls: tuple[str, str]) -> None:
    internal = relay_urls[1]
    assert httpx.get(internal + "/healthz").status_code == 200
    assert httpx.get(internal + "/readyz").json()["ready"] is True
