"""A managed routing key (issue 29 item 4): ``pagerDuty.routingKey.managed: true`` makes
the operator create the Events API v2 integration on ``serviceId`` through PagerDuty's
REST API; the relay pages PagerDuty on that service with its key (a BigPanda webhook to
the relay, through the harness kubelet), and the integration goes away with the
PagerDutyIntegration. The API server refuses a routing key that is both kinds."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import httpx
import pytest
import yaml

from pagerbridge_devkit.localcluster.kubelet import (
    ANNOTATION_INTERNAL_URL,
    ANNOTATION_URL,
    HarnessKubelet,
)
from pagerbridge_devkit.sandbox.bigpanda import DEFAULT_API_TOKEN as BP_API_KEY
from pagerbridge_devkit.sandbox.bigpanda import BigPandaSimulator
from pagerbridge_devkit.sandbox.pagerduty import (
    DEFAULT_API_TOKEN,
    DEFAULT_ROUTING_KEY,
    DEFAULT_SERVICE_ID,
    PagerDutySimulator,
)

from ..conftest import Cluster
from .conftest import OperatorProcess, condition, get_json, inbound_token, wait_for

pytestmark = pytest.mark.e2e

NAME = "managed-key"
SECRET = f"{NAME}-pd-routing-key"


def config_reloads(internal_url: str) -> float:
    """The relay's successful config (and secret file) reloads, from its metrics."""
    text = httpx.get(f"{internal_url}/metrics", timeout=5).text
    match = re.search(
        r'^pagerbridge_relay_config_reloads_total\{result="ok"\} (\S+)$', text, re.MULTILINE
    )
    return float(match.group(1)) if match else 0.0


def manifest(pd_url: str, bp_url: str, routing_key: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "pagerbridge.io/v1alpha1",
        "kind": "PagerDutyIntegration",
        "metadata": {"name": NAME},
        "spec": {
            "pagerDuty": {
                "routingKey": routing_key,
                "serviceId": DEFAULT_SERVICE_ID,
                "apiToken": {"name": "keys", "key": "pd-api"},
                "apiUrl": pd_url,
                "eventsUrl": pd_url,
            },
            "bigPanda": {
                "apiToken": {"name": "keys", "key": "bp-api"},
                "environmentId": "env1",
                "apiUrl": bp_url,
            },
            "relay": {"publicUrl": "https://relay.example.com", "storage": "Ephemeral"},
            "sync": {"notes": False},
        },
    }


