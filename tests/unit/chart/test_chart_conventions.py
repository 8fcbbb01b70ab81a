"""Chart conventions a platform expects (cert-manager's and external-secrets' charts):
commonLabels, pod labels and annotations, extra env/volumes/objects, topology spread, a
PodDisruptionBudget, aggregated user roles, pull secrets, and one image name."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from chart.helm_tools import CHART, Helm, of_kind, one
from pagerbridge import DEFAULT_IMAGE, IMAGE_REPOSITORY
from pagerbridge.controller.settings import OperatorSettings

VALUES: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())


def _pod(objects: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = one(objects, "Deployment")["spec"]["template"]
    return spec


def _container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (container,) = _pod(objects)["spec"]["containers"]
    return dict(container)


def test_common_labels_on_every_object_without_overriding_the_chart_s(helm: Helm) -> None:
    objects = helm.render(
        "--set", "commonLabels.team=platform",
        "--set", "commonLabels.app\\.kubernetes\\.io/name=hijacked",
        "--set-string", "global.commonLabels.cost-center=42",
        "--set", "podDisruptionBudget.enabled=true",
        "--set", "serviceMonitor.enabled=true", "--set", "serviceMonitor.force=true",
    )  # fmt: skip
    kinds = {obj["kind"] for obj in objects}
    assert {"CustomResourceDefinition", "PodDisruptionBudget", "ServiceMonitor"} <= kinds
    for obj in objects:
        labels = obj["metadata"]["labels"]
        assert labels["team"] == "platform", obj["kind"]
        assert labels["cost-center"] == "42", obj["kind"]
        assert labels["app.kubernetes.io/name"] == "pagerbridge", obj["kind"]
    pod_labels = _pod(objects)["metadata"]["labels"]
    assert pod_labels["team"] == "platform"
    # The selector still matches the pod.
    selector = one(objects, "Deployment")["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()


def test_pod_labels_and_annotations(helm: Helm) -> None:
    objects = helm.render(
        "--set-string", "podLabels.sidecar\\.istio\\.io/inject=false",
        "--set", "podLabels.app\\.kubernetes\\.io/component=other",
        "--set", "podAnnotations.example\\.com/scrape=yes",
    )  # fmt: skip
    template = _pod(objects)
    assert template["metadata"]["labels"]["sidecar.istio.io/inject"] == "false"
    # podLabels cannot move the pod out of its Deployment's selector.
    assert template["metadata"]["labels"]["app.kubernetes.io/component"] == "operator"
    assert template["metadata"]["annotations"] == {"example.com/scrape": "yes"}


def test_extra_env_volumes_and_mounts(helm: Helm) -> None:
    values = {
        "extraEnv": [
            {"name": "HTTPS_PROXY", "value": "http://proxy:3128"},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        ],
        "extraVolumes": [{"name": "ca", "configMap": {"name": "corporate-ca"}}],
        "extraVolumeMounts": [{"name": "ca", "mountPath": "/etc/ssl/corp", "readOnly": True}],
    }
    objects = _render_values(helm, values)
    container = _container(objects)
    env = {item["name"]: item for item in container["env"]}
    assert env["HTTPS_PROXY"]["value"] == "http://proxy:3128"
    assert env["TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "s", "key": "k"}
    assert "PAGERBRIDGE_RELAY_IMAGE" in env, "the chart's own variables stay"
    volumes = {v["name"]: v for v in _pod(objects)["spec"]["volumes"]}
    assert volumes["ca"] == {"name": "ca", "configMap": {"name": "corporate-ca"}}
    assert "tmp" in volumes
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/etc/ssl/corp"] == {"name": "ca", "mountPath": "/etc/ssl/corp", "readOnly": True}
    assert "/tmp" in mounts


def _render_values(helm: Helm, values: dict[str, Any]) -> list[dict[str, Any]]:
    path = helm.env["HOME"] + "/values-test.yaml"
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(values, handle)
    return helm.render("-f", path)


def test_extra_objects_are_rendered_through_tpl(helm: Helm) -> None:
    values = {
        "extraObjects": [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": '{{ include "pagerbridge.fullname" . }}-extra'},
                "data": {"namespace": "{{ .Release.Namespace }}"},
            },
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ .Release.Name }}-string\n",
        ]
    }
    objects = _render_values(helm, values)
    config_map = one(objects, "ConfigMap")
    assert config_map["metadata"]["name"] == "pb-pagerbridge-extra"
    assert config_map["data"] == {"namespace": "pagerbridge-system"}
    assert one(objects, "Secret")["metadata"]["name"] == "pb-string"


def test_topology_spread_and_revision_history(helm: Helm) -> None:
    constraint = {
        "maxSkew": 1,
        "topologyKey": "topology.kubernetes.io/zone",
        "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "pagerbridge"}},
    }
    objects = _render_values(
        helm, {"topologySpreadConstraints": [constraint], "revisionHistoryLimit": 3}
    )
    assert _pod(objects)["spec"]["topologySpreadConstraints"] == [constraint]
    assert one(objects, "Deployment")["spec"]["revisionHistoryLimit"] == 3
    default = helm.render()
    assert "topologySpreadConstraints" not in _pod(default)["spec"]
    assert one(default, "Deployment")["spec"]["revisionHistoryLimit"] == 10


def test_pod_disruption_budget(helm: Helm) -> None:
    assert not of_kind(helm.render(), "PodDisruptionBudget"), "one replica: no PDB by default"
    objects = helm.render("--set", "podDisruptionBudget.enabled=true")
    pdb = one(objects, "PodDisruptionBudget")
    selector = one(objects, "Deployment")["spec"]["selector"]
    assert pdb["spec"]["selector"] == selector
    assert pdb["spec"]["minAvailable"] == 1
    assert "maxUnavailable" not in pdb["spec"]
    by_max = one(
        helm.render(
            "--set", "podDisruptionBudget.enabled=true",
            "--set", "podDisruptionBudget.maxUnavailable=50%",
        ),
        "PodDisruptionBudget",
    )  # fmt: skip
    assert by_max["spec"] == {"selector": selector, "maxUnavailable": "50%"}
    both = helm.template(
        "--set", "podDisruptionBudget.enabled=true",
        "--set", "podDisruptionBudget.minAvailable=1",
        "--set", "podDisruptionBudget.maxUnavailable=1",
    )  # fmt: skip
    assert both.returncode != 0
    assert "set minAvailable or maxUnavailable, not both" in both.stderr


def test_image_pull_secrets_global_first(helm: Helm) -> None:
    objects = helm.render(
        "--set", "imagePullSecrets[0].name=regcred",
        "--set", "global.imagePullSecrets[0].name=umbrella-cred",
    )  # fmt: skip
    assert _pod(objects)["spec"]["imagePullSecrets"] == [
        {"name": "umbrella-cred"},
        {"name": "regcred"},
    ]
    assert "imagePullSecrets" not in _pod(helm.render())["spec"]


AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-"
KINDS = ("pagerdutyintegrations", "pagerdutykeyoverrides", "pagerdutytagmappings")


@pytest.mark.parametrize("scope", ["cluster", "namespace"])
def test_aggregated_view_and_edit_roles(helm: Helm, scope: str) -> None:
    objects = helm.render("--set", f"rbac.scope={scope}")
    roles = {
        role["metadata"]["name"]: role
        for role in of_kind(objects, "ClusterRole")
        if any(label.startswith(AGGREGATE) for label in role["metadata"]["labels"])
    }
    assert sorted(roles) == ["pb-pagerbridge-edit", "pb-pagerbridge-view"]
    view, edit = roles["pb-pagerbridge-view"], roles["pb-pagerbridge-edit"]
    aggregated = {k.removeprefix(AGGREGATE) for k in view["metadata"]["labels"] if AGGREGATE in k}
    assert aggregated == {"view", "edit", "admin"}
    aggregated = {k.removeprefix(AGGREGATE) for k in edit["metadata"]["labels"] if AGGREGATE in k}
    assert aggregated == {"edit", "admin"}, "viewers must not get write verbs"
    ((view_rule,), (edit_rule,)) = (view["rules"], edit["rules"])
    assert view_rule["apiGroups"] == edit_rule["apiGroups"] == ["pagerbridge.io"]
    assert set(view_rule["verbs"]) == {"get", "list", "watch"}
    assert set(view_rule["resources"]) == {*KINDS, *(f"{k}/status" for k in KINDS)}
    assert set(edit_rule["verbs"]) == {"create", "update", "patch", "delete", "deletecollection"}
    assert set(edit_rule["resources"]) == set(KINDS), "status stays the operator's"
    off = helm.render("--set", "rbac.aggregateClusterRoles=false")
    assert not [
        role
        for role in of_kind(off, "ClusterRole")
        if any(label.startswith(AGGREGATE) for label in role["metadata"]["labels"])
    ]


def test_one_image_name_for_the_chart_and_the_operator(
    helm: Helm, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chart's default image is the operator's built-in relay image, and the chart
    tells the operator which image it runs (so relays follow image.* overrides)."""
    assert VALUES["image"]["repository"] == IMAGE_REPOSITORY
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    assert f"{IMAGE_REPOSITORY}:{app_version}" == DEFAULT_IMAGE
    assert _container(helm.render())["image"] == DEFAULT_IMAGE
    monkeypatch.delenv("PAGERBRIDGE_RELAY_IMAGE", raising=False)
    assert OperatorSettings.from_env().relay_image == DEFAULT_IMAGE
    custom = _container(helm.render("--set", "image.repository=r.example/pb"))
    env = {item["name"]: item.get("value") for item in custom["env"]}
    assert env["PAGERBRIDGE_RELAY_IMAGE"] == custom["image"] == f"r.example/pb:{app_version}"
