"""The chart's egress bounds and limits reach the operator as the settings the code
expects, with the same defaults; the optional NetworkPolicy renders when asked."""

from __future__ import annotations

from typing import Any

import pytest

from chart.helm_tools import Helm, of_kind, one
from pagerbridge.clients._http import CallLimits
from pagerbridge.clients.egress import EgressPolicy
from pagerbridge.controller.policy.relay import RelayPolicy
from pagerbridge.controller.settings import OperatorSettings


def _settings(objects: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> OperatorSettings:
    (container,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    for item in container["env"]:
        if "value" in item:
            monkeypatch.setenv(item["name"], item["value"])
    return OperatorSettings.from_env()


def test_defaults_match_the_code(helm: Helm, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(helm.render(), monkeypatch)
    assert settings.egress == EgressPolicy()
    assert settings.call_limits == CallLimits()
    assert settings.reconcile_deadline_seconds == OperatorSettings().reconcile_deadline_seconds
    assert settings.namespace_concurrency == OperatorSettings().namespace_concurrency
    assert settings.relay_policy == OperatorSettings().relay_policy
    assert of_kind(helm.render(), "NetworkPolicy") == []


def test_admin_values_reach_the_operator(helm: Helm, monkeypatch: pytest.MonkeyPatch) -> None:
    objects = helm.render(
        "--set", "egress.allowedHosts={pd-proxy.internal:8443,api.pagerduty.com}",
        "--set", "egress.allowedNetworks={10.20.0.0/16}",
        "--set", "egress.allowHttp=true",
        "--set", "limits.maxPages=3",
        "--set", "limits.namespaceConcurrency=2",
        "--set", "relayPolicy.allowedImagePrefixes={registry.example.com/team/}",
        "--set", "relayPolicy.allowedServiceTypes={ClusterIP,NodePort}",
    )  # fmt: skip
    settings = _settings(objects, monkeypatch)
    assert settings.egress == EgressPolicy.parse(
        ["pd-proxy.internal:8443", "api.pagerduty.com"], ["10.20.0.0/16"], allow_http=True
    )
    assert settings.call_limits.max_pages == 3
    assert settings.namespace_concurrency == 2
    assert settings.relay_policy == RelayPolicy.parse(
        ["registry.example.com/team/"], ["ClusterIP", "NodePort"]
    )


@pytest.mark.parametrize(
    "value",
    [
        "egress.allowedHosts={https://x.example}",
        "egress.allowedNetworks={10.0.0.1}",
        "relayPolicy.allowedServiceTypes={Ingress}",
    ],
)
def test_schema_refuses_malformed_entries(helm: Helm, value: str) -> None:
    result = helm.template("--set", value)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr


def test_network_policy(helm: Helm) -> None:
    objects = helm.render(
        "--set", "egress.networkPolicy.enabled=true",
        "--set", "egress.networkPolicy.apiServerCIDRs={10.96.0.1/32}",
        "--set", "egress.allowedNetworks={10.20.0.0/16}",
    )  # fmt: skip
    policy = one(objects, "NetworkPolicy")
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Egress"]
    pod_labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert spec["podSelector"]["matchLabels"].items() <= pod_labels.items()
    dns, api, https, allowed = spec["egress"]
    assert {p["port"] for p in dns["ports"]} == {53}
    assert api["to"] == [{"ipBlock": {"cidr": "10.96.0.1/32"}}]
    assert [p["port"] for p in https["ports"]] == [443]
    v4 = https["to"][0]["ipBlock"]
    assert v4["cidr"] == "0.0.0.0/0"
    assert {"10.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12"} <= set(v4["except"])
    assert allowed == {"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}]}


def test_network_policy_without_api_server_addresses_is_refused(helm: Helm) -> None:
    """An empty apiServerCIDRs (the default) would open 443 and 6443 to every address,
    cancelling the private-range exclusions of the HTTPS rule: refused at template time."""
    result = helm.template("--set", "egress.networkPolicy.enabled=true")
    assert result.returncode != 0
    assert "egress.networkPolicy.enabled needs egress.networkPolicy.apiServerCIDRs" in (
        result.stderr
    )


@pytest.mark.parametrize(
    "cidrs",
    ["{0.0.0.0/0}", "{10.0.0.0/8}", "{10.96.0.0/12}", "{::/0}", "{fc00::/7}", "{10.96.0.1}"],
)
def test_api_server_addresses_must_be_single_addresses(helm: Helm, cidrs: str) -> None:
    result = helm.template(
        "--set", "egress.networkPolicy.enabled=true",
        "--set", f"egress.networkPolicy.apiServerCIDRs={cidrs}",
    )  # fmt: skip
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr


@pytest.mark.parametrize(
    "values",
    [
        ["--set", "egress.networkPolicy.apiServerCIDRs={10.96.0.1/32,192.168.1.10/32}"],
        ["--set", "egress.networkPolicy.apiServerCIDRs={fd00::1/128}"],
        [
            "--set", "egress.networkPolicy.apiServerCIDRs={172.18.0.2/32}",
            "--set", "egress.networkPolicy.apiServerPorts={443,6443,8443}",
        ],
    ],
)  # fmt: skip
def test_no_rule_opens_https_to_a_private_range(helm: Helm, values: list[str]) -> None:
    """Every rule that allows port 443 to a destination names either public addresses
    (private ranges excepted) or one address of the API server."""
    objects = helm.render("--set", "egress.networkPolicy.enabled=true", *values)
    for rule in one(objects, "NetworkPolicy")["spec"]["egress"]:
        ports = {p.get("port") for p in rule.get("ports", [])}
        if 443 not in ports and rule.get("ports"):
            continue
        assert "to" in rule, f"a rule allows 443 to every address: {rule}"
        for peer in rule["to"]:
            block = peer["ipBlock"]
            if block["cidr"] in ("0.0.0.0/0", "::/0"):
                assert block["except"], rule
                continue
            assert block["cidr"].endswith(("/32", "/128")), rule
