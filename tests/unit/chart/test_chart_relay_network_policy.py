"""relayPolicy.networkPolicy: the chart's values reach the operator
(PAGERBRIDGE_RELAY_NETWORK_POLICY), which renders one NetworkPolicy per relay; the RBAC
rule comes with the switch.

The rendered policy is checked by what it lets through, evaluated here the way a CNI that
enforces NetworkPolicy does (ingress rules OR'ed, peers OR'ed, ports per rule, namespace
and pod labels, address blocks): with the policy on, a pod in another namespace (or any
address but the API server's) cannot reach the internal port while the public port works
from everywhere. The real node's CNI (hack/node, the plain ``bridge`` plugin with
host-local IPAM) enforces no NetworkPolicy, so this is a rendered-policy test only.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from chart.helm_tools import Helm, of_kind, one
from pagerbridge.api import PagerDutyIntegrationSpec
from pagerbridge.api.contract import RELAY_INTERNAL_PORT, RELAY_PUBLIC_PORT
from pagerbridge.controller.policy.network import ENV, RelayNetworkPolicy
from pagerbridge.controller.render.children import Owner, RenderSettings, render_children
from pagerbridge.controller.render.compile import Compiled, SecretInfo, compile_relay_config
from pagerbridge.controller.settings import SettingsError, relay_network_policy

API_SERVER = "172.18.0.2"
MONITORING = {"kubernetes.io/metadata.name": "monitoring"}
PROMETHEUS = {"app.kubernetes.io/name": "prometheus"}


def _policy_from_chart(helm: Helm, tmp_path: Path, values: dict[str, Any]) -> RelayNetworkPolicy:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump({"relayPolicy": {"networkPolicy": values}}))
    (container,) = one(helm.render("-f", str(path)), "Deployment")["spec"]["template"]["spec"][
        "containers"
    ]
    env = {item["name"]: item.get("value") for item in container["env"]}
    return relay_network_policy(env.get(ENV))


def _compiled() -> tuple[PagerDutyIntegrationSpec, Compiled]:
    spec = PagerDutyIntegrationSpec.model_validate(
        {
            "pagerDuty": {"routingKey": {"name": "pd", "key": "routing-key"}},
            "sync": {"notes": False},
        }
    )
    secrets = {
        "pd": SecretInfo(
            keys=frozenset({"routing-key"}), routing_key_shaped=frozenset({"routing-key"})
        )
    }
    return spec, compile_relay_config(
        "team-a", "payments", spec, [], [], secrets, webhook_secret=False
    )


def _render(policy: RelayNetworkPolicy) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the relay NetworkPolicy, the relay Deployment) the operator renders."""
    spec, compiled = _compiled()
    children = render_children(
        Owner("team-a", "payments", "uid-1"),
        spec,
        compiled,
        RenderSettings(image="example/pagerbridge:1", network_policy=policy),
    )
    assert children.network_policy is not None
    applied = children.applied()
    # Written before the Deployment: a relay pod never runs unfenced.
    assert applied.index(children.network_policy) < applied.index(children.deployment)
    return children.network_policy, children.deployment


@dataclass(frozen=True)
class Source:
    ip: str
    namespace_labels: dict[str, str] = field(default_factory=dict)
    pod_labels: dict[str, str] | None = None  # None: not a pod (the API server, the internet)


def _matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def _peer_admits(peer: dict[str, Any], source: Source) -> bool:
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        ip = ipaddress.ip_address(source.ip)
        inside = ip in ipaddress.ip_network(block["cidr"])
        return inside and not any(ip in ipaddress.ip_network(x) for x in block.get("except", []))
    if source.pod_labels is None:
        return False  # selectors match pods only
    if "namespaceSelector" in peer and not _matches(
        peer["namespaceSelector"], source.namespace_labels
    ):
        return False
    if "namespaceSelector" not in peer and source.namespace_labels != {
        "kubernetes.io/metadata.name": "team-a"
    }:
        return False  # a podSelector alone: the policy's own namespace
    return "podSelector" not in peer or _matches(peer["podSelector"], source.pod_labels)


def admitted(policy: dict[str, Any], pod_labels: dict[str, str], source: Source, port: int) -> bool:
    spec = policy["spec"]
    if not _matches(spec["podSelector"], pod_labels) or "Ingress" not in spec["policyTypes"]:
        return True  # not selected: this policy says nothing
    for rule in spec.get("ingress", []):
        ports = rule.get("ports")
        if ports and not any(p["port"] == port for p in ports):
            continue
        peers = rule.get("from")
        if not peers or any(_peer_admits(peer, source) for peer in peers):
            return True
    return False


