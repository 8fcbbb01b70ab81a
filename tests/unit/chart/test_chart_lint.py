"""`helm lint --strict` is clean, for the defaults and for the other supported shapes."""

from __future__ import annotations

import pytest

from chart.helm_tools import CHART, Helm


@pytest.mark.parametrize(
    "values",
    [
        [],
        ["--set", "rbac.scope=namespace", "--set", "watchNamespaces={team-a,team-b}"],
        ["--set", "serviceMonitor.enabled=true", "--set", "serviceMonitor.force=true"],
        [
            "--set",
            "podDisruptionBudget.enabled=true",
            "--set",
            "commonLabels.team=sre",
            "--set",
            "crds.keep=false",
            "--set",
            "extraObjects[0].apiVersion=v1",
            "--set",
            "extraObjects[0].kind=ConfigMap",
            "--set",
            "extraObjects[0].metadata.name=extra",
            "--set",
            "extraVolumes[0].name=ca",
            "--set",
            "extraVolumes[0].emptyDir.medium=Memory",
            "--set",
            "extraVolumeMounts[0].name=ca",
            "--set",
            "extraVolumeMounts[0].mountPath=/ca",
        ],
        ["--set", "crds.enabled=false", "--set", "rbac.aggregateClusterRoles=false"],
        [
            arg
            for key in ("serviceMonitor", "relayPodMonitor", "prometheusRule")
            for arg in ("--set", f"{key}.enabled=true", "--set", f"{key}.force=true")
        ]
        + ["--set", "grafanaDashboard.enabled=true"],
    ],
    ids=[
        "defaults",
        "namespace-scope",
        "servicemonitor",
        "platform-values",
        "no-crds-no-roles",
        "monitoring-bundle",
    ],
)
def test_helm_lint_strict_is_clean(helm: Helm, values: list[str]) -> None:
    result = helm.run("lint", "--strict", str(CHART), *values)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout
    assert "[WARNING]" not in result.stdout
    assert "[ERROR]" not in result.stdout


def test_chart_versions(helm: Helm) -> None:
    """appVersion is the package version: the image tag the chart defaults to exists."""
    import tomllib

    import yaml

    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((CHART.parents[1] / "pyproject.toml").read_text())["project"]
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == project["version"] == "0.1.0"
    result = helm.run("show", "chart", str(CHART))
    assert result.returncode == 0, result.stderr
    assert "appVersion: 0.1.0" in result.stdout
