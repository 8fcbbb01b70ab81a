"""The chart's RBAC for relayPolicy.networkPolicy, proven on a real API server: with the
switch on, the operator (as the chart's ServiceAccount, with the chart's environment)
writes each relay's NetworkPolicy without a permission error; without the chart's
networkpolicies rule the same reconcile hits one. (Apart from test_chart_rbac.py: the
default install grants nothing for networkpolicies.)

The API server stores the policy; whether traffic obeys it is the CNI's business (the real
node's ``bridge`` plugin enforces none): what it admits is tested on the rendered policy,
tests/unit/chart/test_chart_relay_network_policy.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pagerbridge.api.contract import RELAY_INTERNAL_PORT, RELAY_PUBLIC_PORT
from pagerbridge.controller.policy.network import ENV

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
def fenced_release(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[Release]:
    yield from install(
        cluster, tmp_path,
        "--set", "rbac.scope=namespace",
        "--set", f"watchNamespaces={{{namespace}}}",
        "--set", "relayPolicy.networkPolicy.enabled=true",
        "--set-json", 'relayPolicy.networkPolicy.internal.from=[{"namespaceSelector": '
        '{"kubernetes.io/metadata.name": "monitoring"}}]',
        "--set", "relayPolicy.networkPolicy.internal.apiServerCIDRs={127.0.0.1/32}",
    )  # fmt: skip


def test_network_policy_rule_is_enough_and_needed(
    cluster: Cluster,
    namespace: str,
    fenced_release: Release,
    pd_url: str,
    chart_operator: list[ChartOperator],
    tmp_path: Path,
) -> None:
    release = fenced_release
    assert can_i(cluster, release, "create", "networkpolicies.networking.k8s.io", "-n", namespace)
    assert not can_i(cluster, release, "delete", "networkpolicies.networking.k8s.io")
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=minimal_example(pd_url))
    deployments = get_json(cluster, release.namespace, "deployments")
    (container,) = deployments["items"][0]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"] if e["name"] == ENV}
    operator = run_operator(chart_operator, release, tmp_path / "operator.log", **env)
    policy = wait_for(
        lambda: get_json(cluster, namespace, "networkpolicy", "minimal-relay"),
        60,
        "the relay's NetworkPolicy",
    )
    public, internal = policy["spec"]["ingress"]
    assert public["ports"] == [{"protocol": "TCP", "port": RELAY_PUBLIC_PORT}]
    assert "from" not in public
    assert internal["ports"] == [{"protocol": "TCP", "port": RELAY_INTERNAL_PORT}]
    assert internal["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}},
        {"ipBlock": {"cidr": "127.0.0.1/32"}},
    ]
    assert policy["metadata"]["ownerReferences"][0]["kind"] == "PagerDutyIntegration"
    assert not permission_errors(operator.log())

    # Without the chart's networkpolicies rule: a permission error.
    rules = rules_of(cluster, release)
    (index,) = [i for i, r in enumerate(rules) if "networkpolicies" in r["resources"]]
    cluster.kubectl(
        "patch", release.role_kind, release.role_name, "-n", str(release.role_namespace),
        "--type=json", "-p", json.dumps([{"op": "remove", "path": f"/rules/{index}"}]),
    )  # fmt: skip
    wait_for(
        lambda: (
            not can_i(cluster, release, "get", "networkpolicies.networking.k8s.io", "-n", namespace)
        ),
        10,
        "RBAC to stop granting networkpolicies",
    )
    cluster.kubectl("delete", "networkpolicy", "minimal-relay", "-n", namespace)
    merge_patch(cluster, namespace, "pdi", "minimal", {"spec": {"sync": {"resolve": False}}})
    line = wait_for(lambda: permission_errors(operator.log()), 45, "a permission error")
    assert "networkpolicies" in line[0]
