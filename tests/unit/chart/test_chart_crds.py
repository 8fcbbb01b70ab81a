"""The chart's CRDs: the generated ones, as templates that `helm upgrade` updates.

One generator (``pagerbridge crds``) writes crds/ at the repository root and the chart's
templates/crds/; the chart must render exactly the objects of crds/ (same spec), with the
chart's labels, and keep them on uninstall unless told otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from chart.helm_tools import CHART, Helm, of_kind
from pagerbridge import __version__
from pagerbridge.api import INTEGRATION, crdgen

GENERATED = CHART.parents[1] / "crds"
TEMPLATES = CHART / "templates" / "crds"
APP_VERSION = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
KEEP = "helm.sh/resource-policy"


def _crds(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {crd["metadata"]["name"]: crd for crd in of_kind(objects, "CustomResourceDefinition")}


def test_checked_in_crds_and_chart_templates_are_current() -> None:
    assert not crdgen.check(GENERATED).stale, "crds/ is stale: run `make crds`"
    assert not crdgen.check(TEMPLATES, crdgen.render_chart_templates()).stale, (
        "charts/pagerbridge/templates/crds is stale: run `make crds`"
    )
    # Helm would install a crds/ directory once and never upgrade it: there must be none.
    assert not (CHART / "crds").exists()


def test_staleness_check_catches_an_edited_template(tmp_path: Path) -> None:
    crdgen.write_all(tmp_path, crdgen.render_chart_templates())
    victim = next(tmp_path.glob("*.yaml"))
    victim.write_text(victim.read_text().replace("served: true", "served: false"))
    drift = crdgen.check(tmp_path, crdgen.render_chart_templates())
    assert drift.changed == (victim.name,)
    assert "served: false" in drift.diff


def test_chart_renders_the_generated_crds_with_labels_and_keep(helm: Helm) -> None:
    rendered = _crds(helm.render())
    generated = {
        doc["metadata"]["name"]: doc
        for doc in (yaml.safe_load(p.read_text()) for p in sorted(GENERATED.glob("*.yaml")))
    }
    assert sorted(rendered) == sorted(generated)
    for name, crd in rendered.items():
        assert crd["spec"] == generated[name]["spec"], f"{name}: chart and crds/ differ"
        labels = crd["metadata"]["labels"]
        assert labels["app.kubernetes.io/version"] == APP_VERSION
        assert labels["app.kubernetes.io/component"] == "crds"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert crd["metadata"]["annotations"] == {KEEP: "keep"}
        # The plain manifests carry the version of the generator.
        assert generated[name]["metadata"]["labels"]["app.kubernetes.io/version"] == __version__
    assert sorted(crd["spec"]["names"]["kind"] for crd in rendered.values()) == [
        "ClusterBigPandaAccount",
        "ClusterPagerDutyAccount",
        "PagerDutyIntegration",
        "PagerDutyKeyOverride",
        "PagerDutyTagMapping",
    ]


def test_crds_can_be_left_out_or_not_kept(helm: Helm) -> None:
    assert not _crds(helm.render("--set", "crds.enabled=false"))
    unkept = _crds(helm.render("--set", "crds.keep=false"))
    assert len(unkept) == 5
    assert all(KEEP not in crd["metadata"].get("annotations", {}) for crd in unkept.values())


@pytest.mark.parametrize("value", ["{{ .Release.Name }}", "x }} y"])
def test_template_markup_in_a_schema_is_refused(value: str) -> None:
    document = crdgen.crd(INTEGRATION)
    document["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["description"] = value
    with pytest.raises(crdgen.SchemaConversionError):
        crdgen.to_chart_template(document)
