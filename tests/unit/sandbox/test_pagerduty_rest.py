"""REST API v2 subset over real HTTP: auth, ``From``, incidents, notes, subscriptions, limits."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pagerduty_support import FROM, REST_HEADERS, Running, running

from pagerbridge_devkit.sandbox.pagerduty import PagerDutySimulator

OTHER_KEY = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def pd() -> Iterator[Running]:
    with running() as r:
        yield r


@pytest.fixture(scope="module")
def shared_pd() -> Iterator[Running]:
    """One simulator for the many read-only auth cases (starting one each is slow)."""
    with running() as r:
        yield r


def _incident_id(pd: Running, key: str = "k") -> str:
    pd.trigger(key)
    incident = pd.sim.incident_by_key(key)
    assert incident is not None
    return incident.id


@pytest.mark.parametrize(
    "authorization",
    [None, "Token token=wrong", "Bearer sandbox-pd-api-token-0000000001", "Token wrong-format"],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/incidents"),
        ("GET", "/incidents/Q1"),
        ("PUT", "/incidents/Q1"),
        ("GET", "/incidents/Q1/notes"),
        ("POST", "/incidents/Q1/notes"),
        ("GET", "/webhook_subscriptions"),
        ("POST", "/webhook_subscriptions"),
        ("DELETE", "/webhook_subscriptions/Q1"),
    ],
)
def test_every_operation_needs_a_valid_token(
    shared_pd: Running, authorization: str | None, method: str, path: str
) -> None:
    pd = shared_pd
    headers = {"Accept": REST_HEADERS["Accept"], **FROM}
    if authorization is not None:
        headers["Authorization"] = authorization
    response = pd.client.request(method, path, headers=headers, json={})
    assert response.status_code == 401
    assert response.json() == {"error": {"message": "Authentication failed", "code": 2006}}


def test_get_incident_and_404(pd: Running) -> None:
    incident_id = _incident_id(pd)
    body = pd.rest("GET", f"/incidents/{incident_id}").json()["incident"]
    assert (body["id"], body["incident_key"], body["status"]) == (incident_id, "k", "triggered")
    assert body["service"] == {
        "id": "PSANDBX",
        "type": "service_reference",
        "summary": "Sandbox Service",
        "self": "https://api.pagerduty.com/services/PSANDBX",
        "html_url": "https://sandbox.pagerduty.com/services/PSANDBX",
    }
    missing = pd.rest("GET", "/incidents/QNOPE")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == 2100


def test_list_incidents_filters(pd: Running) -> None:
    first, second = _incident_id(pd, "a"), _incident_id(pd, "b")
    pd.trigger("c", routing_key=OTHER_KEY)
    pd.sim.resolve(first)

    def ids(**params: object) -> list[str]:
        response = pd.rest("GET", "/incidents", params=params)
        assert response.status_code == 200
        return [i["id"] for i in response.json()["incidents"]]

    assert ids(incident_key="b") == [second]
    assert ids(incident_key="a") == [first]
    assert ids(**{"statuses[]": ["triggered", "acknowledged"], "service_ids[]": "PSANDBX"}) == [
        second
    ]
    assert ids(**{"statuses[]": "resolved"}) == [first]
    assert len(ids()) == 3
    assert pd.rest("GET", "/incidents", params={"statuses[]": "open"}).status_code == 400


def test_list_incidents_pagination(pd: Running) -> None:
    for i in range(5):
        pd.trigger(f"k{i}")
    page = pd.rest("GET", "/incidents", params={"limit": 2, "offset": 2, "total": "true"}).json()
    assert [i["incident_key"] for i in page["incidents"]] == ["k2", "k3"]
    assert (page["limit"], page["offset"], page["more"], page["total"]) == (2, 2, True, 5)
    last = pd.rest("GET", "/incidents", params={"limit": 2, "offset": 4}).json()
    assert (len(last["incidents"]), last["more"], last["total"]) == (1, False, None)
    assert pd.rest("GET", "/incidents", params={"limit": "x"}).status_code == 400


@pytest.mark.parametrize("sender", [None, "", "not-an-email"])
def test_writes_need_a_from_header(pd: Running, sender: str | None) -> None:
    incident_id = _incident_id(pd)
    headers = {} if sender is None else {"From": sender}
    update = pd.rest(
        "PUT",
        f"/incidents/{incident_id}",
        headers=headers,
        json={"incident": {"type": "incident_reference", "status": "resolved"}},
    )
    note = pd.rest(
        "POST", f"/incidents/{incident_id}/notes", headers=headers, json={"note": {"content": "x"}}
    )
    for response in (update, note):
        assert response.status_code == 400
        assert response.json()["error"]["code"] == 2001
        assert "From header" in response.json()["error"]["errors"][0]
    incident = pd.sim.incident(incident_id)
    assert incident is not None
    assert incident.status == "triggered"
    assert incident.notes == []


def test_put_resolves_and_acknowledges(pd: Running) -> None:
    incident_id = _incident_id(pd)
    for status in ("acknowledged", "resolved"):
        response = pd.rest(
            "PUT",
            f"/incidents/{incident_id}",
            headers=FROM,
            json={"incident": {"type": "incident_reference", "status": status}},
        )
        assert response.status_code == 200
        assert response.json()["incident"]["status"] == status
    body = response.json()["incident"]
    assert body["last_status_change_by"]["type"] == "user_reference"
    assert body["resolved_at"] is not None
    # the Events API no longer finds an open incident for the key
    pd.enqueue(
        routing_key=pd.sim.incident(incident_id).routing_key,  # type: ignore[union-attr]
        event_action="acknowledge",
        dedup_key="k",
    )
    assert pd.sim.incident(incident_id).status == "resolved"  # type: ignore[union-attr]


def test_put_rejects_bad_bodies_and_unknown_incidents(pd: Running) -> None:
    incident_id = _incident_id(pd)
    bad = pd.rest(
        "PUT", f"/incidents/{incident_id}", headers=FROM, json={"incident": {"status": "closed"}}
    )
    assert bad.status_code == 400
    assert any("'closed' is not one of" in e for e in bad.json()["error"]["errors"])
    assert pd.rest("PUT", f"/incidents/{incident_id}", headers=FROM, json={}).status_code == 400
    unknown = pd.rest(
        "PUT",
        "/incidents/QNOPE",
        headers=FROM,
        json={"incident": {"type": "incident_reference", "status": "resolved"}},
    )
    assert unknown.status_code == 404


def test_notes_round_trip(pd: Running) -> None:
    incident_id = _incident_id(pd)
    created = pd.rest(
        "POST",
        f"/incidents/{incident_id}/notes",
        headers=FROM,
        json={"note": {"content": "Firefighters are on the scene."}},
    )
    assert created.status_code == 200
    note = created.json()["note"]
    assert note["content"] == "Firefighters are on the scene."
    assert note["user"]["type"] == "user_reference"
    listed = pd.rest("GET", f"/incidents/{incident_id}/notes").json()["notes"]
    assert listed == [note]
    sim_note = pd.sim.incident(incident_id).notes[0]  # type: ignore[union-attr]
    assert (sim_note.content, sim_note.user_email) == (note["content"], FROM["From"])
    blank = pd.rest(
        "POST", f"/incidents/{incident_id}/notes", headers=FROM, json={"note": {"content": " "}}
    )
    assert blank.status_code == 400
    assert pd.rest("GET", "/incidents/QNOPE/notes").status_code == 404


def _subscription(url: str, **overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "type": "webhook_subscription",
        "delivery_method": {"type": "http_delivery_method", "url": url},
        "events": ["incident.resolved", "incident.annotated"],
        "filter": {"type": "service_reference", "id": "PSANDBX"},
        "description": "PagerBridge",
    }
    body.update(overrides)
    return {"webhook_subscription": body}


def test_webhook_subscription_secret_only_on_create(pd: Running) -> None:
    created = pd.rest("POST", "/webhook_subscriptions", json=_subscription("https://relay/x"))
    assert created.status_code == 200
    sub = created.json()["webhook_subscription"]
    secret = sub["delivery_method"]["secret"]
    assert isinstance(secret, str)
    assert len(secret) >= 32
    fetched = pd.rest("GET", f"/webhook_subscriptions/{sub['id']}").json()["webhook_subscription"]
    assert fetched["delivery_method"]["secret"] is None
    assert fetched["delivery_method"]["url"] == "https://relay/x"
    listed = pd.rest("GET", "/webhook_subscriptions").json()
    assert secret not in str(listed)
    assert [s["id"] for s in listed["webhook_subscriptions"]] == [sub["id"]]
    assert pd.rest("DELETE", f"/webhook_subscriptions/{sub['id']}").status_code == 204
    assert pd.rest("GET", f"/webhook_subscriptions/{sub['id']}").status_code == 404
    assert pd.rest("DELETE", f"/webhook_subscriptions/{sub['id']}").status_code == 404


def test_webhook_subscriptions_filter_by_service(pd: Running) -> None:
    ours = pd.rest("POST", "/webhook_subscriptions", json=_subscription("https://a/x")).json()
    pd.rest(
        "POST",
        "/webhook_subscriptions",
        json=_subscription("https://b/x", filter={"type": "account_reference"}),
    )
    found = pd.rest(
        "GET", "/webhook_subscriptions", params={"filter_type": "service", "filter_id": "PSANDBX"}
    ).json()["webhook_subscriptions"]
    assert [s["id"] for s in found] == [ours["webhook_subscription"]["id"]]


@pytest.mark.parametrize(
    "overrides",
    [
        {"events": []},
        {"events": ["incident.exploded"]},
        {"filter": {"type": "service_reference"}},
        {"delivery_method": {"type": "http_delivery_method"}},
        {"delivery_method": {"type": "http_delivery_method", "url": "ftp://x"}},
    ],
)
def test_invalid_webhook_subscriptions_get_400(pd: Running, overrides: dict[str, object]) -> None:
    response = pd.rest(
        "POST", "/webhook_subscriptions", json=_subscription("https://a", **overrides)
    )
    assert response.status_code == 400
    assert response.json()["error"]["errors"]
    assert pd.rest("GET", "/webhook_subscriptions").json()["webhook_subscriptions"] == []


def test_rest_rate_limit_429_with_ratelimit_headers() -> None:
    with running(PagerDutySimulator(rest_per_minute=3)) as pd:
        answers = [pd.rest("GET", "/incidents") for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert [a.headers["ratelimit-remaining"] for a in answers] == ["2", "1", "0", "0"]
        assert all(a.headers["ratelimit-limit"] == "3" for a in answers)
        assert 0 < int(answers[-1].headers["ratelimit-reset"]) <= 60
        assert answers[-1].json()["error"]["message"] == "Rate Limit Exceeded"
        pd.sim.set_rate_limits(rest_per_minute=960)
        assert pd.rest("GET", "/incidents").status_code == 200
