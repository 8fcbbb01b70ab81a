"""The operator survives a restart of kube-apiserver (issue 6, point 5; issue 23).

A control plane of its own (restarting the session's would disturb every other test):
integration Ready, kube-apiserver stopped for a few seconds and started again on the same
port with the same etcd, then changes made after the restart must reach the children.
That only happens when the operator's watches reconnect by themselves.

The bound each test waits for follows from the operator's documented settings
(docs/operator.md, "After an API server outage"): every watch is back within
``PAGERBRIDGE_API_RECONNECT_SECONDS`` of the server answering, and the change then takes
one reconcile, which ``PAGERBRIDGE_RECONCILE_DEADLINE_SECONDS`` bounds; a reconcile that
still meets a server finishing its start (429 "storage is (re)initializing") is re-run by
the API recovery probe within the reconnect bound too, so at most two of each.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from pagerbridge_devkit.localcluster import ControlPlane, find_binaries
from pagerbridge_devkit.localcluster.kubelet import HarnessKubelet
from pagerbridge_devkit.ports import free_port
from pagerbridge_devkit.sandbox.pagerduty import PagerDutySimulator

from ..conftest import CRDS_DIR, EXTERNAL_KUBECONFIG_ENV, Cluster
from .conftest import OperatorProcess, condition, get_json, integration, pd_secret, wait_for

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(150),
    pytest.mark.skipif(
        bool(os.environ.get(EXTERNAL_KUBECONFIG_ENV)),
        reason="restarts a local kube-apiserver; not possible on a given cluster",
    ),
]
NAMESPACE = "pb-restart"
DOWNTIME = 5.0
RECONNECT = 2.0  # PAGERBRIDGE_API_RECONNECT_SECONDS (the default)
RECONCILE_DEADLINE = 15.0  # PAGERBRIDGE_RECONCILE_DEADLINE_SECONDS
CONVERGE = 2 * (RECONNECT + RECONCILE_DEADLINE)
SETTINGS = {
    # No periodic resync during the test: only watch events can restore the ConfigMap.
    "PAGERBRIDGE_RESYNC_SECONDS": "600",
    "PAGERBRIDGE_API_RECONNECT_SECONDS": str(RECONNECT),
    "PAGERBRIDGE_RECONCILE_DEADLINE_SECONDS": str(RECONCILE_DEADLINE),
}
MAPPING = {
    "apiVersion": "pagerbridge.io/v1alpha1",
    "kind": "PagerDutyTagMapping",
    "metadata": {"name": "survivor-mapping"},
    "spec": {
        "integrationRef": {"name": "survivor"},
        "mappings": [{"tag": "team", "field": "group"}],
    },
}


@pytest.fixture
def own_cluster() -> Iterator[tuple[ControlPlane, Cluster]]:
    binaries = find_binaries()
    with ControlPlane(binaries=binaries, crds=[CRDS_DIR], controller_manager=False) as plane:
        yield plane, Cluster(plane.kubeconfig, binaries.kubectl, binaries.helm, local=plane)


def _apply(cluster: Cluster, *docs: dict[str, object]) -> None:
    cluster.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=yaml.safe_dump_all(docs))


def _relay_config(cluster: Cluster) -> dict[str, object] | None:
    config_map = get_json(cluster, NAMESPACE, "configmap", "survivor-relay")
    if config_map is None:
        return None
    config: dict[str, object] = json.loads(config_map["data"]["relay.json"])
    return config


def _mapping_used(cluster: Cluster) -> bool:
    mappings = list((_relay_config(cluster) or {}).get("tagMappings") or [])
    return {"tag": "team", "field": "group"} in mappings


def _ready(cluster: Cluster, kind: str, name: str) -> bool:
    return bool(condition(get_json(cluster, NAMESPACE, kind, name)).get("status") == "True")


@contextmanager
def running_operator(
    plane: ControlPlane, cluster: Cluster, pd_url: str, tmp_path: Path
) -> Iterator[tuple[OperatorProcess, HarnessKubelet]]:
    """The integration applied and Ready under an operator of the test's own."""
    cluster.kubectl("create", "namespace", NAMESPACE)
    manifest = f"{pd_secret()}---\n{integration('survivor', pd_url)}"
    cluster.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=manifest)
    operator = OperatorProcess(
        cluster,
        NAMESPACE,
        tmp_path / "operator.log",
        free_port(),
        free_port(),
        extra_env=SETTINGS,
        # A leader that cannot renew its Lease for the renew deadline exits (in a pod, to be
        # restarted as a follower); these tests are about watches surviving the outage, in
        # a process nothing would restart, so the deadline outlasts the outage.
        extra_args=["--lease-duration=120", "--lease-renew-deadline=90"],
    )
    with HarnessKubelet(plane.kubeconfig, tmp_path / "kubelet", NAMESPACE) as kubelet:
        operator.start()
        try:
            wait_for(lambda: _ready(cluster, "pdi", "survivor"), 60, "integration Ready")
            yield operator, kubelet
            assert operator.process is not None
            assert operator.process.poll() is None, operator.log()[-3000:]
        finally:
            operator.stop()


