"""Links and images through a real relay process and the PagerDuty simulator: a trigger
carries them, and a bad one is dropped (metric and log line, without its URL) while the
incident is still paged."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pagerbridge_devkit.waiting import wait_for

from .support import enqueues, incident, relay_for

pytestmark = pytest.mark.component

LINKS = [
    {"tag": "runbook", "text": "Runbook"},
    {"template": "https://grafana.example/d/abc?var-host={{host}}", "text": "Dashboard"},
    {"tag": "wiki"},  # carries credentials: dropped
    {"tag": "no_such_tag"},  # missing: dropped
]
IMAGES = [
    {"template": "https://grafana.example/render/{{host}}.png", "alt": "CPU"},
    {"tag": "plain_graph"},  # http, not https: dropped
]


def test_trigger_carries_links_and_images_and_bad_ones_are_dropped(pd_sim, relays, tmp_path):
    sim, url = pd_sim
    relay = relay_for(tmp_path, relays, url, extra={"links": LINKS, "images": IMAGES})
    body = incident(70)
    alert = body["alerts"][0]
    alert["host"] = "db 70/a"
    alert["runbook"] = "https://wiki.example/runbooks/cpu"
    alert["wiki"] = "https://admin:hunter2@wiki.example/secret-page"
    alert["plain_graph"] = "http://charts.example/g.png"
    assert relay.post_bigpanda(body).status_code == 202

    found = wait_for(lambda: sim.incident_by_key(body["id"]), what="the PagerDuty incident")
    assert found.status == "triggered"  # paged, whatever its links
    assert [r.status for r in sim.requests.matching("POST", "/v2/enqueue")] == [202]
    assert found.links[0]["text"] == "BigPanda incident"
    assert found.links[1:] == [
        {"href": "https://wiki.example/runbooks/cpu", "text": "Runbook"},
        {"href": "https://grafana.example/d/abc?var-host=db%2070%2Fa", "text": "Dashboard"},
    ]
    assert found.images == [{"src": "https://grafana.example/render/db%2070%2Fa.png", "alt": "CPU"}]
    assert enqueues(sim)[0]["links"] == found.links

    dropped = "pagerbridge_relay_links_dropped_total"
    assert relay.metric(dropped, kind="link", reason="credentials") == 1
    assert relay.metric(dropped, kind="link", reason="missing_tag") == 1
    assert relay.metric(dropped, kind="image", reason="scheme") == 1
    assert relay.metric(dropped) == 3
    logs = relay.logs()
    assert "link not added to the trigger" in logs
    assert "credentials" in logs
    assert "links[2]" in logs
    assert "hunter2" not in logs
    assert "secret-page" not in logs


def test_without_rules_a_trigger_has_only_the_bigpanda_link(pd_sim, relays, tmp_path):
    sim, url = pd_sim
    relay = relay_for(tmp_path, relays, url)
    body = incident(71)
    body["alerts"][0]["runbook"] = "https://wiki.example/runbooks/cpu"
    assert relay.post_bigpanda(body).status_code == 202
    found = wait_for(lambda: sim.incident_by_key(body["id"]), what="the PagerDuty incident")
    assert [link["text"] for link in found.links] == ["BigPanda incident"]
    assert found.images == []
    assert relay.metric("pagerbridge_relay_links_dropped_total") == 0


def test_links_are_hot_reloaded_and_a_malformed_rule_is_refused(pd_sim, relays, tmp_path):
    sim, url = pd_sim
    relay = relay_for(tmp_path, relays, url)
    config_path = tmp_path / "relay-config.json"
    config = json.loads(config_path.read_text())
    config["links"] = [{"tag": "runbook", "text": "Runbook"}]
    _replace(config_path, json.dumps(config))
    reloads = "pagerbridge_relay_config_reloads_total"
    wait_for(lambda: relay.metric(reloads, result="ok") >= 1, what="the reload")
    body = incident(72)
    body["alerts"][0]["runbook"] = "https://wiki.example/runbooks/cpu"
    assert relay.post_bigpanda(body).status_code == 202
    found = wait_for(lambda: sim.incident_by_key(body["id"]), what="the PagerDuty incident")
    assert found.links[1:] == [{"href": "https://wiki.example/runbooks/cpu", "text": "Runbook"}]
    # A rule the RelayConfig model refuses (not http(s)): the config in use stays.
    bad = {**config, "links": [{"template": "ftp://files.example/{{host}}"}]}
    _replace(config_path, json.dumps(bad))
    wait_for(lambda: relay.metric("pagerbridge_relay_config_last_reload_ok") == 0, what="refusal")
    again = incident(73)
    again["alerts"][0]["runbook"] = "https://wiki.example/runbooks/disk"
    assert relay.post_bigpanda(again).status_code == 202
    found = wait_for(lambda: sim.incident_by_key(again["id"]), what="the second incident")
    assert found.links[1:] == [{"href": "https://wiki.example/runbooks/disk", "text": "Runbook"}]


def _replace(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (as Kubernetes updates a mounted ConfigMap)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
