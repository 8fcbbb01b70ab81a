"""The chart as a subchart: an umbrella chart (generated here) depends on it.

Helm hands a subchart its umbrella's `global` values (and the `enabled` flag of a
`condition:`), so a closed values.schema.json must accept them; the umbrella's globals
and its values for the subchart must reach the rendered objects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from chart.helm_tools import CHART, Helm, of_kind, one

CHART_VERSION = yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]


@pytest.fixture
def umbrella(helm: Helm, tmp_path: Path) -> Path:
    root = tmp_path / "platform"
    root.mkdir()
    (root / "Chart.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v2",
                "name": "platform",
                "description": "An app-of-apps style umbrella chart.",
                "version": "1.0.0",
                "dependencies": [
                    {
                        "name": "pagerbridge",
                        "version": CHART_VERSION,
                        "repository": f"file://{CHART}",
                        "condition": "pagerbridge.enabled",
                    }
                ],
            }
        )
    )
    values: dict[str, Any] = {
        "global": {
            # Keys of other subcharts: Helm passes them to this one too.
            "storageClass": "fast",
            "monitoring": {"enabled": True},
            "imagePullSecrets": [{"name": "umbrella-cred"}],
            "commonLabels": {"platform": "core"},
        },
        "pagerbridge": {
            "enabled": True,
            "commonLabels": {"team": "sre"},
            "rbac": {"scope": "namespace"},
        },
    }
    (root / "values.yaml").write_text(yaml.safe_dump(values))
    result = helm.run("dependency", "build", str(root))
    assert result.returncode == 0, result.stdout + result.stderr
    assert (root / "charts" / f"pagerbridge-{CHART_VERSION}.tgz").is_file()
    return root


def test_umbrella_renders_the_subchart_with_globals(helm: Helm, umbrella: Path) -> None:
    objects = helm.render(chart=umbrella, namespace="platform")
    deployment = one(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "umbrella-cred"}]
    assert len(of_kind(objects, "CustomResourceDefinition")) == 5
    assert of_kind(objects, "Role"), "the umbrella's values for the subchart apply"
    for obj in objects:
        labels = obj["metadata"]["labels"]
        assert labels["platform"] == "core"
        assert labels["team"] == "sre"
        assert labels["app.kubernetes.io/name"] == "pagerbridge"


def test_umbrella_lints_strictly(helm: Helm, umbrella: Path) -> None:
    result = helm.run("lint", "--strict", str(umbrella))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[ERROR]" not in result.stdout
    assert "[WARNING]" not in result.stdout


def test_umbrella_can_disable_the_subchart(helm: Helm, umbrella: Path) -> None:
    result = helm.template("--set", "pagerbridge.enabled=false", chart=umbrella)
    assert result.returncode == 0, result.stderr
    assert "kind: Deployment" not in result.stdout


def test_schema_still_rejects_typos_under_the_umbrella(helm: Helm, umbrella: Path) -> None:
    result = helm.template("--set", "pagerbridge.replicaCont=1", chart=umbrella)
    assert result.returncode != 0
    assert "additional properties 'replicaCont' not allowed" in result.stderr
