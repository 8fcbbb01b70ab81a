"""Issue 27 against the local control plane: the operator and a real relay Pod (harness
kubelet) with both simulators. An incident a key override routes to a second service is
resolved in BigPanda when it is resolved in PagerDuty: the subscription's scope (a team
holding both services) covers it, and the relay knows the incident as its own."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
import yaml

from pagerbridge_devkit.localcluster.kubelet import ANNOTATION_URL, HarnessKubelet
from pagerbridge_devkit.sandbox.bigpanda import DEFAULT_API_TOKEN as BP_API_TOKEN
from pagerbridge_devkit.sandbox.bigpanda import DEFAULT_ENVIRONMENT_ID, BigPandaSimulator
from pagerbridge_devkit.sandbox.pagerduty import (
    DEFAULT_API_TOKEN,
    DEFAULT_ROUTING_KEY,
    DEFAULT_SERVICE_ID,
    PagerDutySimulator,
)

from ..conftest import Cluster
from ..kube import merge_patch
from .conftest import OperatorProcess, get_json, signed_probe, wait_for

pytestmark = pytest.mark.e2e

OVERRIDE_KEY = "5ec0dd5ec0dd5ec0dd5ec0dd5ec0dd00"
TEAM = "PTEAM01"
WEBHOOK_PATH = "/v1/pagerduty/webhook"


def test_override_routed_incident_resolved_in_pagerduty_is_resolved_in_bigpanda(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    kubelet: HarnessKubelet,
    pagerduty: tuple[PagerDutySimulator, str],
    bigpanda: tuple[BigPandaSimulator, str],
) -> None:
    pd, pd_url = pagerduty
    bp, bp_url = bigpanda
    bp.set_rate_limit(None)
    pd.add_service(DEFAULT_SERVICE_ID, DEFAULT_ROUTING_KEY, team_id=TEAM)
    pd.add_service("PSECOND", OVERRIDE_KEY, "Second service", team_id=TEAM)
    docs = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "keys"},
            "stringData": {
                "routing-key": DEFAULT_ROUTING_KEY,
                "api-token": DEFAULT_API_TOKEN,
                "bp-token": BP_API_TOKEN,
            },
        },
        {
            "apiVersion": "pagerbridge.io/v1alpha1",
            "kind": "PagerDutyIntegration",
            "metadata": {"name": "conv"},
            "spec": {
                "pagerDuty": {
                    "routingKey": {"name": "keys", "key": "routing-key"},
                    "apiToken": {"name": "keys", "key": "api-token"},
                    "serviceId": DEFAULT_SERVICE_ID,
                    "webhookScope": {"type": "Team", "teamId": TEAM},
                    "eventsUrl": pd_url,
                    "apiUrl": pd_url,
                },
                "bigPanda": {
                    "apiUrl": bp_url,
                    "apiToken": {"name": "keys", "key": "bp-token"},
                    "environmentId": DEFAULT_ENVIRONMENT_ID,
                },
                "relay": {"publicUrl": "https://relay.example.com"},
                "sync": {"notes": False},
            },
        },
        {
            "apiVersion": "pagerbridge.io/v1alpha1",
            "kind": "PagerDutyKeyOverride",
            "metadata": {"name": "conv-by-tag"},
            "spec": {"integrationRef": {"name": "conv"}, "tag": "pd_routing_key"},
        },
    ]
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(docs))
    cluster.kubectl(
        "wait", "-n", namespace, "--for=condition=Ready", "pdi/conv", "--timeout=90s", timeout=100
    )
    dep = get_json(cluster, namespace, "deployment", "conv-relay")
    assert dep is not None
    relay_url = dep["metadata"]["annotations"][ANNOTATION_URL]
    # PagerDuty reaches the relay where the harness kubelet runs it.
    merge_patch(cluster, namespace, "pdi", "conv", {"spec": {"relay": {"publicUrl": relay_url}}})

    rest = httpx.Client(
        base_url=pd_url,
        headers={
            "Authorization": f"Token token={DEFAULT_API_TOKEN}",
            "Accept": "application/vnd.pagerduty+json;version=2",
        },
    )

    def subscribed() -> dict[str, Any] | None:
        subs = rest.get("/webhook_subscriptions").json()["webhook_subscriptions"]
        mine = [s for s in subs if s["delivery_method"]["url"] == relay_url + WEBHOOK_PATH]
        return mine[0] if mine else None

    subscription = wait_for(subscribed, 60, "a subscription delivering to the relay")
    assert subscription["filter"] == {"type": "team_reference", "id": TEAM}

    def relay_verifies() -> bool:
        answer = signed_probe(
            cluster, namespace, "conv-pd-webhook", relay_url, "incident.triggered"
        )
        return answer is not None and answer.status_code == 200

    wait_for(relay_verifies, 60, "the relay verifying the new subscription's secret")

    pdi = get_json(cluster, namespace, "pdi", "conv")
    assert pdi is not None
    webhook = pdi["status"]["bigPandaWebhook"]
    token_ref = next(h for h in webhook["headers"] if h["name"] == "Authorization")["valueFrom"]
    secret = get_json(cluster, namespace, "secret", token_ref["name"])
    assert secret is not None
    token = base64.b64decode(secret["data"][token_ref["key"]]).decode()
    headers = {"Authorization": f"Bearer {token}"}
    headers.update({h["name"]: h["value"] for h in webhook["headers"] if "valueFrom" not in h})
    bp.add_webhook_target(relay_url + "/v1/bigpanda/webhook", headers)

    incident = bp.open_incident(
        [
            {
                "status": "critical",
                "host": "db-1",
                "description": "disk full",
                "pd_routing_key": OVERRIDE_KEY,
            }
        ]
    )
    routed = wait_for(lambda: pd.incident_by_key(incident.id), 60, "PagerDuty incident")
    assert routed.service_id == "PSECOND"
    pd.resolve(routed.id)
    wait_for(lambda: not bp.incident(incident.id).active, 60, "BigPanda resolved")
    resolves = [
        r for r in bp.requests.entries if r.method == "POST" and r.path.endswith("/resolve")
    ]
    assert len(resolves) == 1
