"""Override keys (routing keys taken from a BigPanda alert tag) are credentials: the log
redactor knows every one the relay has seen, across config reloads, and a relay that
delivered, rejected and resolved with one never writes it to its log."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest

from pagerbridge.jsonlog import JsonFormatter, Redactor
from pagerbridge.relay.config.log_secrets import MAX_OTHER_KEYS, LogSecrets
from pagerbridge_devkit.sandbox.pagerduty import DEFAULT_ROUTING_KEY
from pagerbridge_devkit.waiting import wait_for

from .conftest import start_relay
from .relayproc import write_config
from .support import OVERRIDE_KEY, incident, relay_for


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


def test_every_override_key_is_redacted_however_many_and_memory_stays_bounded() -> None:
    redactor = Redactor()
    secrets = LogSecrets(redactor)
    keys = [f"K{n:031d}" for n in range(3 * MAX_OTHER_KEYS)]
    for key in keys:
        secrets.add_override(key)
    for key in (keys[0], keys[MAX_OTHER_KEYS], keys[-1]):
        line = _line(redactor, f"routing_key={key}, again:{key}.")
        assert key not in line
        assert "routing_key=[REDACTED], again:[REDACTED]." in line
    assert secrets.remembered == 0  # redacted by shape: nothing held per key
    # Words of other lengths are left alone (incident ids, hashes of 31 or 33 characters).
    assert "x" * 31 in _line(redactor, "x" * 31)
    assert "y" * 33 in _line(redactor, "y" * 33)


# Secrets the JSON encoder would escape: a quote, a backslash, a newline, a tab, control
# characters, non-ASCII (two and four bytes in UTF-8).
AWKWARD = [
    'pass"word-with-quote',
    "back\\slash\\token",
    "line\nbreak-secret",
    "tab\tand\rcarriage",
    "ctl\x01\x1f\x7fchars",
    "unicodé-sécret-🔑-κλειδί",
    '"\\\n\u2028mixed\x00',
]


def test_secrets_of_any_characters_are_scrubbed_from_every_field() -> None:
    redactor = Redactor()
    LogSecrets(redactor, AWKWARD)
    formatter = JsonFormatter(redactor)
    for secret in AWKWARD:
        try:
            raise RuntimeError(f"upstream said {secret}")
        except RuntimeError:
            record = logging.LogRecord(
                "x", logging.ERROR, "", 0, "failed: %s", (secret,), sys.exc_info()
            )
        record.__dict__.update(
            error=f"<{secret}>",
            nested={"headers": [f"Bearer {secret}"], secret: 1},
            number=3,
        )
        line = formatter.format(record)
        entry = json.loads(line)
        decoded = json.dumps(entry, ensure_ascii=False)
        assert secret not in decoded, (secret, line)
        assert secret not in line
        assert json.dumps(secret)[1:-1] not in line  # nor its escaped form
        assert entry["msg"] == "failed: [REDACTED]"
        assert entry["error"] == "<[REDACTED]>"
        assert entry["nested"] == {"headers": ["Bearer [REDACTED]"], "[REDACTED]": 1}
        assert entry["number"] == 3
        assert "upstream said [REDACTED]" in entry["traceback"]
        assert "\n" not in line  # one line, whatever the secret held


@pytest.mark.component
def test_a_relay_process_never_logs_a_secret_with_awkward_characters(
    pd_sim, relays, tmp_path: Path
) -> None:
    """The PagerDuty API token (a file's whole content, any characters) turns up as a
    BigPanda incident id the relay logs in a warning: the line has it redacted."""
    sim, url = pd_sim
    token = 'pd-"token\\with\\back"slashes-é🔑-κλειδί'
    config = write_config(
        tmp_path,
        pd_url=url,
        routing_key=DEFAULT_ROUTING_KEY,
        pd_api_token=token,
        extra={"keyOverrideTag": "pd_key"},  # absent from the alert: a warning per trigger
    )
    relay = start_relay(relays, config, ["--log-level", "debug"])
    body = incident(1)
    body["id"] = token
    assert relay.post_bigpanda(body).status_code == 202
    wait_for(lambda: sim.incident_by_key(token))
    wait_for(lambda: "key override not usable" in relay.logs())
    logs = relay.logs()
    warning = next(
        json.loads(line) for line in logs.splitlines() if "key override not usable" in line
    )
    assert warning["incident_id"] == "[REDACTED]"
    assert token not in logs
    assert json.dumps(token)[1:-1] not in logs  # the escaped form, which was missed before
    assert json.dumps(token, ensure_ascii=True)[1:-1] not in logs


@pytest.mark.component
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


def test_redactor_scrubs_secrets_from_log_lines():
    import logging

    redactor = Redactor()
    redactor.set_secrets(["supersecretvalue123"])
    record = logging.LogRecord(
        "x", logging.ERROR, "", 0, "failed with %s", ("supersecretvalue123",), None
    )
    record.token = "supersecretvalue123"
    line = JsonFormatter(redactor).format(record)
    assert "supersecretvalue123" not in line
    assert "[REDACTED]" in line
