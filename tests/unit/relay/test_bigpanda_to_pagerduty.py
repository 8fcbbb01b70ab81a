"""BigPanda → PagerDuty through a real relay process and the PagerDuty simulator."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from pagerbridge.sandbox.pagerduty import DEFAULT_API_TOKEN, DEFAULT_ROUTING_KEY, PagerDutySimulator

from .conftest import start_relay
from .relayproc import RelayProcess, wait_for, write_config

SAMPLES = Path("/work/shared/specs/bigpanda/samples")
if not SAMPLES.exists():  # the specs also live next to the repository in CI checkouts
    SAMPLES = Path(__file__).resolve().parents[3] / "specs" / "bigpanda" / "samples"


def incident(n: int = 1, status: str = "critical", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": f"inc{n:021d}",
        "status": status,
        "active": status != "ok",
        "updatedOn": 1764140000 + n,
        "alerts": [
            {
                "status": status,
                "description": "CPU load above 95%",
                "primary_property": "host",
                "secondary_property": "check",
                "host": f"db-{n}",
                "check": "cpu",
                "team": "dba",
            }
        ],
    }
    body.update(extra)
    return body


def relay_for(tmp_path: Path, relays: list[RelayProcess], pd_url: str, **kw: Any) -> RelayProcess:
    args = kw.pop("args", None)
    config = write_config(
        tmp_path,
        pd_url=pd_url,
        routing_key=DEFAULT_ROUTING_KEY,
        pd_api_token=DEFAULT_API_TOKEN,
        **kw,
    )
    return start_relay(relays, config, args)


def test_trigger_update_resolve_same_incident(pd_sim, relays, tmp_path):
    sim, url = pd_sim
    relay = relay_for(tmp_path, relays, url)
    body = incident(1)
    assert relay.post_bigpanda(body).status_code == 202
    found = wait_for(lambda: sim.incident_by_key(body["id"]), what="PD incident")
    assert found.status == "triggered"
    # A re-share with changed content updates the same incident.
    body2 = copy.deepcopy(body)
    body2["updatedOn"] += 60
    body2["alerts"][0]["description"] = "CPU load above 99%"
    assert relay.post_bigpanda({"incident": body2}).status_code == 202
    wait_for(lambda: len(sim.incident_by_key(body["id"]).events) == 2, what="second event")
    resolved = incident(1, status="ok")
    resolved["updatedOn"] += 120
    r = relay.post_bigpanda(resolved)
    assert r.status_code == 202
    assert r.json()["action"] == "resolve"
    wait_for(lambda: sim.incident_by_key(body["id"]).status == "resolved", what="resolved")
    assert len(sim.incidents()) == 1
    events = sim.incident_by_key(body["id"]).events
    assert [e["event_action"] for e in events] == ["trigger", "trigger", "resolve"]


def test_translation_of_sample(pd_sim, relays, tmp_path):
    sim, url = pd_sim
    relay = relay_for(tmp_path, relays, url)
    sample = json.loads((SAMPLES / "incident-new.json").read_text())
    assert relay.post_bigpanda(sample).status_code == 202
    inc_id = sample["incident"]["id"]
    pd_incident = wait_for(lambda: sim.incident_by_key(inc_id))
    sent = [r.json() for r in sim.requests.matching("POST", "/v2/enqueue")][0]
    payload = sent["payload"]
    assert sent["dedup_key"] == inc_id
    assert sent["event_action"] == "trigger"
    assert payload["severity"] == "critical"
    assert payload["source"] == "db-prod-01"
    assert "CPU load above 95%" in payload["summary"]
    assert "Replication lag" in payload["summary"]
    assert len(payload["summary"]) <= 1024
    assert payload["timestamp"].startswith("2025-")
    details = payload["custom_details"]
    assert details["tags"]["service"] == "payments"
    assert details["tags"]["check"] in ("cpu_load", "replication_lag")
    assert len(details["alerts"]) == 2
    assert inc_id in sent["links"][0]["href"]
    assert pd_incident.status == "triggered"
