"""Managed mode (issue 8): the operator keeps BigPanda's Webhook v2 integration pointing at
the relay, BigPanda shares through it, and it goes away with the integration."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
import yaml

from pagerbridge_devkit.localcluster.kubelet import ANNOTATION_URL, HarnessKubelet
from pagerbridge_devkit.sandbox.bigpanda import DEFAULT_API_TOKEN as BP_API_KEY
from pagerbridge_devkit.sandbox.bigpanda import BigPandaSimulator
from pagerbridge_devkit.sandbox.pagerduty import DEFAULT_ROUTING_KEY, PagerDutySimulator

from ..conftest import Cluster
from .conftest import OperatorProcess, condition, get_json, merge_patch, wait_for

pytestmark = pytest.mark.e2e

OVERRIDE_KEY = "0123456789abcdef0123456789abcdef"
INTEGRATION_ID = "webhook_v2.pb-managed"


def test_managed_webhook_lifecycle(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    kubelet: HarnessKubelet,
    pagerduty: tuple[PagerDutySimulator, str],
    bigpanda: tuple[BigPandaSimulator, str],
) -> None:
    pd, pd_url = pagerduty
    bp, bp_url = bigpanda
    docs = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "keys"},
            "stringData": {"routing-key": DEFAULT_ROUTING_KEY, "bp-user-key": BP_API_KEY},
        },
        {
            "apiVersion": "pagerbridge.io/v1alpha1",
            "kind": "PagerDutyIntegration",
            "metadata": {"name": "managed"},
            "spec": {
                "pagerDuty": {
                    "routingKey": {"name": "keys", "key": "routing-key"},
                    "eventsUrl": pd_url,
                },
                "bigPanda": {"apiUrl": bp_url},
                "sync": {"notes": False},
            },
        },
        {
            "apiVersion": "pagerbridge.io/v1alpha1",
            "kind": "PagerDutyKeyOverride",
            "metadata": {"name": "by-tag"},
            "spec": {"integrationRef": {"name": "managed"}, "tag": "pd_routing_key"},
        },
        {
            "apiVersion": "pagerbridge.io/v1alpha1",
            "kind": "PagerDutyTagMapping",
            "metadata": {"name": "fields"},
            "spec": {
                "integrationRef": {"name": "managed"},
                "mappings": [{"tag": "host", "field": "source"}],
            },
        },
    ]
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(docs))
    cluster.kubectl(
        "wait", "-n", namespace, "--for=condition=Ready", "pdi/managed", "--timeout=60s", timeout=70
    )
    relay_url = get_json(cluster, namespace, "deployment", "managed-relay")["metadata"][
        "annotations"
    ][ANNOTATION_URL]

    # Switch to Managed, with the relay's (local) address as its public URL.
    patch = {
        "spec": {
            "bigPanda": {
                "apiToken": {"name": "keys", "key": "bp-user-key"},
                "webhook": {"mode": "Managed", "integrationName": "pb-managed"},
            },
            "relay": {"publicUrl": relay_url},
        }
    }
    merge_patch(cluster, namespace, "pdi", "managed", patch)
    configured = wait_for(
        lambda: (
            condition(
                get_json(cluster, namespace, "pdi", "managed"), "BigPandaWebhookConfigured"
            ).get("status")
            == "True"
        ),
        30,
        "BigPandaWebhookConfigured",
    )
    assert configured
    stored = bp.integration(INTEGRATION_ID)
    assert stored is not None
    workflow = stored.workflow_config
    assert workflow.config.base_url == relay_url + "/v1/bigpanda/webhook"
    token_secret = get_json(cluster, namespace, "secret", "managed-relay-token")
    token = base64.b64decode(token_secret["data"]["token"]).decode()
    new_event = workflow.event_for("incident#new")
    assert new_event is not None
    assert new_event.authorization == f"Bearer {token}"
    assert '"x-bp-config-pdfield" : "pd_routing_key"' in (new_event.headers or "")
    assert '"x-bp-config-tag-host" : "source"' in (new_event.headers or "")
    status = get_json(cluster, namespace, "pdi", "managed")["status"]
    assert status["bigPandaWebhook"]["integrationId"] == INTEGRATION_ID

    # BigPanda shares through it; the override key and the mapped field reach PagerDuty.
    incident = bp.open_incident(
        [
            {
                "status": "critical",
                "host": "web-7",
                "pd_routing_key": OVERRIDE_KEY,
                "description": "5xx",
            }
        ]
    )
    try:
        found = wait_for(lambda: pd.incident_by_key(incident.id), 30, "PagerDuty incident")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; BigPanda deliveries: {bp.webhook_deliveries}") from None
    assert found.routing_key == OVERRIDE_KEY
    assert found.events[-1]["payload"]["source"] == "web-7"

    # A mapping change patches BigPanda's config exactly once (no write loop).
    bp.requests.clear()
    merge_patch(
        cluster,
        namespace,
        "pdtm",
        "fields",
        {
            "spec": {
                "mappings": [
                    {"tag": "host", "field": "source"},
                    {"tag": "team", "field": "group"},
                ]
            }
        },
    )
    wait_for(
        lambda: (
            '"x-bp-config-tag-team" : "group"'
            in (
                bp.integration(INTEGRATION_ID).workflow_config.event_for("incident#new").headers
                or ""
            )
        ),  # type: ignore[union-attr]
        30,
        "the mapping in BigPanda's headers",
    )
    # Three re-checks (each reads the integration once): a write loop would PATCH again.
    item = f"/resources/v2.1/integrations/{INTEGRATION_ID}"
    seen = len(bp.requests.matching("GET", item))
    wait_for(lambda: len(bp.requests.matching("GET", item)) >= seen + 3, 30, "three re-checks")
    patches = bp.requests.matching("PATCH", "/resources/v2.1/integrations")
    assert len(patches) == 1, [p.path for p in patches]

    # Token rotation on request: Secret gets old+new, BigPanda switches, old is dropped;
    # BigPanda never gets a 401 on the way.
    def tokens() -> list[str]:
        data = get_json(cluster, namespace, "secret", "managed-relay-token")["data"]["token"]
        return base64.b64decode(data).decode().split()

    cluster.kubectl("annotate", "-n", namespace, "pdi", "managed", "pagerbridge.io/rotate-token=r1")
    both = wait_for(lambda: len(tokens()) == 2 and tokens(), 30, "old and new token")
    assert both[0] == token
    rotated = both[1]
    sharing = bp.open_incident([{"status": "critical", "host": "web-8", "description": "during"}])
    wait_for(
        lambda: (
            bp.integration(INTEGRATION_ID).workflow_config.event_for("incident#new").authorization  # type: ignore[union-attr]
            == f"Bearer {rotated}"
        ),
        30,
        "BigPanda switched to the new token",
    )
    wait_for(lambda: tokens() == [rotated], 30, "old token dropped")
    after = bp.open_incident([{"status": "critical", "host": "web-9", "description": "after"}])
    for shared in (sharing, after):
        wait_for(lambda shared=shared: pd.incident_by_key(shared.id), 30, "shared incident")
    assert all(d.status != 401 for d in bp.webhook_deliveries), bp.webhook_deliveries
    token = rotated

    # BigPanda refusing the key: condition False, nothing deleted; fixed key: True again.
    merge_patch(
        cluster, namespace, "secret", "keys", {"stringData": {"bp-user-key": "not-a-valid-key"}}
    )
    refused = wait_for(
        lambda: (
            (
                c := condition(
                    get_json(cluster, namespace, "pdi", "managed"), "BigPandaWebhookConfigured"
                )
            ).get("reason")
            == "BigPandaUnauthorized"
            and c
        ),
        30,
        "BigPandaUnauthorized",
    )
    assert refused["status"] == "False"
    assert bp.integration(INTEGRATION_ID) is not None
    assert "not-a-valid-key" not in json.dumps(get_json(cluster, namespace, "pdi", "managed"))
    merge_patch(cluster, namespace, "secret", "keys", {"stringData": {"bp-user-key": BP_API_KEY}})
    cluster.kubectl(
        "wait", "-n", namespace, "--for=condition=Ready", "pdi/managed", "--timeout=60s", timeout=70
    )

    # Back to Manual: the operator removes what it made in BigPanda; Managed again: back.
    def set_mode(mode: str) -> None:
        body = {"spec": {"bigPanda": {"webhook": {"mode": mode}}}}
        merge_patch(cluster, namespace, "pdi", "managed", body)

    set_mode("Manual")
    wait_for(lambda: bp.integration(INTEGRATION_ID) is None, 30, "BigPanda integration removed")
    wait_for(
        lambda: (
            "integrationId"
            not in get_json(cluster, namespace, "pdi", "managed")["status"]["bigPandaWebhook"]
        ),
        30,
        "integrationId gone from status",
    )
    set_mode("Managed")
    wait_for(lambda: bp.integration(INTEGRATION_ID) is not None, 30, "BigPanda integration back")

    # Deleted in BigPanda behind our back: the periodic check recreates it.
    gone = httpx.delete(
        f"{bp_url}/resources/v2.1/integrations/{INTEGRATION_ID}",
        headers={"Authorization": f"Bearer {BP_API_KEY}"},
    )
    assert gone.status_code == 204
    wait_for(
        lambda: bp.integration(INTEGRATION_ID) is not None, 30, "BigPanda integration recreated"
    )

    # Deleting the integration deletes BigPanda's Webhook v2 integration (finalizer).
    cluster.kubectl("delete", "-n", namespace, "pdi", "managed", "--timeout=60s", timeout=70)
    assert bp.integration(INTEGRATION_ID) is None

    # No secret value in what a user or log collector sees.
    events = cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
    for value in (token, BP_API_KEY):
        assert value not in events
        assert value not in operator.log()
