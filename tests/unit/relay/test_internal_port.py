"""The relay's two ports, its day-2 metrics and its admin API (a real relay process).

The public port serves the two webhook paths and nothing else (a JSON 404, so an Ingress
in front of it exposes no metrics, probes or admin API); the internal port serves the rest.
"""

from __future__ import annotations

import time

import httpx
import pytest

from pagerbridge.api.contract import (
    BIGPANDA_WEBHOOK_PATH,
    PAGERDUTY_WEBHOOK_PATH,
    RELAY_ADMIN_DEAD_LETTERS_PATH,
    RELAY_ADMIN_PENDING_PATH,
    RELAY_ADMIN_REPLAY_PATH,
    RELAY_ADMIN_TOKEN_HEADER,
)
from pagerbridge.relay.throttle import FIRST_DELAY, FREE_FAILURES, MAX_DELAY
from pagerbridge_devkit.sandbox.pagerduty import DEFAULT_API_TOKEN, DEFAULT_ROUTING_KEY
from pagerbridge_devkit.waiting import wait_for

from .conftest import start_relay
from .relayproc import RelayProcess, write_config
from .support import incident

# Every test here starts a real relay process.
pytestmark = pytest.mark.component

ADMIN_TOKEN = "admin-token-Vb3nQ8sK2mW7xZ4c"
INTERNAL_ONLY = ["/metrics", "/readyz", "/healthz", "/openapi.json", RELAY_ADMIN_PENDING_PATH]


def _relay(tmp_path, relays, pd_url, **kw) -> RelayProcess:
    config = write_config(
        tmp_path,
        pd_url=pd_url,
        routing_key=DEFAULT_ROUTING_KEY,
        pd_api_token=DEFAULT_API_TOKEN,
        **kw,
    )
    return start_relay(relays, config)


def _json_error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["error"] == code
    assert r.json()["message"]


def _admin(relay: RelayProcess, method: str, path: str, token: str | None = ADMIN_TOKEN):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, relay.internal_url + path, headers=headers, timeout=10)


def test_public_port_serves_only_the_webhooks(pd_sim, relays, tmp_path):
    _, url = pd_sim
    relay = _relay(tmp_path, relays, url, admin_token=ADMIN_TOKEN)
    for path in INTERNAL_ONLY:
        _json_error(httpx.get(relay.url + path), 404, "not_found")
        assert httpx.get(relay.internal_url + path, headers={
            "Authorization": f"Bearer {ADMIN_TOKEN}"
        }).status_code == 200, path  # fmt: skip
    # The webhooks answer on the public port only.
    assert relay.post_bigpanda(incident(1)).status_code == 202
    for path in (BIGPANDA_WEBHOOK_PATH, PAGERDUTY_WEBHOOK_PATH):
        _json_error(httpx.post(relay.internal_url + path, content=b"{}"), 404, "not_found")
    # A method the public port does not serve is refused in JSON too.
    _json_error(httpx.get(relay.url + BIGPANDA_WEBHOOK_PATH), 405, "not_found")


def test_identity_oldest_pending_and_dead_letter_metrics(pd_sim, relays, tmp_path):
    sim, url = pd_sim
    sim.faults.fail_next(None, 503, path_prefix="/v2/enqueue")
    relay = _relay(
        tmp_path, relays, url, extra={"integration": {"namespace": "team-a", "name": "db"}}
    )
    info = [
        line for line in relay.metrics().splitlines() if line.startswith("pagerbridge_relay_info")
    ]
    assert len(info) == 1
    assert 'integration_namespace="team-a"' in info[0]
    assert 'integration_name="db"' in info[0]
    assert relay.metric("pagerbridge_relay_outbox_oldest_pending_seconds") == 0
    # Every bounded reason exists from the start (increase() sees the first dead letter).
    for reason in ("rejected", "poison", "expired", "not_ready", "unknown_kind"):
        assert f'reason="{reason}"' in relay.metrics()
    assert relay.post_bigpanda(incident(2)).status_code == 202
    # PagerDuty keeps failing: the job waits, and its age grows from scrape to scrape.
    first = wait_for(
        lambda: relay.metric("pagerbridge_relay_outbox_oldest_pending_seconds") or None
    )
    wait_for(lambda: relay.metric("pagerbridge_relay_outbox_oldest_pending_seconds") > first)
    sim.faults.clear()
    wait_for(lambda: sim.incident_by_key(incident(2)["id"]), timeout=30)
    wait_for(lambda: relay.metric("pagerbridge_relay_outbox_oldest_pending_seconds") == 0)


def test_admin_api_needs_its_token_and_is_off_without_one(pd_sim, relays, tmp_path):
    _, url = pd_sim
    (tmp_path / "off").mkdir()
    off = _relay(tmp_path / "off", relays, url)
    _json_error(_admin(off, "GET", RELAY_ADMIN_PENDING_PATH), 404, "not_configured")
    relay = _relay(tmp_path, relays, url, admin_token=ADMIN_TOKEN)
    _json_error(_admin(relay, "GET", RELAY_ADMIN_PENDING_PATH, token=None), 401, "unauthorized")
    for path in (RELAY_ADMIN_PENDING_PATH, RELAY_ADMIN_DEAD_LETTERS_PATH):
        _json_error(_admin(relay, "GET", path, token="wrong"), 401, "unauthorized")
    replay = RELAY_ADMIN_REPLAY_PATH.format(job_id=1)
    _json_error(_admin(relay, "POST", replay, token="wrong"), 401, "unauthorized")
    wrong = {RELAY_ADMIN_TOKEN_HEADER: "wrong"}
    _json_error(
        httpx.get(relay.internal_url + RELAY_ADMIN_PENDING_PATH, headers=wrong), 401, "unauthorized"
    )
    assert ADMIN_TOKEN not in relay.logs()
    assert _admin(relay, "GET", RELAY_ADMIN_PENDING_PATH).json() == {"pending": []}
    # Through the API server's pod proxy the token travels in its own header.
    right = {RELAY_ADMIN_TOKEN_HEADER: ADMIN_TOKEN}
    response = httpx.get(relay.internal_url + RELAY_ADMIN_PENDING_PATH, headers=right)
    assert response.json() == {"pending": []}


