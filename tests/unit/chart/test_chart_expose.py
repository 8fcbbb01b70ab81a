"""The chart's bounds on spec.relay.expose reach the operator as its ExposePolicy, and the
operator gets RBAC for ingresses / httproutes only when the admin allows them."""

from __future__ import annotations

from typing import Any

import pytest

from chart.helm_tools import Helm, of_kind, one
from pagerbridge.controller.policy.expose import ExposePolicy
from pagerbridge.controller.settings import OperatorSettings


def _settings(objects: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> OperatorSettings:
    (container,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    for item in container["env"]:
        if "value" in item:
            monkeypatch.setenv(item["name"], item["value"])
    return OperatorSettings.from_env()


def _granted(objects: list[dict[str, Any]]) -> set[str]:
    roles = of_kind(objects, "ClusterRole") + of_kind(objects, "Role")
    return {
        resource
        for role in roles
        if not any("aggregate-to" in k for k in role["metadata"].get("labels", {}))
        for rule in role.get("rules", [])
        for resource in rule["resources"]
    }


ALLOW_ALL = (
    "--set", "relayPolicy.expose.ingressClassNames={public}",
    "--set", "relayPolicy.expose.gatewayParentRefs={gateways/public}",
    "--set-json",
    'relayPolicy.expose.hostSuffixes=["hooks.example.com","{namespace}.example.com"]',
    "--set", "relayPolicy.expose.clusterIssuers={letsencrypt}",
)  # fmt: skip


def test_default_refuses_every_expose_and_grants_nothing(
    helm: Helm, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = helm.render()
    assert _settings(objects, monkeypatch).expose_policy == ExposePolicy()
    assert not {"ingresses", "httproutes"} & _granted(objects)


def test_admin_bounds_reach_the_operator(helm: Helm, monkeypatch: pytest.MonkeyPatch) -> None:
    objects = helm.render(*ALLOW_ALL)
    assert _settings(objects, monkeypatch).expose_policy == ExposePolicy.parse(
        ["public"], ["gateways/public"], ["hooks.example.com", "{namespace}.example.com"],
        ["letsencrypt"],
    )  # fmt: skip
    assert {"ingresses", "httproutes"} <= _granted(objects)


@pytest.mark.parametrize("scope", ["cluster", "namespace"])
def test_rbac_follows_what_is_allowed(helm: Helm, scope: str) -> None:
    scoped = ("--set", "rbac.scope=namespace", "--set", "watchNamespaces={a}")
    if scope == "cluster":
        scoped = ("--set", "rbac.scope=cluster")
    ingress_only = helm.render(*scoped, "--set", "relayPolicy.expose.ingressClassNames={public}")
    assert "ingresses" in _granted(ingress_only)
    assert "httproutes" not in _granted(ingress_only)
    routes_only = helm.render(
        *scoped, "--set", "relayPolicy.expose.gatewayParentRefs={gateways/public}"
    )
    assert "httproutes" in _granted(routes_only)
    assert "ingresses" not in _granted(routes_only)


def test_schema_refuses_a_gateway_without_namespace(helm: Helm) -> None:
    result = helm.template("--set", "relayPolicy.expose.gatewayParentRefs={public}")
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