def test_operator_converges_after_an_apiserver_restart(
    own_cluster: tuple[ControlPlane, Cluster],
    pagerduty: tuple[PagerDutySimulator, str],
    tmp_path: Path,
) -> None:
    plane, cluster = own_cluster
    with running_operator(plane, cluster, pagerduty[1], tmp_path) as (operator, kubelet):
        port = plane.apiserver_port
        plane.stop_apiserver()
        time.sleep(DOWNTIME)  # the outage itself, not a synchronisation
        assert operator.process is not None
        assert operator.process.poll() is None
        plane.start_apiserver()
        assert plane.apiserver_port == port
        restarted = time.monotonic()

        # Changes made after the restart: only reconnected watches can see them.
        cluster.kubectl("delete", "configmap", "survivor-relay", "-n", NAMESPACE)
        _apply(cluster, MAPPING)
        wait_for(
            lambda: _mapping_used(cluster),
            CONVERGE,
            "the ConfigMap recreated with the new tag mapping",
        )
        wait_for(
            lambda: _ready(cluster, "pdtm", "survivor-mapping"),
            CONVERGE,
            "the tag mapping Applied",
        )
        converged = time.monotonic() - restarted
        assert _ready(cluster, "pdi", "survivor")
        assert kubelet.pod(NAMESPACE, "survivor-relay") is not None
        print(f"converged {converged:.1f}s after the API server came back")


def test_a_kind_briefly_not_served_is_watched_again(
    own_cluster: tuple[ControlPlane, Cluster],
    pagerduty: tuple[PagerDutySimulator, str],
    tmp_path: Path,
) -> None:
    """A watch that meets a 404 (the kind not served: a starting server, a CRD deleted and
    installed again) comes back once the kind is served, instead of ending for good."""
    plane, cluster = own_cluster
    crd = CRDS_DIR / "pagerbridge.io_pagerdutytagmappings.yaml"
    with running_operator(plane, cluster, pagerduty[1], tmp_path) as (operator, _):
        cluster.kubectl("delete", "-f", str(crd), "--wait=true")
        # The operator's watch of the kind has met the 404 (and keeps retrying).
        wait_for(
            lambda: "the kind is not served" in operator.log(),
            CONVERGE,
            "the operator's watch meeting the 404",
        )
        cluster.kubectl("apply", "-f", str(crd))
        cluster.kubectl("wait", "--for=condition=Established", "-f", str(crd), "--timeout=60s")
        _apply(cluster, MAPPING)
        wait_for(
            lambda: _mapping_used(cluster),
            CONVERGE,
            "the ConfigMap with the mapping of the re-installed kind",
        )
