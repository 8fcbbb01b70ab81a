"""The chart on a real API server, as a platform uses it: CRDs owned and upgraded by the
release, and aggregated roles that let namespace users manage their own integrations."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..conftest import CRDS_DIR, REPO, Cluster
from ..kube import wait_for

pytestmark = pytest.mark.e2e

CHART = REPO / "charts" / "pagerbridge"
CRD_NAMES = [
    yaml.safe_load(path.read_text())["metadata"]["name"] for path in sorted(CRDS_DIR.glob("*.yaml"))
]
HELM_OWNERSHIP = ("meta.helm.sh/release-name", "meta.helm.sh/release-namespace")


@pytest.fixture
def release(cluster: Cluster) -> Iterator[tuple[str, str]]:
    name = f"pb-{uuid.uuid4().hex[:6]}"
    namespace = f"{name}-system"
    cluster.kubectl("create", "namespace", namespace)
    yield name, namespace
    cluster.helm("uninstall", name, "--namespace", namespace, check=False)
    cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def _crd(cluster: Cluster, name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(cluster.kubectl("get", "crd", name, "-o", "json").stdout)
    return body


def _can_i(cluster: Cluster, user: str, namespace: str, *args: str) -> bool:
    result = cluster.kubectl("auth", "can-i", *args, "-n", namespace, f"--as={user}", check=False)
    return result.stdout.strip() == "yes"


def test_namespace_users_manage_their_integrations_through_aggregated_roles(
    cluster: Cluster, namespace: str, release: tuple[str, str]
) -> None:
    name, release_namespace = release
    alice, bob = f"alice-{name}", f"bob-{name}"
    for user, role in ((alice, "edit"), (bob, "view")):
        cluster.kubectl(
            "create", "rolebinding", f"{user}-{role}", f"--clusterrole={role}",
            f"--user={user}", "-n", namespace,
        )  # fmt: skip
    kinds = ("pagerdutyintegrations", "pagerdutykeyoverrides", "pagerdutytagmappings")
    # Before the chart: Kubernetes' edit and view roles know nothing of our kinds.
    assert not _can_i(cluster, alice, namespace, "create", "pagerdutyintegrations.pagerbridge.io")
    cluster.helm(
        "install", name, str(CHART), "--namespace", release_namespace,
        "--set", "crds.enabled=false",
    )  # fmt: skip
    # The clusterrole-aggregation controller copies the rules into edit and view.
    wait_for(
        lambda: (
            _can_i(cluster, alice, namespace, "create", "pagerdutytagmappings.pagerbridge.io")
            and _can_i(cluster, bob, namespace, "get", "pagerdutytagmappings.pagerbridge.io")
        ),
        30,
        "edit and view to include the chart's aggregated rules",
    )
    for kind in kinds:
        resource = f"{kind}.pagerbridge.io"
        for verb in ("get", "list", "watch", "update", "patch", "delete"):
            assert _can_i(cluster, alice, namespace, verb, resource), (verb, resource)
        for verb in ("get", "list", "watch"):
            assert _can_i(cluster, bob, namespace, verb, resource), (verb, resource)
        for verb in ("create", "update", "patch", "delete"):
            assert not _can_i(cluster, bob, namespace, verb, resource), (verb, resource)
        # Status stays the operator's.
        assert not _can_i(cluster, alice, namespace, "patch", resource, "--subresource=status")
    # Only in namespaces where they were given edit/view.
    assert not _can_i(cluster, alice, "default", "create", "pagerdutyintegrations.pagerbridge.io")


@pytest.fixture
def adopted_crds(cluster: Cluster) -> Iterator[None]:
    """Give the session's CRDs back their plain crds/ form and no release after the test."""
    yield
    for crd in CRD_NAMES:
        cluster.kubectl(
            "annotate", "crd", crd, *(f"{key}-" for key in HELM_OWNERSHIP),
            "helm.sh/resource-policy-", check=False,
        )  # fmt: skip
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS_DIR))


def test_helm_takes_over_upgrades_and_keeps_the_crds(
    cluster: Cluster, release: tuple[str, str], adopted_crds: None, tmp_path: Path
) -> None:
    """The upgrade path from CRDs applied by hand (or by the 0.1.0 chart's crds/): the
    documented adoption, then `helm upgrade` changes the CRDs, `helm uninstall` keeps them."""
    name, namespace = release
    for crd in CRD_NAMES:
        cluster.kubectl(
            "annotate", "--overwrite", "crd", crd,
            f"meta.helm.sh/release-name={name}", f"meta.helm.sh/release-namespace={namespace}",
        )  # fmt: skip
        cluster.kubectl("label", "--overwrite", "crd", crd, "app.kubernetes.io/managed-by=Helm")
    cluster.helm("install", name, str(CHART), "--namespace", namespace)
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    for crd in CRD_NAMES:
        meta = _crd(cluster, crd)["metadata"]
        assert meta["labels"]["app.kubernetes.io/version"] == app_version
        assert meta["labels"]["helm.sh/chart"].startswith("pagerbridge-")
        assert meta["annotations"]["helm.sh/resource-policy"] == "keep"

    # A newer chart whose PagerDutyIntegration CRD changed (its description, a harmless
    # change for the other tests sharing these CRDs).
    newer = tmp_path / "pagerbridge"
    shutil.copytree(CHART, newer)
    template = newer / "templates" / "crds" / "pagerbridge.io_pagerdutyintegrations.yaml"
    old = "description: A BigPanda → PagerDuty connection, run by a relay Deployment."
    assert old in template.read_text()
    template.write_text(template.read_text().replace(old, old[:-1] + " (upgraded)."))
    cluster.helm("upgrade", name, str(newer), "--namespace", namespace)
    schema = _crd(cluster, "pagerdutyintegrations.pagerbridge.io")["spec"]["versions"][0]["schema"][
        "openAPIV3Schema"
    ]
    assert schema["description"].endswith("(upgraded).")

    cluster.helm("uninstall", name, "--namespace", namespace)
    for crd in CRD_NAMES:
        assert _crd(cluster, crd)["metadata"]["name"] == crd, "kept by helm.sh/resource-policy"
