"""values.schema.json: typed, closed at every level, described, and enforced by helm."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
import yaml

from chart.helm_tools import CHART, Helm

SCHEMA: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
VALUES: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())

# Kubernetes Affinity terms are passed through to the API server, which validates them;
# their two top levels are closed, the term bodies below are not.
OPEN_OBJECTS = {
    # Helm passes an umbrella chart's globals to every subchart: keys of other charts.
    "global",
    # Kubernetes Volumes and TopologySpreadConstraints, passed through likewise.
    "#kubernetesObjectList[]",
    "#affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution",
    "#affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[]",
    "#affinityTerms.requiredDuringSchedulingIgnoredDuringExecution[]",
    "#affinityTerms.preferredDuringSchedulingIgnoredDuringExecution[]",
}


def _walk(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from _walk(child, f"{path}.{name}" if path else name)
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}{{}}")


def _all_nodes() -> Iterator[tuple[str, dict[str, Any]]]:
    yield from _walk(SCHEMA, "")
    for name, definition in SCHEMA["definitions"].items():
        yield from _walk(definition, f"#{name}")


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    return dict(SCHEMA["definitions"][ref.removeprefix("#/definitions/")])


def test_every_object_is_closed_or_a_typed_map() -> None:
    offenders = []
    for path, raw in _all_nodes():
        node = _resolve(raw)
        if node.get("type") != "object" or path in OPEN_OBJECTS:
            continue
        extra = node.get("additionalProperties")
        closed = extra is False
        typed_map = isinstance(extra, dict) and "type" in extra and not node.get("properties")
        if not (closed or typed_map):
            offenders.append(path or "<root>")
    assert not offenders, f"objects accepting unknown keys: {offenders}"


def test_every_value_is_typed_and_described() -> None:
    untyped = []
    undescribed = []
    for path, raw in _all_nodes():
        node = _resolve(raw)
        if path.endswith(("[]", "{}")):
            if "type" not in node:
                untyped.append(path)
            continue
        if "type" not in node:
            untyped.append(path)
        if not (raw.get("description") or node.get("description")):
            undescribed.append(path)
    assert not untyped, f"untyped: {untyped}"
    assert not undescribed, f"undescribed: {undescribed}"


def test_schema_covers_exactly_the_default_values() -> None:
    """Every default value is in the schema and every schema property has a default."""
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    jsonschema.Draft7Validator(SCHEMA).validate(VALUES)
    assert set(VALUES) == set(SCHEMA["properties"])


def test_every_values_key_is_commented() -> None:
    """values.yaml documents each top-level key, and each setting of a section.

    A section (``image:``) comments each of its keys; a block passed through to
    Kubernetes as a whole (``resources:``) is documented by the comment above it.
    """
    lines = (CHART / "values.yaml").read_text().splitlines()
    sections: dict[str, tuple[bool, list[tuple[str, bool]]]] = {}
    current = ""
    for index, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "-")):
            continue
        indent = len(line) - len(line.lstrip())
        commented = index > 0 and lines[index - 1].strip().startswith("#")
        if indent == 0:
            current = stripped.split(":")[0]
            sections[current] = (commented, [])
        elif indent == 2:
            sections[current][1].append((stripped.split(":")[0], commented))
    undocumented = []
    for key, (commented, children) in sections.items():
        if not children:
            if not commented:
                undocumented.append(key)
            continue
        is_block = commented and not any(child_commented for _, child_commented in children)
        if not is_block:
            undocumented += [f"{key}.{name}" for name, ok in children if not ok]
    assert sections, "values.yaml has no keys"
    assert not undocumented, f"values without a comment: {undocumented}"


def test_negative_replica_count_fails_with_the_schema_message(helm: Helm) -> None:
    result = helm.template("--set", "replicaCount=-1")
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert "/replicaCount" in result.stderr
    assert "minimum: got -1, want 0" in result.stderr


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["--set", "operator.leaderElection=yes"], "/operator/leaderElection"),
        (["--set", "replicaCont=1"], "additional properties 'replicaCont' not allowed"),
        (["--set", "image.tg=1.0"], "additional properties 'tg' not allowed"),
        (
            ["--set", "securityContext.capabilities.dorp={ALL}"],
            "additional properties 'dorp' not allowed",
        ),
        (["--set", "resources.requests.cpus=1"], "additional properties 'cpus' not allowed"),
        (["--set", "rbac.scope=everywhere"], "/rbac/scope"),
        (["--set", "image.pullPolicy=Sometimes"], "/image/pullPolicy"),
        (["--set", "operator.healthPort=80"], "/operator/healthPort"),
        (["--set", "operator.logLevel=debug"], "additional properties 'logLevel' not allowed"),
        (["--set", "resources.limits.memory=lots"], "/resources/limits/memory"),
        (["--set-string", "replicaCount=1"], "/replicaCount"),
        # extraEnv is a top-level value (with extraVolumes and extraVolumeMounts).
        (["--set", "operator.extraEnv[0].name=A"], "additional properties 'extraEnv' not allowed"),
        (["--set", "crds.upgrade=true"], "additional properties 'upgrade' not allowed"),
        (["--set", "commonLabels.team=1"], "/commonLabels/team"),
        (["--set", "podDisruptionBudget.minAvailable=half"], "/podDisruptionBudget/minAvailable"),
        (["--set", "extraVolumeMounts[0].name=x"], "missing property 'mountPath'"),
        (["--set", "relayPodMonitor.interval=often"], "/relayPodMonitor/interval"),
        (["--set", "prometheusRule.severity=page"], "additional properties 'severity' not allowed"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_bad_values_are_rejected_by_the_schema(helm: Helm, values: list[str], message: str) -> None:
    result = helm.template(*values)
    assert result.returncode != 0, f"{values} was accepted"
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr


def test_cluster_scope_refuses_a_namespace_list(helm: Helm) -> None:
    result = helm.template("--set", "rbac.scope=cluster", "--set", "watchNamespaces={team-a}")
    assert result.returncode != 0
    assert "watchNamespaces is only used with rbac.scope=namespace" in result.stderr


def test_servicemonitor_needs_the_service(helm: Helm) -> None:
    result = helm.template(
        "--set", "serviceMonitor.enabled=true", "--set", "serviceMonitor.force=true",
        "--set", "service.enabled=false",
    )  # fmt: skip
    assert result.returncode != 0
    assert "serviceMonitor.enabled needs service.enabled" in result.stderr


def test_global_values_are_accepted(helm: Helm) -> None:
    """Helm hands every subchart the umbrella's `global`: any key of it must pass."""
    objects = helm.render(
        "--set", "global.someOtherChart.replicas=3", "--set", "global.storageClass=fast"
    )
    assert objects