def test_managed_routing_key_is_created_used_by_the_relay_and_deleted_with_it(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    kubelet: HarnessKubelet,
    pagerduty: tuple[PagerDutySimulator, str],
    bigpanda: tuple[BigPandaSimulator, str],
) -> None:
    pd, pd_url = pagerduty
    bp, bp_url = bigpanda
    pd.strict_routing_keys = True  # only keys PagerDuty issued route anywhere

    # Both kinds of routing key at once: the API server says so itself.
    both = manifest(pd_url, bp_url, {"managed": True, "name": "keys", "key": "pd-api"})
    refused = cluster.kubectl(
        "apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(both), check=False
    )
    assert refused.returncode != 0
    assert "either name and key" in refused.stderr

    keys = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "keys"},
        "stringData": {"pd-api": DEFAULT_API_TOKEN, "bp-api": BP_API_KEY},
    }
    docs = [keys, manifest(pd_url, bp_url, {"managed": True})]
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(docs))
    cluster.kubectl(
        "wait",
        "-n",
        namespace,
        "--for=condition=Ready",
        f"pdi/{NAME}",
        "--timeout=90s",
        timeout=100,
    )

    (made,) = pd.service_integrations(DEFAULT_SERVICE_ID)
    assert made.type == "events_api_v2_inbound_integration"
    pdi = get_json(cluster, namespace, "pdi", NAME)
    assert pdi["status"]["pagerDutyRoutingKey"] == {
        "integrationId": made.id,
        "serviceId": DEFAULT_SERVICE_ID,
        "secretName": SECRET,
    }
    assert condition(pdi, "RoutingKeyReady")["reason"] == "RoutingKeyManaged"
    assert "pagerbridge.io/finalizer" in pdi["metadata"]["finalizers"]
    secret = get_json(cluster, namespace, "secret", SECRET)
    key = base64.b64decode(secret["data"]["routing-key"]).decode()
    assert key == made.integration_key
    assert key != DEFAULT_ROUTING_KEY
    owners = secret["metadata"]["ownerReferences"]
    assert [(o["kind"], o["uid"]) for o in owners] == [
        ("PagerDutyIntegration", pdi["metadata"]["uid"])
    ]

    # BigPanda shares an incident with the relay: it pages PagerDuty with the managed key.
    relay_url = get_json(cluster, namespace, "deployment", f"{NAME}-relay")["metadata"][
        "annotations"
    ][ANNOTATION_URL]
    token = inbound_token(cluster, namespace, NAME)
    bp.add_webhook_target(f"{relay_url}/v1/bigpanda/webhook", {"Authorization": f"Bearer {token}"})
    shared = bp.open_incident([{"status": "critical", "host": "db-1", "description": "disk full"}])
    incident = wait_for(lambda: pd.incident_by_key(shared.id), 60, "the PagerDuty incident")
    assert incident.routing_key == key
    assert incident.service_id == DEFAULT_SERVICE_ID

    # Deleted in PagerDuty by a person: recreated at the next verification, its new key
    # written into the Secret, and the relay (which reads its mounted files again) pages
    # with it.
    internal_url = get_json(cluster, namespace, "deployment", f"{NAME}-relay")["metadata"][
        "annotations"
    ][ANNOTATION_INTERNAL_URL]
    reloads_before = config_reloads(internal_url)
    pd.delete_integration(made.id)

    def new_key() -> str | None:
        body = get_json(cluster, namespace, "secret", SECRET) or {}
        value = base64.b64decode((body.get("data") or {}).get("routing-key", "")).decode()
        return value if value and value != key else None

    recreated = wait_for(new_key, 60, "the recreated integration's key in the Secret")
    (again,) = pd.service_integrations(DEFAULT_SERVICE_ID)
    assert again.integration_key == recreated
    wait_for(
        lambda: config_reloads(internal_url) > reloads_before,
        30,
        "the relay reading its updated routing key file",
    )
    second = bp.open_incident([{"status": "critical", "host": "db-2", "description": "cpu"}])
    paged = wait_for(lambda: pd.incident_by_key(second.id), 60, "paged with the new key")
    assert paged.routing_key == recreated
    events = cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
    assert "RoutingKeyRecreated" in events

    # The keys are in the Secret and nowhere else the operator writes.
    config_map = get_json(cluster, namespace, "configmap", f"{NAME}-relay")
    events = cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
    assert "RoutingKeyCreated" in events
    pdi = get_json(cluster, namespace, "pdi", NAME)
    for text in (json.dumps(pdi), json.dumps(config_map), events, operator.log()):
        assert key not in text
        assert recreated not in text

    # Deleted with the integration (deletionPolicy Delete, the default).
    cluster.kubectl("delete", "-n", namespace, f"pdi/{NAME}", "--wait=false")
    wait_for(
        lambda: pd.service_integrations(DEFAULT_SERVICE_ID) == [],
        60,
        "the Events API v2 integration deleted in PagerDuty",
    )
    wait_for(lambda: get_json(cluster, namespace, "pdi", NAME) is None, 60, "the pdi gone")
    assert key not in operator.log()
    assert recreated not in operator.log()


def test_under_orphan_the_integration_is_left_working_without_our_stamp(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    pagerduty: tuple[PagerDutySimulator, str],
    bigpanda: tuple[BigPandaSimulator, str],
) -> None:
    pd, pd_url = pagerduty
    _, bp_url = bigpanda
    pd.strict_routing_keys = True
    keys = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "keys"},
        "stringData": {"pd-api": DEFAULT_API_TOKEN, "bp-api": BP_API_KEY},
    }
    pdi = manifest(pd_url, bp_url, {"managed": True})
    pdi["spec"]["deletionPolicy"] = "Orphan"
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all([keys, pdi]))
    recorded = wait_for(
        lambda: (
            (get_json(cluster, namespace, "pdi", NAME) or {})
            .get("status", {})
            .get("pagerDutyRoutingKey")
        ),
        60,
        "status.pagerDutyRoutingKey",
    )
    (made,) = pd.service_integrations(DEFAULT_SERVICE_ID)
    assert recorded["integrationId"] == made.id
    key = made.integration_key
    assert key is not None

    cluster.kubectl("delete", "-n", namespace, f"pdi/{NAME}", "--wait=false")
    wait_for(lambda: get_json(cluster, namespace, "pdi", NAME) is None, 60, "the pdi gone")
    (left,) = pd.service_integrations(DEFAULT_SERVICE_ID)
    assert left.id == made.id
    assert "pagerbridge-owner=" not in left.name  # unstamped: never ours again
    assert left.name == f"PagerBridge {namespace}/{NAME} routing key"
    events = cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
    assert "Orphaned" in events
    # Still routing events to its service.
    response = httpx.post(
        f"{pd_url}/v2/enqueue",
        json={
            "routing_key": key,
            "event_action": "trigger",
            "dedup_key": "after-orphan",
            "payload": {"summary": "disk full", "source": "db-1", "severity": "critical"},
        },
    )
    assert response.status_code == 202
    incident = pd.incident_by_key("after-orphan")
    assert incident is not None
    assert incident.service_id == DEFAULT_SERVICE_ID
