"""The relay's own HTTP surface: refusals, health, metrics, OpenAPI, reload, no secrets."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest

from pagerbridge.relay.incidents.limits import MAX_BODY
from pagerbridge_devkit.sandbox.pagerduty import DEFAULT_API_TOKEN, DEFAULT_ROUTING_KEY
from pagerbridge_devkit.waiting import wait_for

from .relayproc import WEBHOOK_TOKEN, RelayProcess, write_config
from .support import enqueues, incident, relay_for

# Every test here starts a real relay process.
pytestmark = pytest.mark.component


def _error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["error"] == code
    assert r.json()["message"]


def test_bad_input_gets_clear_4xx(pd_sim, relays, tmp_path):
    sim, url = pd_sim
    relay = relay_for(tmp_path, relays, url)
    hook = relay.url + "/v1/bigpanda/webhook"
    auth = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
    json_h = {**auth, "Content-Type": "application/json"}
    _error(relay.post_bigpanda(incident(1), token=None), 401, "unauthorized")
    _error(relay.post_bigpanda(incident(1), token="wrong-token"), 401, "unauthorized")
    _error(
        httpx.post(hook, content=b"{}", headers={**auth, "Content-Type": "text/plain"}),
        415,
        "unsupported_media_type",
    )
    _error(httpx.post(hook, content=b"{not json", headers=json_h), 400, "malformed_json")
    _error(httpx.post(hook, content=b"\xff\xfe", headers=json_h), 400, "malformed_json")
    _error(httpx.post(hook, content=b"[1, 2]", headers=json_h), 422, "invalid_incident")
    _error(relay.post_bigpanda({"status": "critical"}), 422, "invalid_incident")
    _error(relay.post_bigpanda({"incident": {"id": ""}}), 422, "invalid_incident")
    big = {"id": "x", "blob": "a" * MAX_BODY}
    _error(relay.post_bigpanda(big), 413, "payload_too_large")

    # Chunked upload without Content-Length is capped too.
    def chunks():
        for _ in range(600):
            yield b" " * 1024

    _error(httpx.post(hook, content=chunks(), headers=json_h), 413, "payload_too_large")
    # Nothing refused reached PagerDuty, and the relay still works.
    assert sim.requests.matching("POST", "/v2/enqueue") == []
    assert relay.post_bigpanda(incident(2)).status_code == 202
    assert relay.metric("pagerbridge_relay_webhooks_total", outcome="unauthorized") == 2
    assert "request refused" in relay.logs()


def test_health_ready_metrics_openapi(pd_sim, relays, tmp_path):
    _, url = pd_sim
    relay = relay_for(tmp_path, relays, url)
    assert httpx.get(relay.internal_url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(relay.internal_url + "/readyz")
    assert ready.status_code == 200
    detail = ready.json()
    assert detail["ready"] is True
    assert detail["outbox"] == "writable"
    assert detail["upstream"]["pagerduty_events"] == "ok"
    text = httpx.get(relay.internal_url + "/metrics").text
    assert "pagerbridge_relay_outbox_pending" in text
    doc = httpx.get(relay.internal_url + "/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert {"/v1/bigpanda/webhook", "/v1/pagerduty/webhook", "/readyz"} <= set(doc["paths"])
    from openapi_schema_validator import OAS31Validator

    OAS31Validator.check_schema(doc["components"]["schemas"]["BigPandaIncident"])


def test_readyz_reports_upstream_auth_failure(pd_sim, relays, tmp_path):
    sim, url = pd_sim
    sim.faults.fail_next(None, 403, path_prefix="/v2/enqueue")
    relay = relay_for(tmp_path, relays, url, args=["--unauthorized-retry", "0.3"])
    relay.post_bigpanda(incident(3))
    wait_for(
        lambda: (
            httpx.get(relay.internal_url + "/readyz").json()["upstream"]["pagerduty_events"]
            == "unauthorized"
        )
    )
    assert relay.metric("pagerbridge_relay_upstream_unauthorized", service="pagerduty_events") == 1
    sim.faults.clear()
    wait_for(lambda: sim.incident_by_key(incident(3)["id"]), timeout=10)
    wait_for(
        lambda: (
            httpx.get(relay.internal_url + "/readyz").json()["upstream"]["pagerduty_events"] == "ok"
        )
    )


def test_config_and_secret_reload_and_broken_config_refused(pd_sim, relays, tmp_path):
    sim, url = pd_sim
    relay = relay_for(tmp_path, relays, url)
    config_path = tmp_path / "relay-config.json"
    config = json.loads(config_path.read_text())
    # 1. A mapping added to the config applies without restart.
    config["tagMappings"] = [{"tag": "team", "field": "group"}]
    _replace(config_path, json.dumps(config))
    wait_for(lambda: relay.metric("pagerbridge_relay_config_reloads_total", result="ok") >= 1)
    relay.post_bigpanda(incident(5))
    wait_for(lambda: sim.incident_by_key(incident(5)["id"]))
    assert enqueues(sim)[-1]["payload"]["group"] == "dba"
    # 2. A broken config is refused; the old one stays in use.
    _replace(config_path, '{"pagerDuty": {"routingKeyFile": 5}}')
    wait_for(lambda: relay.metric("pagerbridge_relay_config_last_reload_ok") == 0)
    assert httpx.get(relay.internal_url + "/readyz").json()["configReload"] == "refused"
    assert relay.post_bigpanda(incident(6)).status_code == 202
    wait_for(lambda: sim.incident_by_key(incident(6)["id"]))
    assert "new config refused" in relay.logs()
    # 3. Token rotation through the secret file (Kubernetes-style ..data symlink swap).
    _replace(config_path, json.dumps(config))
    wait_for(lambda: relay.metric("pagerbridge_relay_config_last_reload_ok") == 1)
    secrets = tmp_path / "secrets"
    data_v2 = tmp_path / "secret-v2"
    data_v2.mkdir()
    (data_v2 / "token").write_text("rotated-token-8f7d6s5a4")
    token_file = secrets / "webhook-token"
    token_file.unlink()
    token_file.symlink_to(data_v2 / "token")
    wait_for(
        lambda: relay.post_bigpanda(incident(7), token="rotated-token-8f7d6s5a4").status_code == 202
    )
    assert relay.post_bigpanda(incident(8)).status_code == 401


def _replace(path: Path, text: str) -> None:
    tmp = path.with_suffix(".new")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_no_secret_in_logs_or_answers(pd_sim, relays, tmp_path):
    sim, url = pd_sim
    sim.faults.fail_next(2, 503, path_prefix="/v2/enqueue")
    sim.faults.fail_next(1, 401, path_prefix="/incidents")
    relay = relay_for(
        tmp_path,
        relays,
        url,
        extra={"keyOverrideTag": "pd_key"},
        args=["--unauthorized-retry", "0.3"],
    )
    body = incident(9)
    body["comments"] = [{"id": "c1", "comment": "hello"}]
    answers = [
        relay.post_bigpanda(body),
        relay.post_bigpanda(body, token="wrong-" + WEBHOOK_TOKEN),
        relay.post_bigpanda(b"{bad", token=WEBHOOK_TOKEN),
    ]
    wait_for(
        lambda: sim.incident_by_key(body["id"]) and sim.incident_by_key(body["id"]).notes,
        timeout=20,
    )
    relay.terminate()
    logs = relay.logs()
    everything = logs + "".join(a.text for a in answers) + relay.config.read_text()
    for secret in (DEFAULT_ROUTING_KEY, DEFAULT_API_TOKEN, WEBHOOK_TOKEN):
        assert secret not in everything
    assert "delivery failed; will retry" in logs  # the failures were logged, without secrets


def test_startup_refuses_missing_secret(tmp_path, relays):
    config = write_config(tmp_path, pd_url="http://127.0.0.1:9", routing_key="k" * 32)
    (tmp_path / "secrets" / "routing-key").unlink()
    relay = RelayProcess(config, tmp_path / "relay.log")
    relays.append(relay)
    with pytest.raises(RuntimeError, match="exited with 2"):
        relay.start(timeout=10)
    assert "cannot read routing key file" in relay.logs()


def test_reload_under_load_drops_nothing(pd_sim, relays, tmp_path):
    """Requests keep being accepted while the config file changes underneath."""
    import threading

    sim, url = pd_sim
    sim.set_rate_limits(events_per_minute=0)  # 160 events in seconds; limits tested elsewhere
    relay = relay_for(tmp_path, relays, url, args=["--events-rate-limit", "100000"])
    config_path = tmp_path / "relay-config.json"
    config = json.loads(config_path.read_text())
    statuses: list[int] = []

    def post_many(offset: int) -> None:
        with httpx.Client(timeout=10) as client:
            for n in range(40):
                r = client.post(
                    relay.url + "/v1/bigpanda/webhook",
                    json=incident(1000 + offset * 100 + n),
                    headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
                )
                statuses.append(r.status_code)

    threads = [threading.Thread(target=post_many, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for i in range(3):
        config["tagMappings"] = [{"tag": "team", "field": "group" if i % 2 else "component"}]
        _replace(config_path, json.dumps(config))
        wait_for(lambda i=i: relay.metric("pagerbridge_relay_config_reloads_total") >= i + 1)
    for t in threads:
        t.join()
    assert statuses == [202] * 160
    wait_for(lambda: len(sim.incidents()) == 160, timeout=30)
