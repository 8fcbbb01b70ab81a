"""Never adopt (issue 18, item 4) against the real API server (with its garbage collector)
and the real operator process: objects named like our children are never modified nor
deleted, tenants whose old-style names collide get distinct BigPanda integrations, and
another tenant's BigPanda integration and PagerDuty subscription are never touched (the
simulators' request logs show every call)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from pagerbridge.api.contract import PAGERDUTY_WEBHOOK_PATH
from pagerbridge.controller.external.bigpanda_integration import OWNER_HEADER
from pagerbridge_devkit.ports import free_port
from pagerbridge_devkit.sandbox.bigpanda import DEFAULT_API_TOKEN as BP_API_KEY
from pagerbridge_devkit.sandbox.bigpanda import BigPandaSimulator
from pagerbridge_devkit.sandbox.pagerduty import (
    DEFAULT_API_TOKEN,
    DEFAULT_ROUTING_KEY,
    DEFAULT_SERVICE_ID,
    PagerDutySimulator,
)

from ..conftest import Cluster
from .conftest import OperatorProcess, condition, get_json, wait_for

pytestmark = pytest.mark.e2e

PUBLIC = "https://relay.example.com"
INTEGRATIONS = "/resources/v2.1/integrations"


def apply(cluster: Cluster, namespace: str, *docs: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(docs))


def keys() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "keys"},
        "stringData": {
            "routing-key": DEFAULT_ROUTING_KEY,
            "pd-api": DEFAULT_API_TOKEN,
            "bp-api": BP_API_KEY,
        },
    }


def pdi(name: str, pd_url: str, bp_url: str | None = None, **pager_duty: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "pagerDuty": {
            "routingKey": {"name": "keys", "key": "routing-key"},
            "eventsUrl": pd_url,
            **pager_duty,
        },
        "sync": {"notes": False},
        "relay": {"publicUrl": PUBLIC},
    }
    if bp_url is not None:
        spec["bigPanda"] = {
            "apiUrl": bp_url,
            "apiToken": {"name": "keys", "key": "bp-api"},
            "webhook": {"mode": "Managed"},
        }
    return {
        "apiVersion": "pagerbridge.io/v1alpha1",
        "kind": "PagerDutyIntegration",
        "metadata": {"name": name},
        "spec": spec,
    }


def users_objects(name: str) -> list[dict[str, Any]]:
    """A user's own ConfigMap, Service and Deployment that happen to have our names."""
    labels = {"app": "users-own"}
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "labels": labels},
            "data": {"owner": "the user"},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "labels": labels},
            "spec": {"type": "ClusterIP", "selector": labels, "ports": [{"port": 9999}]},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "app", "image": "example.com/users:1"}]},
                },
            },
        },
    ]


def with_managers(cluster: Cluster, namespace: str, kind: str, name: str) -> dict[str, Any]:
    """The object with its managedFields (``kubectl get`` hides them by default)."""
    result = cluster.kubectl(
        "get", "-n", namespace, kind, name, "--show-managed-fields", "-o", "json", check=False
    )
    assert result.returncode == 0, f"{kind} {name} is gone: {result.stderr}"
    body: dict[str, Any] = json.loads(result.stdout)
    return body


def snapshot(cluster: Cluster, namespace: str, kind: str, name: str) -> dict[str, Any]:
    """Everything a takeover would change: version, content, labels, owners, managers."""
    body = with_managers(cluster, namespace, kind, name)
    meta = body["metadata"]
    return {
        "uid": meta["uid"],
        "resourceVersion": meta["resourceVersion"],
        "labels": meta.get("labels"),
        "ownerReferences": meta.get("ownerReferences"),
        "managers": sorted(e["manager"] for e in meta.get("managedFields") or []),
        "content": {k: v for k, v in body.items() if k in ("data", "spec")},
    }


