"""Override keys (routing keys taken from a BigPanda alert tag) are credentials: the log
redactor knows every one the relay has seen, across config reloads, and a relay that
delivered, rejected and resolved with one never writes it to its log."""

from __future__ import annotations

import logging
from pathlib import Path

from pagerbridge.jsonlog import JsonFormatter, Redactor
from pagerbridge.relay.config.log_secrets import MAX_OVERRIDE_KEYS, LogSecrets

from .relayproc import wait_for
from .test_bigpanda_to_pagerduty import OVERRIDE_KEY, incident, relay_for


def _line(redactor: Redactor, text: str) -> str:
    record = logging.LogRecord("x", logging.ERROR, "", 0, "failed: %s", (text,), None)
    return JsonFormatter(redactor).format(record)


def test_override_keys_are_redacted_and_survive_a_reload() -> None:
    redactor = Redactor()
    secrets = LogSecrets(redactor, ["loaded-secret-1"])
    secrets.add_override(OVERRIDE_KEY)
    assert OVERRIDE_KEY not in _line(redactor, f"routing_key={OVERRIDE_KEY}")
    secrets.set_loaded(["loaded-secret-2"])  # a config reload replaces the loaded secrets
    line = _line(redactor, f"{OVERRIDE_KEY} loaded-secret-1 loaded-secret-2")
    assert OVERRIDE_KEY not in line
    assert "loaded-secret-2" not in line
    assert "loaded-secret-1" in line  # rotated away: no longer a secret


def test_the_oldest_override_keys_make_room() -> None:
    redactor = Redactor()
    secrets = LogSecrets(redactor)
    keys = [f"{n:032d}" for n in range(MAX_OVERRIDE_KEYS + 1)]
    for key in keys:
        secrets.add_override(key)
    assert keys[0] in _line(redactor, keys[0])
    assert keys[-1] not in _line(redactor, keys[-1])


def test_a_relay_never_logs_an_override_key(pd_sim, relays, tmp_path: Path) -> None:
    sim, url = pd_sim
    sim.strict_routing_keys = True  # an unknown override key is refused with a 400
    sim.add_service("POVERRIDE", OVERRIDE_KEY, "Override service")
    relay = relay_for(
        tmp_path, relays, url, extra={"keyOverrideTag": "pd_key"}, args=["--log-level", "debug"]
    )
    refused = "f" * 32
    for n, key in ((40, OVERRIDE_KEY), (41, refused)):
        body = incident(n)
        body["alerts"][0]["pd_key"] = key
        body["alerts"][0]["description"] = f"key {key}"
        assert relay.post_bigpanda(body, headers={"x-debug": key}).status_code == 202
        wait_for(lambda body=body: sim.incident_by_key(body["id"]))
        ok = incident(n, status="ok")
        ok["updatedOn"] += 3
        assert relay.post_bigpanda(ok).status_code == 202
        wait_for(lambda body=body: sim.incident_by_key(body["id"]).status == "resolved")
    logs = relay.logs()
    assert "override key rejected" in logs  # the refusal was logged...
    assert OVERRIDE_KEY not in logs  # ...and neither key was
    assert refused not in logs