OTHER_TENANT = Source("10.244.0.7", {"kubernetes.io/metadata.name": "team-b"}, {"app": "x"})
SAME_NAMESPACE = Source("10.244.0.8", {"kubernetes.io/metadata.name": "team-a"}, {"app": "y"})
PROMETHEUS_POD = Source("10.244.0.9", MONITORING, PROMETHEUS)
OTHER_MONITORING_POD = Source("10.244.0.10", MONITORING, {"app": "grafana"})
API = Source(API_SERVER)
INTERNET = Source("203.0.113.5")


def test_with_the_policy_on_only_the_named_peers_reach_the_internal_port(
    helm: Helm, tmp_path: Path
) -> None:
    policy = _policy_from_chart(
        helm,
        tmp_path,
        {
            "enabled": True,
            "internal": {
                "from": [{"namespaceSelector": MONITORING, "podSelector": PROMETHEUS}],
                "apiServerCIDRs": [f"{API_SERVER}/32"],
            },
        },
    )
    rendered, deployment = _render(policy)
    assert rendered["metadata"]["name"] == deployment["metadata"]["name"]
    assert rendered["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    pod = deployment["spec"]["template"]["metadata"]["labels"]
    internal, public = RELAY_INTERNAL_PORT, RELAY_PUBLIC_PORT
    for source in (OTHER_TENANT, SAME_NAMESPACE, OTHER_MONITORING_POD, INTERNET):
        assert not admitted(rendered, pod, source, internal), source
        assert admitted(rendered, pod, source, public), source  # the webhooks still work
    for source in (PROMETHEUS_POD, API):
        assert admitted(rendered, pod, source, internal), source
    # Another integration's relay in the same namespace is not selected by this policy.
    assert rendered["spec"]["podSelector"]["matchLabels"].items() <= pod.items()
    assert rendered["spec"]["policyTypes"] == ["Ingress"]


def test_nothing_named_means_nothing_reaches_the_internal_port(helm: Helm, tmp_path: Path) -> None:
    rendered, deployment = _render(_policy_from_chart(helm, tmp_path, {"enabled": True}))
    pod = deployment["spec"]["template"]["metadata"]["labels"]
    for source in (OTHER_TENANT, SAME_NAMESPACE, PROMETHEUS_POD, API, INTERNET):
        assert not admitted(rendered, pod, source, RELAY_INTERNAL_PORT), source
        assert admitted(rendered, pod, source, RELAY_PUBLIC_PORT), source


def test_the_public_port_from_where_the_admin_allows(helm: Helm, tmp_path: Path) -> None:
    ingress = {"kubernetes.io/metadata.name": "ingress-nginx"}
    rendered, deployment = _render(
        _policy_from_chart(
            helm,
            tmp_path,
            {"enabled": True, "public": {"from": [{"namespaceSelector": ingress}]}},
        )
    )
    pod = deployment["spec"]["template"]["metadata"]["labels"]
    controller = Source("10.244.1.2", ingress, {"app": "controller"})
    assert admitted(rendered, pod, controller, RELAY_PUBLIC_PORT)
    for source in (OTHER_TENANT, INTERNET):
        assert not admitted(rendered, pod, source, RELAY_PUBLIC_PORT), source


def test_off_by_default_no_policy_no_rbac(helm: Helm, tmp_path: Path) -> None:
    assert _policy_from_chart(helm, tmp_path, {}) == RelayNetworkPolicy()
    spec, compiled = _compiled()
    children = render_children(
        Owner("team-a", "payments", "uid-1"), spec, compiled, RenderSettings(image="x:1")
    )
    assert children.network_policy is None
    assert all(m["kind"] != "NetworkPolicy" for m in children.applied())


def _network_policy_rules(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    roles = of_kind(objects, "ClusterRole") + of_kind(objects, "Role")
    return [
        rule
        for role in roles
        for rule in role.get("rules", [])
        if "networkpolicies" in rule.get("resources", [])
    ]


def test_the_rbac_rule_comes_with_the_switch(helm: Helm) -> None:
    assert _network_policy_rules(helm.render()) == []
    rules = _network_policy_rules(helm.render("--set", "relayPolicy.networkPolicy.enabled=true"))
    assert rules
    for rule in rules:
        assert rule["apiGroups"] == ["networking.k8s.io"]
        assert sorted(rule["verbs"]) == ["create", "get", "patch"]  # no list, watch, delete


@pytest.mark.parametrize(
    "values",
    [
        {"enabled": True, "internal": {"from": [{"cidr": "10.0.0.0/8", "podSelector": {}}]}},
        {"enabled": True, "internal": {"from": [{}]}},
        {"enabled": True, "internal": {"apiServerCIDRs": ["10.0.0.1/8"]}},
    ],
)
def test_the_operator_refuses_a_malformed_policy(values: dict[str, Any]) -> None:
    with pytest.raises(SettingsError, match=ENV):
        relay_network_policy(json.dumps(values))
