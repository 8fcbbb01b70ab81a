"""Relay pod settings: operator-wide defaults, spec.relay over them, and what the
rendered relay Deployment's pod carries. Pure: no cluster."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pagerbridge.api import PagerDutyIntegrationSpec, RelayPodSettings
from pagerbridge.api.relay_pod import DEFAULT_RESOURCES, effective
from pagerbridge.controller import names as n
from pagerbridge.controller.render.children import RenderSettings, render_deployment
from pagerbridge.controller.render.compile import compile_relay_config
from pagerbridge.controller.settings import (
    RELAY_DEFAULTS_ENV,
    OperatorSettings,
    SettingsError,
    relay_pod_defaults,
)

from .builders import OWNER, routing_key_secret
from .builders import relay_spec as _spec

SECRETS = {"pd": routing_key_secret()}
SCHEDULING_KEYS = {
    "imagePullSecrets",
    "nodeSelector",
    "tolerations",
    "affinity",
    "topologySpreadConstraints",
    "priorityClassName",
}

DEFAULTS: dict[str, Any] = {
    "imagePullSecrets": [{"name": "regcred"}],
    "nodeSelector": {"pool": "integrations"},
    "tolerations": [
        {"key": "dedicated", "operator": "Equal", "value": "pb", "effect": "NoSchedule"}
    ],
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "arch", "operator": "In", "values": ["amd64"]}]}
                ]
            }
        }
    },
    "topologySpreadConstraints": [
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
        }
    ],
    "priorityClassName": "integrations",
    "podLabels": {"team": "platform", "tier": "relay"},
    "podAnnotations": {"example.com/owner": "platform"},
    "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
}


def _pod(spec: PagerDutyIntegrationSpec, defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    compiled = compile_relay_config(
        "team-a", "payments", spec, [], [], SECRETS, webhook_secret=False
    )
    settings = RenderSettings(
        image="img:1", pod_defaults=RelayPodSettings.model_validate(defaults or {})
    )
    template: dict[str, Any] = render_deployment(OWNER, spec, compiled, settings)["spec"][
        "template"
    ]
    return template


def test_no_settings_render_no_scheduling_fields() -> None:
    pod = _pod(_spec())
    assert not SCHEDULING_KEYS & pod["spec"].keys()
    assert pod["metadata"]["labels"] == n.child_labels(OWNER.names)
    assert set(pod["metadata"]["annotations"]) == {n.ANNOTATION_CONFIG_HASH}
    assert pod["spec"]["containers"][0]["resources"] == DEFAULT_RESOURCES


def test_operator_defaults_reach_the_relay_pod() -> None:
    pod = _pod(_spec(), DEFAULTS)
    spec = pod["spec"]
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert spec["nodeSelector"] == {"pool": "integrations"}
    assert spec["tolerations"] == DEFAULTS["tolerations"]
    assert spec["affinity"] == DEFAULTS["affinity"]
    assert spec["priorityClassName"] == "integrations"
    (constraint,) = spec["topologySpreadConstraints"]
    # No labelSelector given: the constraint counts this integration's relay pods.
    assert constraint == {
        **DEFAULTS["topologySpreadConstraints"][0],
        "labelSelector": {"matchLabels": n.selector_labels(OWNER.names)},
    }
    assert pod["metadata"]["labels"]["team"] == "platform"
    assert pod["metadata"]["annotations"]["example.com/owner"] == "platform"
    assert spec["containers"][0]["resources"] == DEFAULTS["resources"]


def test_spec_relay_overrides_the_defaults() -> None:
    own_toleration = {"key": "gpu", "operator": "Exists"}
    spec = _spec(
        tolerations=[own_toleration],
        nodeSelector={"pool": "payments"},
        priorityClassName="critical-relays",
        podLabels={"tier": "payments-relay", "cost-center": "42"},
        podAnnotations={"example.com/owner": "payments"},
        resources={"requests": {"cpu": "100m"}},
        imagePullSecrets=[],  # explicitly none
    )
    pod = _pod(spec, DEFAULTS)
    assert pod["spec"]["tolerations"] == [own_toleration], "a list replaces, never appends"
    assert pod["spec"]["nodeSelector"] == {"pool": "payments"}
    assert pod["spec"]["priorityClassName"] == "critical-relays"
    assert "imagePullSecrets" not in pod["spec"]
    assert pod["spec"]["affinity"] == DEFAULTS["affinity"], "unset: inherited"
    labels = pod["metadata"]["labels"]
    assert (labels["team"], labels["tier"], labels["cost-center"]) == (
        "platform",
        "payments-relay",
        "42",
    ), "labels merge, the integration's win"
    assert pod["metadata"]["annotations"]["example.com/owner"] == "payments"
    assert pod["spec"]["containers"][0]["resources"] == {"requests": {"cpu": "100m"}, "limits": {}}


def test_own_labels_and_annotations_cannot_be_overridden() -> None:
    own = n.child_labels(OWNER.names)
    hijack = {key: "hijacked" for key in own}
    spec = _spec(podLabels=hijack, podAnnotations={n.ANNOTATION_CONFIG_HASH: "hijacked"})
    pod = _pod(spec, {"podLabels": hijack})
    assert {key: pod["metadata"]["labels"][key] for key in own} == own
    assert pod["metadata"]["annotations"][n.ANNOTATION_CONFIG_HASH] != "hijacked"
    selector = n.selector_labels(OWNER.names)
    assert selector.items() <= pod["metadata"]["labels"].items()


def test_effective_is_field_by_field() -> None:
    defaults = RelayPodSettings.model_validate(DEFAULTS)
    assert effective(defaults, RelayPodSettings()) == defaults
    assert effective(RelayPodSettings(), defaults) == defaults
    merged = effective(defaults, RelayPodSettings.model_validate({"podLabels": {"a": "b"}}))
    assert merged.pod_labels == {**DEFAULTS["podLabels"], "a": "b"}
    assert merged.tolerations == defaults.tolerations


def test_operator_reads_the_defaults_from_its_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RELAY_DEFAULTS_ENV, json.dumps(DEFAULTS))
    settings = OperatorSettings.from_env()
    assert settings.relay_pod_defaults == RelayPodSettings.model_validate(DEFAULTS)
    monkeypatch.delenv(RELAY_DEFAULTS_ENV)
    assert OperatorSettings.from_env().relay_pod_defaults == RelayPodSettings()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"nodeSelektor": {"a": "b"}}', "nodeSelektor: Extra inputs are not permitted"),
        ('{"tolerations": [{"effect": "Sometimes"}]}', "tolerations.0.effect"),
        ("not json", RELAY_DEFAULTS_ENV),
    ],
)
def test_malformed_defaults_name_the_variable_and_the_field(text: str, message: str) -> None:
    with pytest.raises(SettingsError, match=RELAY_DEFAULTS_ENV) as caught:
        relay_pod_defaults(text)
    assert message in str(caught.value)
