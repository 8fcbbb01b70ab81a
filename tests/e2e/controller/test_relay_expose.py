"""spec.relay.expose against a real API server: the operator creates the relay's Ingress or
HTTPRoute (only the two webhook paths), derives the public URL from it, refuses what the
admin does not allow with a named reason, reports a missing Gateway API, and deletes the
object when the expose changes or goes.

The API server has no Gateway API: the test installs a minimal HTTPRoute CRD part-way
(and removes it at the end), as a cluster admin installing the Gateway API would.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pagerbridge.api.contract import BIGPANDA_WEBHOOK_PATH, PAGERDUTY_WEBHOOK_PATH
from pagerbridge_devkit.ports import free_port

from ..conftest import Cluster
from .conftest import (
    OperatorProcess,
    condition,
    get_json,
    integration,
    merge_patch,
    pd_secret,
    wait_for,
)

pytestmark = pytest.mark.e2e

HTTPROUTE_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {
        "name": "httproutes.gateway.networking.k8s.io",
        # *.k8s.io groups need it; the real Gateway API CRDs carry this one.
        "annotations": {
            "api-approved.kubernetes.io": "https://github.com/kubernetes-sigs/gateway-api/pull/2466"
        },
    },
    "spec": {
        "group": "gateway.networking.k8s.io",
        "names": {"kind": "HTTPRoute", "listKind": "HTTPRouteList", "plural": "httproutes",
                  "singular": "httproute"},
        "scope": "Namespaced",
        "versions": [{
            "name": "v1", "served": True, "storage": True,
            "schema": {"openAPIV3Schema": {
                "type": "object", "x-kubernetes-preserve-unknown-fields": True,
            }},
        }],
    },
}  # fmt: skip
PDI = "pagerdutyintegration"


@pytest.fixture
def exposing_operator(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> Iterator[OperatorProcess]:
    proc = OperatorProcess(
        cluster,
        namespace,
        tmp_path / "operator.log",
        free_port(),
        free_port(),
        extra_env={
            "PAGERBRIDGE_EXPOSE_INGRESS_CLASSES": "public",
            "PAGERBRIDGE_EXPOSE_GATEWAYS": "gateways/public",
            "PAGERBRIDGE_EXPOSE_HOST_SUFFIXES": "{namespace}.hooks.example.com",
        },
    )
    proc.start()
    yield proc
    proc.stop()


def _pdi(cluster: Cluster, namespace: str) -> dict[str, Any]:
    body: dict[str, Any] = get_json(cluster, namespace, PDI, "pay") or {}
    return body


def _exposed(name: str, pd_url: str, expose: dict[str, Any]) -> str:
    doc = yaml.safe_load(integration(name, pd_url))
    doc["spec"]["relay"] = {"expose": expose}
    return yaml.safe_dump(doc)


def test_relay_exposed_by_ingress_then_httproute_then_not_at_all(
    cluster: Cluster, namespace: str, exposing_operator: OperatorProcess, pagerduty: Any
) -> None:
    _, pd_url = pagerduty
    host = f"pay.{namespace}.hooks.example.com"
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=pd_secret())
    ingress_expose = {"ingress": {"host": host, "tls": {"secretName": "pay-tls"}}}
    cluster.kubectl(
        "apply", "-n", namespace, "-f", "-", input=_exposed("pay", pd_url, ingress_expose)
    )

    # 1. The Ingress: the two webhook paths, exact, to the relay Service; https from TLS.
    ingress = wait_for(
        lambda: get_json(cluster, namespace, "ingress", "pay-relay"), 60, "the relay Ingress"
    )
    assert ingress["spec"]["ingressClassName"] == "public"  # the admin's default class
    assert ingress["spec"]["tls"] == [{"hosts": [host], "secretName": "pay-tls"}]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == host
    assert sorted((p["path"], p["pathType"]) for p in rule["http"]["paths"]) == sorted(
        [(BIGPANDA_WEBHOOK_PATH, "Exact"), (PAGERDUTY_WEBHOOK_PATH, "Exact")]
    )
    for path in rule["http"]["paths"]:
        assert path["backend"]["service"] == {"name": "pay-relay", "port": {"number": 80}}
    assert ingress["metadata"]["ownerReferences"][0]["name"] == "pay"

    def reachable() -> dict[str, Any]:
        return condition(_pdi(cluster, namespace), "RelayPubliclyReachable")

    wait_for(lambda: reachable().get("reason") == "Ingress", 60, "RelayPubliclyReachable=Ingress")
    assert reachable()["status"] == "True"
    status = _pdi(cluster, namespace)["status"]
    assert status["relay"]["publicUrl"] == f"https://{host}"
    assert status["relay"]["exposedBy"] == "Ingress"
    assert status["bigPandaWebhook"]["url"] == f"https://{host}{BIGPANDA_WEBHOOK_PATH}"

    # 2. Another tenant's host: refused with a named reason, the Ingress left as it was.
    merge_patch(
        cluster, namespace, PDI, "pay",
        {"spec": {"relay": {"expose": {"ingress": {"host": "pay.other.hooks.example.com"}}}}},
    )  # fmt: skip
    ready = wait_for(
        lambda: (r := condition(_pdi(cluster, namespace))).get("reason") == "HostNotAllowed" and r,
        60,
        "Ready reason HostNotAllowed",
    )
    assert ready["status"] == "False"
    assert "relayPolicy.expose.hostSuffixes" in ready["message"]
    assert get_json(cluster, namespace, "ingress", "pay-relay")["spec"]["rules"][0]["host"] == host

    # 3. An HTTPRoute while the cluster has no Gateway API: a condition says so, and the
    #    Ingress of the previous spec is deleted.
    route_expose = {"ingress": None, "httpRoute": {"host": host}}
    merge_patch(cluster, namespace, PDI, "pay", {"spec": {"relay": {"expose": route_expose}}})
    wait_for(
        lambda: reachable().get("reason") == "GatewayAPINotInstalled",
        60,
        "RelayPubliclyReachable=GatewayAPINotInstalled",
    )
    assert reachable()["status"] == "False"
    wait_for(
        lambda: get_json(cluster, namespace, "ingress", "pay-relay") is None,
        60,
        "the Ingress deleted",
    )

    # 4. The admin installs the Gateway API: the HTTPRoute appears (periodic re-check).
    cluster.kubectl("apply", "-f", "-", input=json.dumps(HTTPROUTE_CRD))
    try:
        cluster.kubectl(
            "wait", "--for=condition=Established", "crd/httproutes.gateway.networking.k8s.io"
        )
        route = wait_for(
            lambda: get_json(cluster, namespace, "httproute", "pay-relay"), 90, "the HTTPRoute"
        )
        assert route["spec"]["hostnames"] == [host]
        assert route["spec"]["parentRefs"] == [
            {
                "group": "gateway.networking.k8s.io",
                "kind": "Gateway",
                "namespace": "gateways",
                "name": "public",
            }
        ]
        (route_rule,) = route["spec"]["rules"]
        assert sorted(m["path"]["value"] for m in route_rule["matches"]) == sorted(
            [BIGPANDA_WEBHOOK_PATH, PAGERDUTY_WEBHOOK_PATH]
        )
        assert {m["path"]["type"] for m in route_rule["matches"]} == {"Exact"}
        assert route_rule["backendRefs"] == [
            {"group": "", "kind": "Service", "name": "pay-relay", "port": 80}
        ]
        wait_for(lambda: reachable().get("reason") == "HTTPRoute", 60, "reachable by HTTPRoute")
        assert _pdi(cluster, namespace)["status"]["relay"]["exposedBy"] == "HTTPRoute"

        # 5. No expose: the HTTPRoute is deleted and the relay is cluster-internal again.
        merge_patch(cluster, namespace, PDI, "pay", {"spec": {"relay": {"expose": None}}})
        wait_for(
            lambda: get_json(cluster, namespace, "httproute", "pay-relay") is None,
            60,
            "the HTTPRoute deleted",
        )
        wait_for(lambda: reachable().get("reason") == "ClusterInternalUrl", 60, "cluster-internal")
        relay_status = _pdi(cluster, namespace)["status"]["relay"]
        assert "exposedBy" not in relay_status
        assert "publicUrl" not in relay_status  # no longer public: not left behind
    finally:
        cluster.kubectl(
            "delete", "crd", "httproutes.gateway.networking.k8s.io", "--ignore-not-found"
        )