def test_pre_existing_children_are_never_modified_nor_collected(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    pagerduty: tuple[PagerDutySimulator, str],
) -> None:
    _, pd_url = pagerduty
    # "pay": a ConfigMap, Service and Deployment of the user's are named pay-relay.
    # "solo": only the Deployment solo-relay is the user's; the other children are free.
    apply(cluster, namespace, *users_objects("pay-relay"))
    apply(cluster, namespace, users_objects("solo-relay")[2])
    theirs = [("configmap", "pay-relay"), ("service", "pay-relay"), ("deployment", "pay-relay"),
              ("deployment", "solo-relay")]  # fmt: skip
    before = {what: snapshot(cluster, namespace, *what) for what in theirs}
    apply(cluster, namespace, keys(), pdi("pay", pd_url), pdi("solo", pd_url))

    def conflicted(name: str) -> dict[str, Any]:
        return condition(get_json(cluster, namespace, "pdi", name))

    for name in ("pay", "solo"):
        wait_for(lambda n=name: conflicted(n).get("reason") == "NameConflict", 60, f"{name}")
    pay, solo = conflicted("pay"), conflicted("solo")
    assert pay["status"] == solo["status"] == "False"
    assert f"ConfigMap {namespace}/pay-relay" in pay["message"]
    assert f"Service {namespace}/pay-relay" in pay["message"]
    assert f"Deployment {namespace}/solo-relay" in solo["message"]
    for message in (pay["message"], solo["message"]):
        assert DEFAULT_ROUTING_KEY not in message
    # solo's own children exist (created), owned by solo; theirs are exactly as before.
    solo_uid = get_json(cluster, namespace, "pdi", "solo")["metadata"]["uid"]
    created = with_managers(cluster, namespace, "configmap", "solo-relay")["metadata"]
    assert [ref["uid"] for ref in created["ownerReferences"]] == [solo_uid]
    # created by POST, then its fields handed to our server-side apply field manager (so a
    # field later dropped from the rendered manifest is pruned by the next apply)
    entries = [(e["manager"], e["operation"]) for e in created["managedFields"]]
    assert entries == [("pagerbridge", "Apply")]
    # Several resyncs (every 3 s here) later, still untouched.
    wait_for(lambda: _resynced(operator), 60, "periodic resyncs")
    assert {what: snapshot(cluster, namespace, *what) for what in theirs} == before

    # Deleting the integrations: the garbage collector removes what is ours (proof that
    # it ran) and leaves theirs.
    cluster.kubectl("delete", "-n", namespace, "pdi", "pay", "solo", "--wait=true", timeout=90)
    for ours in (("secret", "pay-relay-token"), ("configmap", "solo-relay"),
                 ("service", "solo-relay"), ("secret", "solo-relay-token")):  # fmt: skip
        wait_for(lambda w=ours: get_json(cluster, namespace, *w) is None, 90, f"GC of {ours}")
    assert {what: snapshot(cluster, namespace, *what) for what in theirs} == before


def _resynced(operator: OperatorProcess) -> bool:
    """At least one periodic resync (PAGERBRIDGE_RESYNC_SECONDS=3) was counted."""
    metrics = httpx.get(f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=5).text
    for line in metrics.splitlines():
        if line.startswith("pagerbridge_operator_resyncs_total"):
            return float(line.split()[-1]) >= 4
    return False


def bigpanda_integration(bp_url: str, name: str, base_url: str, headers: str) -> None:
    body = {
        "name": name,
        "parent_system_id": "webhook_v2",
        "workflow_config": {
            "config": {"base_url": base_url},
            "events": [
                {"trigger": "incident#new", "enabled": True, "method": "POST", "headers": headers}
            ],
        },
    }
    response = httpx.post(
        f"{bp_url}{INTEGRATIONS}", json=body, headers={"Authorization": f"Bearer {BP_API_KEY}"}
    )
    assert response.status_code == 201, response.text


