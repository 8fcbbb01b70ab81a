"""The chart's RBAC for spec.relay.expose, proven on a real API server: with
relayPolicy.expose allowing an ingress class, the operator (as the chart's ServiceAccount)
creates and deletes the relay's Ingress without a permission error; without the chart's
ingress rule the same reconcile hits one. (Kept apart from test_chart_rbac.py: the default
install grants nothing for ingresses, so its rule inventory is unchanged.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ..conftest import Cluster
from ..kube import get_json, merge_patch, wait_for
from .release import (
    ChartOperator,
    Release,
    can_i,
    install,
    minimal_example,
    permission_errors,
    rules_of,
    run_operator,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def exposing_release(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[Release]:
    yield from install(
        cluster, tmp_path,
        "--set", "rbac.scope=namespace",
        "--set", f"watchNamespaces={{{namespace}}}",
        "--set", "relayPolicy.expose.ingressClassNames={public}",
        "--set-json", 'relayPolicy.expose.hostSuffixes=["{namespace}.hooks.example.com"]',
    )  # fmt: skip


def _exposed_example(events_url: str, host: str) -> str:
    docs = list(yaml.safe_load_all(minimal_example(events_url)))
    for doc in docs:
        if doc["kind"] == "PagerDutyIntegration":
            doc["spec"]["relay"] = {"expose": {"ingress": {"host": host}}}
    return yaml.safe_dump_all(docs)


def test_ingress_rule_is_enough_and_needed(
    cluster: Cluster,
    namespace: str,
    exposing_release: Release,
    pd_url: str,
    chart_operator: list[ChartOperator],
    tmp_path: Path,
) -> None:
    release = exposing_release
    assert can_i(cluster, release, "create", "ingresses.networking.k8s.io", "-n", namespace)
    assert not can_i(
        cluster, release, "create", "httproutes.gateway.networking.k8s.io", "-n", namespace
    )
    host = f"minimal.{namespace}.hooks.example.com"
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=_exposed_example(pd_url, host))
    # The chart's Deployment carries the admin's bounds: run the operator with them.
    deployments = get_json(cluster, release.namespace, "deployments")
    (container,) = deployments["items"][0]["spec"]["template"]["spec"]["containers"]
    bounds = {
        e["name"]: e["value"]
        for e in container["env"]
        if e["name"].startswith("PAGERBRIDGE_EXPOSE_") and e.get("value")
    }
    assert bounds["PAGERBRIDGE_EXPOSE_INGRESS_CLASSES"] == "public"
    operator = run_operator(chart_operator, release, tmp_path / "operator.log", **bounds)
    ingress = wait_for(
        lambda: get_json(cluster, namespace, "ingress", "minimal-relay"), 60, "the Ingress"
    )
    assert ingress["spec"]["rules"][0]["host"] == host
    merge_patch(cluster, namespace, "pdi", "minimal", {"spec": {"relay": {"expose": None}}})
    wait_for(
        lambda: get_json(cluster, namespace, "ingress", "minimal-relay") is None,
        60,
        "the Ingress deleted",
    )
    assert not permission_errors(operator.log())

    # Without the chart's ingress rule: a permission error.
    rules = rules_of(cluster, release)
    (index,) = [i for i, r in enumerate(rules) if "ingresses" in r["resources"]]
    cluster.kubectl(
        "patch", release.role_kind, release.role_name, "-n", str(release.role_namespace),
        "--type=json", "-p", json.dumps([{"op": "remove", "path": f"/rules/{index}"}]),
    )  # fmt: skip
    wait_for(
        lambda: (
            not can_i(cluster, release, "create", "ingresses.networking.k8s.io", "-n", namespace)
        ),
        10,
        "RBAC to stop granting ingresses",
    )
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=_exposed_example(pd_url, host))
    line = wait_for(lambda: permission_errors(operator.log()), 45, "a permission error")
    assert "ingresses" in line[0]