def test_pending_dead_letters_and_replay(pd_sim, relays, tmp_path):
    sim, url = pd_sim
    relay = _relay(tmp_path, relays, url, admin_token=ADMIN_TOKEN)
    body = incident(3)
    # PagerDuty refuses the trigger once (400: permanent): it is dead-lettered.
    sim.faults.fail_next(1, 400, path_prefix="/v2/enqueue", body={"status": "invalid event"})
    assert relay.post_bigpanda(body).status_code == 202
    wait_for(lambda: relay.metric("pagerbridge_relay_dead_letters_total", reason="rejected") == 1)
    letters = _admin(relay, "GET", RELAY_ADMIN_DEAD_LETTERS_PATH).json()["deadLetters"]
    assert [(d["kind"], d["status"]) for d in letters] == [("pd_event", 400)]
    job_id = letters[0]["id"]
    assert sim.incident_by_key(body["id"]) is None

    _json_error(
        _admin(relay, "POST", RELAY_ADMIN_REPLAY_PATH.format(job_id=job_id + 1000)),
        404,
        "not_found",
    )
    # While a newer job of the same incident is pending, the replay is refused (order).
    sim.faults.fail_next(None, 503, path_prefix="/v2/enqueue")
    body["updatedOn"] += 1
    body["alerts"][0]["description"] = "CPU load above 97%"
    assert relay.post_bigpanda(body).status_code == 202
    pending = wait_for(
        lambda: _admin(relay, "GET", RELAY_ADMIN_PENDING_PATH).json()["pending"] or None
    )
    assert [(p["kind"], p["orderingKey"]) for p in pending] == [
        ("pd_event", letters[0]["orderingKey"])
    ]
    _json_error(
        _admin(relay, "POST", RELAY_ADMIN_REPLAY_PATH.format(job_id=job_id)), 409, "conflict"
    )
    sim.faults.clear()
    wait_for(lambda: _admin(relay, "GET", RELAY_ADMIN_PENDING_PATH).json()["pending"] == [])
    sent = len(sim.requests.matching("POST", "/v2/enqueue"))

    # Now it goes back into the outbox and is delivered (once), and leaves the dead letters.
    r = _admin(relay, "POST", RELAY_ADMIN_REPLAY_PATH.format(job_id=job_id))
    assert r.status_code == 202, r.text
    assert r.json() == {"replayed": job_id}
    wait_for(lambda: len(sim.requests.matching("POST", "/v2/enqueue")) == sent + 1)
    wait_for(lambda: _admin(relay, "GET", RELAY_ADMIN_PENDING_PATH).json()["pending"] == [])
    assert _admin(relay, "GET", RELAY_ADMIN_DEAD_LETTERS_PATH).json() == {"deadLetters": []}
    replayed = sim.requests.matching("POST", "/v2/enqueue")[-1].json()
    assert replayed["dedup_key"] == body["id"]
    # Replaying it again: it is no dead letter any more.
    _json_error(
        _admin(relay, "POST", RELAY_ADMIN_REPLAY_PATH.format(job_id=job_id)), 404, "not_found"
    )


@pytest.mark.parametrize("path", ["/admin/v1/dead-letters/x/replay"])
def test_replay_of_a_non_numeric_id_is_404(pd_sim, relays, tmp_path, path):
    _, url = pd_sim
    relay = _relay(tmp_path, relays, url, admin_token=ADMIN_TOKEN)
    _json_error(_admin(relay, "POST", path), 404, "not_found")


def test_failed_admin_tokens_slow_their_source_down(pd_sim, relays, tmp_path):
    """After FREE_FAILURES bad tokens a source waits (429, Retry-After, doubling), even with
    the right token; another source is not held up; the log gets no line per 429."""
    _, url = pd_sim
    relay = _relay(tmp_path, relays, url, admin_token=ADMIN_TOKEN)
    for _ in range(FREE_FAILURES):
        _json_error(
            _admin(relay, "GET", RELAY_ADMIN_PENDING_PATH, token="wrong"), 401, "unauthorized"
        )
    # Failures past the free ones block for FIRST_DELAY, then twice that, ...: wait each
    # block out and fail again until the block is long enough to test within it.
    retry_after = 0
    for _ in range(12):
        r = _admin(relay, "GET", RELAY_ADMIN_PENDING_PATH, token="wrong")
        if r.status_code == 429:
            _json_error(r, 429, "too_many_attempts")
            retry_after = int(r.headers["retry-after"])
            if retry_after >= 8 * FIRST_DELAY:
                break
            time.sleep(retry_after)
        else:
            _json_error(r, 401, "unauthorized")
    assert retry_after >= 8 * FIRST_DELAY
    assert retry_after <= MAX_DELAY
    # Blocked means blocked: the right token is not even looked at.
    _json_error(_admin(relay, "GET", RELAY_ADMIN_PENDING_PATH), 429, "too_many_attempts")
    # Another source address is not held up by this one's failures.
    other = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"))
    with other:
        answer = other.get(
            relay.internal_url + RELAY_ADMIN_PENDING_PATH,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
    assert answer.status_code == 200, answer.text
    refusals = relay.logs().count("admin request refused")
    assert FREE_FAILURES < refusals <= FREE_FAILURES + 4  # one per 401, none per 429
