"""The operator's default log tells an integration's story (startup, condition transitions,
external side effects with their ids), in the relay's JSON schema, with no secret in it;
kopf's own chatter appears only with -v."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from pagerbridge import __version__
from pagerbridge_devkit.localcluster.kubelet import HarnessKubelet
from pagerbridge_devkit.ports import free_port
from pagerbridge_devkit.sandbox.pagerduty import (
    DEFAULT_API_TOKEN,
    DEFAULT_ROUTING_KEY,
    DEFAULT_SERVICE_ID,
    PagerDutySimulator,
)

from ..conftest import Cluster
from .conftest import OperatorProcess, pd_secret, wait_for

pytestmark = pytest.mark.e2e

SCHEMA = {"ts", "level", "logger", "msg"}


def records(log: str) -> list[dict[str, Any]]:
    """Every line of the log is one JSON object of the shared schema."""
    parsed = []
    complete = log if log.endswith("\n") else log.rpartition("\n")[0]  # still being written
    for line in complete.splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        assert set(record) >= SCHEMA, line
        parsed.append(record)
    return parsed


def subscribed(name: str, pd_url: str) -> dict[str, Any]:
    return {
        "apiVersion": "pagerbridge.io/v1alpha1",
        "kind": "PagerDutyIntegration",
        "metadata": {"name": name},
        "spec": {
            "pagerDuty": {
                "routingKey": {"name": "pd-keys", "key": "routing-key"},
                "apiToken": {"name": "pd-keys", "key": "api-token"},
                "serviceId": DEFAULT_SERVICE_ID,
                "eventsUrl": pd_url,
                "apiUrl": pd_url,
            },
            "bigPanda": {
                "apiToken": {"name": "bp", "key": "api-token"},
                "environmentId": "env1",
            },
            "relay": {"publicUrl": "https://relay.example.com"},
            "sync": {"notes": False},
        },
    }


def test_default_log_tells_the_story_without_secrets(
    cluster: Cluster,
    namespace: str,
    kubelet: HarnessKubelet,
    pagerduty: tuple[PagerDutySimulator, str],
    tmp_path: Path,
) -> None:
    _, pd_url = pagerduty
    operator = OperatorProcess(cluster, namespace, tmp_path / "op.log", free_port(), free_port())
    operator.start()
    try:
        # The integration first, its Secrets later: a failure, then recovery.
        cluster.kubectl(
            "apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(subscribed("story", pd_url))
        )
        wait_for(lambda: "SecretNotFound" in operator.log(), 60, "SecretNotFound logged")
        bp_secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "bp"},
            "stringData": {"api-token": "bp-secret-token-value"},
        }
        cluster.kubectl(
            "apply", "-n", namespace, "-f", "-",
            input=yaml.safe_dump_all([yaml.safe_load(pd_secret()), bp_secret]),
        )  # fmt: skip
        cluster.kubectl(
            "wait", "-n", namespace, "--for=condition=Ready", "pdi/story", "--timeout=90s",
            timeout=100,
        )  # fmt: skip
        wait_for(lambda: "SubscriptionCreated" in operator.log(), 30, "the side effect logged")
        wait_for(lambda: "condition Ready=True" in operator.log(), 30, "Ready logged")
    finally:
        operator.stop()

    log = operator.log()
    lines = records(log)
    start = next(r for r in lines if r["msg"] == "operator starting")
    assert start["version"] == __version__
    assert start["scope"] == "namespaces"
    assert start["namespaces"] == [namespace]
    assert start["leaderElection"] == f"{namespace}/pagerbridge-operator"
    story = [r for r in lines if f"{namespace}/story" in str(r.get("object", ""))]
    messages = [f"{r['level']} {r['msg']}" for r in story]
    assert any(
        "SecretNotFound" in m and m.startswith("info condition Ready=False") for m in messages
    ), messages
    created = next(r for r in story if r.get("event") == "SubscriptionCreated")
    sub_ids = [s["id"] for s in pd_subscriptions(pd_url)]
    assert len(sub_ids) == 1
    assert sub_ids[0] in created["msg"]
    assert any(m.startswith("info condition Ready=True") for m in messages), messages
    # At the default level, kopf says nothing below WARNING.
    assert not [
        r for r in lines if r["logger"].startswith("kopf") and r["level"] in ("debug", "info")
    ]

    # No secret: the Secrets' values, and the generated webhook token.
    token = json.loads(
        cluster.kubectl("get", "secret", "-n", namespace, "story-relay-token", "-o", "json").stdout
    )
    secrets = [DEFAULT_ROUTING_KEY, DEFAULT_API_TOKEN, "bp-secret-token-value"]
    secrets += [base64.b64decode(v).decode() for v in token["data"].values()]
    for secret in secrets:
        for part in secret.split():
            assert part not in log

    # The relay writes the same schema.
    relay = subprocess.run(
        [sys.executable, "-m", "pagerbridge", "relay", "--config", str(tmp_path / "absent.json")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert relay.returncode != 0
    (refused,) = [r for r in records(relay.stderr) if r["level"] == "error"]
    assert set(refused) >= SCHEMA


def pd_subscriptions(pd_url: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{pd_url}/webhook_subscriptions",
        headers={
            "Authorization": f"Token token={DEFAULT_API_TOKEN}",
            "Accept": "application/vnd.pagerduty+json;version=2",
        },
    )
    items: list[dict[str, Any]] = response.json()["webhook_subscriptions"]
    return items


def test_verbose_shows_kopf_debug(cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    operator = OperatorProcess(
        cluster, namespace, tmp_path / "op.log", free_port(), free_port(), extra_args=["-v"]
    )
    operator.start()
    try:
        wait_for(
            lambda: any(
                r["logger"].startswith("kopf") and r["level"] == "debug"
                for r in records(operator.log())
            ),
            60,
            "kopf's debug output",
        )
    finally:
        operator.stop()
