"""examples/ → operator → Deployment → relay (harness kubelet) → BigPanda sim → PagerDuty sim."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
import yaml

from pagerbridge_devkit.localcluster.kubelet import ANNOTATION_PID, ANNOTATION_URL, HarnessKubelet
from pagerbridge_devkit.sandbox.bigpanda import BigPandaSimulator
from pagerbridge_devkit.sandbox.pagerduty import DEFAULT_ROUTING_KEY, PagerDutySimulator

from ..conftest import REPO, Cluster
from .conftest import OperatorProcess, condition, get_json, merge_patch, wait_for

pytestmark = pytest.mark.e2e


def example(name: str, pd_url: str) -> str:
    """An example manifest with sandbox values in place of the placeholders."""
    docs = list(yaml.safe_load_all((REPO / "examples" / name).read_text()))
    for doc in docs:
        if doc["kind"] == "Secret":
            doc["stringData"] = {k: DEFAULT_ROUTING_KEY for k in doc["stringData"]}
        if doc["kind"] == "PagerDutyIntegration":
            doc["spec"]["pagerDuty"]["eventsUrl"] = pd_url
    return yaml.safe_dump_all(docs)


def apply(cluster: Cluster, namespace: str, manifest: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=manifest)


def deployment(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    body = get_json(cluster, namespace, "deployment", name)
    assert body is not None
    return dict(body)


def test_examples_reach_pagerduty_and_mapping_hot_reloads(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    kubelet: HarnessKubelet,
    pagerduty: tuple[PagerDutySimulator, str],
    bigpanda: tuple[BigPandaSimulator, str],
) -> None:
    pd, pd_url = pagerduty
    bp, _ = bigpanda
    apply(cluster, namespace, example("02-override-and-mappings.yaml", pd_url))
    cluster.kubectl(
        "wait", "-n", namespace, "--for=condition=Ready", "pdi/routed", "--timeout=90s", timeout=100
    )
    pdi = get_json(cluster, namespace, "pdi", "routed")
    assert (
        pdi["status"]["observedGeneration"] == pdi["metadata"]["generation"] == 1
    )  # spec untouched
    assert "kopf" not in pdi["status"]  # kopf's bookkeeping stays in annotations
    assert not [k for k in pdi["metadata"].get("annotations", {}) if "kopf.zalando.org" in k]
    webhook = pdi["status"]["bigPandaWebhook"]
    headers = {h["name"]: h for h in webhook["headers"]}
    assert headers["x-bp-config-pdfield"]["value"] == "pd_routing_key"
    assert headers["x-bp-config-tag-host"]["value"] == "source"
    token_ref = headers["Authorization"]["valueFrom"]
    assert (
        "value" not in headers["Authorization"] or "Bearer <" in headers["Authorization"]["value"]
    )
    for ref_kind, ref_name in (("pdko", "routed-by-tag"), ("pdtm", "routed-fields")):
        assert condition(get_json(cluster, namespace, ref_kind, ref_name))["reason"] == "Applied"

    # BigPanda shares an incident through the webhook configuration from the status.
    secret = get_json(cluster, namespace, "secret", token_ref["name"])
    token = base64.b64decode(secret["data"][token_ref["key"]]).decode()
    dep = deployment(cluster, namespace, "routed-relay")
    relay_url = dep["metadata"]["annotations"][ANNOTATION_URL]
    pid = dep["metadata"]["annotations"][ANNOTATION_PID]
    generation = dep["metadata"]["generation"]
    target_headers = {"Authorization": f"Bearer {token}"}
    target_headers.update(
        {h["name"]: h["value"] for h in webhook["headers"] if "valueFrom" not in h}
    )
    bp.add_webhook_target(relay_url + "/v1/bigpanda/webhook", target_headers)
    first = bp.open_incident(
        [
            {
                "status": "critical",
                "host": "db-1",
                "service": "payments",
                "team": "core",
                "description": "disk full",
                "runbook_url": "https://wiki.example.com/runbooks/disk",
            }
        ]
    )
    incident = wait_for(lambda: pd.incident_by_key(first.id), 30, "PagerDuty incident")
    payload = incident.events[-1]["payload"]
    assert payload["source"] == "db-1"
    assert payload["component"] == "payments"
    # The example mapping's links and images, built from the alert's tags.
    dashboard = "https://grafana.example.com/d/hosts?var-host=db-1"
    assert incident.links[1:] == [
        {"href": "https://wiki.example.com/runbooks/disk", "text": "Runbook"},
        {"href": dashboard, "text": "Host dashboard"},
    ]
    assert incident.images == [
        {
            "src": "https://grafana.example.com/render/d-solo/hosts?panelId=2&var-host=db-1",
            "href": dashboard,
            "alt": "CPU of the host",
        }
    ]

    # A new mapping while running: ConfigMap changes, pods do not roll, the relay uses it.
    apply(
        cluster,
        namespace,
        yaml.safe_dump(
            {
                "apiVersion": "pagerbridge.io/v1alpha1",
                "kind": "PagerDutyTagMapping",
                "metadata": {"name": "routed-group"},
                "spec": {
                    "integrationRef": {"name": "routed"},
                    "mappings": [{"tag": "team", "field": "group"}],
                },
            }
        ),
    )
    wait_for(
        lambda: (
            '"group"'
            in (get_json(cluster, namespace, "configmap", "routed-relay") or {})
            .get("data", {})
            .get("relay.json", "")
        ),
        30,
        "the ConfigMap to carry the new mapping",
    )

    def grouped() -> bool:
        incident = bp.open_incident(
            [{"status": "critical", "host": "db-2", "team": "core", "description": "x"}]
        )
        found = wait_for(lambda: pd.incident_by_key(incident.id), 30, "incident")
        return found.events[-1]["payload"].get("group") == "core"

    wait_for(grouped, 30, "the relay to use the new mapping")
    dep = deployment(cluster, namespace, "routed-relay")
    assert dep["metadata"]["annotations"][ANNOTATION_PID] == pid, "relay was restarted"
    assert dep["metadata"]["generation"] == generation, "Deployment was rolled"

    # A rotated Secret reaches the running relay as a file update: no restart.
    rotated = "0123456789abcdef0123456789abcdef"
    merge_patch(
        cluster, namespace, "secret", "pagerduty-routing", {"stringData": {"routing-key": rotated}}
    )

    def rotated_key_used() -> bool:
        incident = bp.open_incident([{"status": "critical", "host": "db-3", "description": "y"}])
        found = wait_for(lambda: pd.incident_by_key(incident.id), 30, "incident")
        return bool(found.routing_key == rotated)

    wait_for(rotated_key_used, 40, "the relay to use the rotated routing key")
    assert (
        deployment(cluster, namespace, "routed-relay")["metadata"]["annotations"][ANNOTATION_PID]
        == pid
    )

    # No secret value anywhere a user or log collector would see it.
    events = cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
    config_maps = cluster.kubectl("get", "configmaps", "-n", namespace, "-o", "json").stdout
    statuses = json.dumps([get_json(cluster, namespace, kind) for kind in ("pdi", "pdko", "pdtm")])
    for value in (DEFAULT_ROUTING_KEY, rotated, token):
        for where, text in (
            ("events", events),
            ("configmaps", config_maps),
            ("status", statuses),
            ("operator log", operator.log()),
        ):
            assert value not in text, f"secret value leaked into {where}"

    # Liveness and metrics.
    assert httpx.get(f"http://127.0.0.1:{operator.liveness_port}/healthz").status_code == 200
    metrics = httpx.get(f"http://127.0.0.1:{operator.metrics_port}/metrics").text
    assert "pagerbridge_operator_reconciles_total" in metrics

    # webhook-config prints it ready to paste (token only with --reveal).
    import sys
    from subprocess import run

    shown = run(
        [sys.executable, "-m", "pagerbridge", "webhook-config", "routed", "-n", namespace],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert shown.returncode == 0, shown.stderr
    assert "x-bp-config-tag-host: source" in shown.stdout
    # No relay.publicUrl: the same warning as the status condition, on stderr.
    internal = condition(get_json(cluster, namespace, "pdi", "routed"), "RelayPubliclyReachable")
    assert internal["reason"] == "ClusterInternalUrl"
    assert f"warning: {internal['message']}" in shown.stderr
    assert token not in shown.stdout
    revealed = run(
        [
            sys.executable,
            "-m",
            "pagerbridge",
            "webhook-config",
            "routed",
            "-n",
            namespace,
            "--reveal",
        ],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert f"Authorization: Bearer {token}" in revealed.stdout
