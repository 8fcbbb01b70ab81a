"""The chart's `relay` values reach the operator (PAGERBRIDGE_RELAY_DEFAULTS), which
accepts exactly what the chart's schema accepts and renders it onto every relay pod."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from chart.helm_tools import Helm, one
from pagerbridge.api import RelayPodSettings
from pagerbridge.controller.settings import RELAY_DEFAULTS_ENV, relay_pod_defaults

RELAY_VALUES: dict[str, Any] = {
    "imagePullSecrets": [{"name": "regcred"}],
    "nodeSelector": {"pool": "integrations"},
    "tolerations": [
        {"key": "dedicated", "operator": "Equal", "value": "pb", "effect": "NoSchedule"},
        {"operator": "Exists", "effect": ""},
    ],
    "affinity": {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "x"}},
                    },
                }
            ]
        }
    },
    "topologySpreadConstraints": [
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["relay"]}]
            },
        }
    ],
    "priorityClassName": "integrations",
    "podLabels": {"tier": "relay"},
    "podAnnotations": {"example.com/owner": "platform"},
    "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
}


def _relay_defaults(helm: Helm, tmp_path: Path, relay: dict[str, Any] | None) -> str:
    args: list[str] = []
    if relay is not None:
        values = tmp_path / "values.yaml"
        values.write_text(yaml.safe_dump({"relay": relay}))
        args = ["-f", str(values)]
    deployment = one(helm.render(*args), "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item.get("value") for item in container["env"]}
    value: str = env[RELAY_DEFAULTS_ENV]
    return value


def test_relay_values_reach_the_operator_as_the_same_settings(helm: Helm, tmp_path: Path) -> None:
    text = _relay_defaults(helm, tmp_path, RELAY_VALUES)
    settings = relay_pod_defaults(text)
    assert settings.to_json_dict() == RELAY_VALUES


def test_unset_relay_values_leave_the_operator_s_defaults(helm: Helm, tmp_path: Path) -> None:
    assert relay_pod_defaults(_relay_defaults(helm, tmp_path, None)) == RelayPodSettings()
    # Only what is set is passed: empty resources do not replace the built-in ones.
    partial = _relay_defaults(helm, tmp_path, {"nodeSelector": {"pool": "x"}})
    assert relay_pod_defaults(partial) == RelayPodSettings(node_selector={"pool": "x"})


def test_schema_rejects_what_the_operator_would_refuse(helm: Helm, tmp_path: Path) -> None:
    for relay, message in (
        ({"nodeSelektor": {"a": "b"}}, "additional properties 'nodeSelektor' not allowed"),
        ({"tolerations": [{"effect": "Sometimes"}]}, "/relay/tolerations/0/effect"),
        ({"topologySpreadConstraints": [{"maxSkew": 1}]}, "missing properties"),
        ({"priorityClassName": "Not_Valid"}, "/relay/priorityClassName"),
    ):
        values = tmp_path / "bad.yaml"
        values.write_text(yaml.safe_dump({"relay": relay}))
        result = helm.template("-f", str(values))
        assert result.returncode != 0, relay
        assert message in result.stderr, result.stderr
