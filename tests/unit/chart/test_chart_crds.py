"""The chart ships exactly the generated CRDs (crds/ at the repository root)."""

from __future__ import annotations

import yaml

from chart.helm_tools import CHART, Helm, of_kind

GENERATED = CHART.parents[1] / "crds"


def test_chart_crds_equal_generated_crds() -> None:
    generated = {p.name: p.read_bytes() for p in sorted(GENERATED.glob("*.yaml"))}
    shipped = {p.name: p.read_bytes() for p in sorted((CHART / "crds").glob("*.yaml"))}
    assert generated, "crds/ is empty: run `pagerbridge crds`"
    assert sorted(shipped) == sorted(generated), (
        "charts/pagerbridge/crds/ and crds/ hold different files; "
        "fix with: cp crds/*.yaml charts/pagerbridge/crds/"
    )
    stale = [name for name in generated if shipped[name] != generated[name]]
    assert not stale, f"stale chart CRDs {stale}; fix with: cp crds/*.yaml charts/pagerbridge/crds/"


def test_chart_installs_the_three_kinds(helm: Helm) -> None:
    objects = helm.render("--include-crds")
    crds = of_kind(objects, "CustomResourceDefinition")
    assert sorted(crd["spec"]["names"]["kind"] for crd in crds) == [
        "PagerDutyIntegration",
        "PagerDutyKeyOverride",
        "PagerDutyTagMapping",
    ]
    assert all(crd["spec"]["group"] == "pagerbridge.io" for crd in crds)
    # Without --include-crds, `helm template` leaves them out: they live in crds/, which
    # Helm installs before the templates and never deletes (so uninstall keeps user data).
    assert not of_kind(helm.render(), "CustomResourceDefinition")
    for path in (CHART / "crds").glob("*.yaml"):
        assert yaml.safe_load(path.read_text())["kind"] == "CustomResourceDefinition"
