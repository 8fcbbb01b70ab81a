"""The operator survives a restart of kube-apiserver (issue 6, point 5).

A control plane of its own (restarting the session's would disturb every other test):
integration Ready, kube-apiserver stopped for a few seconds and started again on the same
port with the same etcd, then changes made after the restart must reach the children.
That only happens when the operator's watches reconnect by themselves.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
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
CONVERGE = 30.0


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


def test_operator_converges_after_an_apiserver_restart(
    own_cluster: tuple[ControlPlane, Cluster],
    pagerduty: tuple[PagerDutySimulator, str],
    tmp_path: Path,
) -> None:
    plane, cluster = own_cluster
    _, pd_url = pagerduty
    cluster.kubectl("create", "namespace", NAMESPACE)
    manifest = f"{pd_secret()}---\n{integration('survivor', pd_url)}"
    cluster.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=manifest)
    # No periodic resync during the test: only watch events can restore the ConfigMap.
    operator = OperatorProcess(
        cluster,
        NAMESPACE,
        tmp_path / "operator.log",
        free_port(),
        free_port(),
        extra_env={"PAGERBRIDGE_RESYNC_SECONDS": "600"},
        # A leader that cannot renew its Lease for the renew deadline exits (in a pod, to be
        # restarted as a follower); this test is about watches surviving the outage, in a
        # process nothing would restart, so the deadline outlasts the outage.
        extra_args=["--lease-duration=120", "--lease-renew-deadline=90"],
    )
    with HarnessKubelet(plane.kubeconfig, tmp_path / "kubelet", NAMESPACE) as kubelet:
        operator.start()
        try:
            wait_for(
                lambda: (
                    condition(get_json(cluster, NAMESPACE, "pdi", "survivor")).get("status")
                    == "True"
                ),
                60,
                "integration Ready before the restart",
            )
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
            _apply(
                cluster,
                {
                    "apiVersion": "pagerbridge.io/v1alpha1",
                    "kind": "PagerDutyTagMapping",
                    "metadata": {"name": "survivor-mapping"},
                    "spec": {
                        "integrationRef": {"name": "survivor"},
                        "mappings": [{"tag": "team", "field": "group"}],
                    },
                },
            )
            wait_for(
                lambda: (
                    {"tag": "team", "field": "group"}
                    in list((_relay_config(cluster) or {}).get("tagMappings") or [])
                ),
                CONVERGE,
                "the ConfigMap recreated with the new tag mapping",
            )
            wait_for(
                lambda: (
                    condition(get_json(cluster, NAMESPACE, "pdtm", "survivor-mapping")).get(
                        "status"
                    )
                    == "True"
                ),
                CONVERGE,
                "the tag mapping Applied",
            )
            converged = time.monotonic() - restarted
            assert (
                condition(get_json(cluster, NAMESPACE, "pdi", "survivor")).get("status") == "True"
            )
            assert operator.process.poll() is None, operator.log()[-3000:]
            assert kubelet.pod(NAMESPACE, "survivor-relay") is not None
            print(f"converged {converged:.1f}s after the API server came back")
        finally:
            operator.stop()