def test_tenants_with_colliding_old_names_get_distinct_bigpanda_integrations(
    cluster: Cluster,
    namespace: str,
    tmp_path: Path,
    pagerduty: tuple[PagerDutySimulator, str],
    bigpanda: tuple[BigPandaSimulator, str],
) -> None:
    """``<ns>``/``a-x`` and ``<ns>-a``/``x`` were both ``pagerbridge-<ns>-a-x``."""
    bp, bp_url = bigpanda
    _, pd_url = pagerduty
    other = f"{namespace}-a"
    cluster.kubectl("create", "namespace", other)
    operator = OperatorProcess(cluster, namespace, tmp_path / "operator.log", free_port(),
                               free_port(), extra_namespaces=[other])  # fmt: skip
    operator.start()
    try:
        apply(cluster, namespace, keys(), pdi("a-x", pd_url, bp_url))
        apply(cluster, other, keys(), pdi("x", pd_url, bp_url))

        def configured(ns: str, name: str) -> dict[str, Any] | None:
            body = get_json(cluster, ns, "pdi", name)
            if condition(body, "BigPandaWebhookConfigured").get("status") != "True":
                return None
            return dict(body)

        one = wait_for(lambda: configured(namespace, "a-x"), 90, "a-x configured")
        two = wait_for(lambda: configured(other, "x"), 90, "x configured")
        ids = [b["status"]["bigPandaWebhook"]["integrationId"] for b in (one, two)]
        assert ids[0] != ids[1]
        assert all(i.startswith(f"webhook_v2.pagerbridge-{namespace}-a-x-") for i in ids)
        for body, ident in zip((one, two), ids, strict=True):
            stored = bp.integration(ident)
            assert stored is not None
            headers = json.dumps(stored.workflow_config.model_dump())
            assert f"/{body['metadata']['uid']}" in headers
            assert OWNER_HEADER in headers
        listed = httpx.get(
            f"{bp_url}{INTEGRATIONS}", headers={"Authorization": f"Bearer {BP_API_KEY}"}
        ).json()
        assert {f"webhook_v2.{i['name']}" for i in listed} == set(ids)
    finally:
        operator.stop()
        cluster.kubectl("delete", "namespace", other, "--wait=false", check=False)


def test_another_tenants_external_objects_are_never_touched(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    pagerduty: tuple[PagerDutySimulator, str],
    bigpanda: tuple[BigPandaSimulator, str],
) -> None:
    pd, pd_url = pagerduty
    bp, bp_url = bigpanda
    # Another tenant's: a BigPanda integration by the name ours asks for, and a PagerDuty
    # subscription delivering to the same URL and service.
    bigpanda_integration(bp_url, "shared", "https://theirs.example.com/hook",
                         f'"{OWNER_HEADER}" : "other-cluster/{uuid.uuid4()}"')  # fmt: skip
    before = bp.integration("webhook_v2.shared")
    foreign, _ = pd.create_subscription(
        PUBLIC + PAGERDUTY_WEBHOOK_PATH, DEFAULT_SERVICE_ID, description="another tenant's"
    )
    manifest = pdi(
        "pay",
        pd_url,
        bp_url,
        apiToken={"name": "keys", "key": "pd-api"},
        serviceId=DEFAULT_SERVICE_ID,
        apiUrl=pd_url,
    )
    manifest["spec"]["bigPanda"]["webhook"]["integrationName"] = "shared"
    manifest["spec"]["bigPanda"]["environmentId"] = "env1"
    apply(cluster, namespace, keys(), manifest)

    def status(type_: str) -> dict[str, Any]:
        return condition(get_json(cluster, namespace, "pdi", "pay"), type_)

    wait_for(lambda: status("BigPandaWebhookConfigured").get("reason") == "NameConflict", 90)
    wait_for(lambda: status("SubscriptionReady").get("status") == "True", 90)
    assert "webhook_v2.shared" in status("BigPandaWebhookConfigured")["message"]
    assert status("Ready")["status"] == "False"
    ours = [s for s in pd.webhook_subscription_ids() if s != foreign]
    assert len(ours) == 1
    wait_for(lambda: _verified_twice(pd), 60, "periodic subscription checks")

    cluster.kubectl("delete", "-n", namespace, "pdi", "pay", "--wait=true", timeout=90)
    assert pd.webhook_subscription_ids() == [foreign]  # ours deleted by the finalizer
    for method in ("PUT", "PATCH", "DELETE"):
        assert not pd.requests.matching(method, f"/webhook_subscriptions/{foreign}")
        assert not bp.requests.matching(method, f"{INTEGRATIONS}/webhook_v2.shared")
    assert bp.integration("webhook_v2.shared") == before


def _verified_twice(pd: PagerDutySimulator) -> bool:
    """The operator listed the subscriptions at least twice (verifications ran)."""
    return len(pd.requests.matching("GET", "/webhook_subscriptions")) >= 2
