"""The local control plane itself: lifecycle, no leftovers, RBAC, garbage collection."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
import yaml

from pagerbridge_devkit.localcluster import ControlPlane, ControlPlaneError, find_binaries

from .conftest import REPO, Cluster

pytestmark = pytest.mark.e2e

local_only = pytest.mark.skipif(
    bool(os.environ.get("PAGERBRIDGE_E2E_KUBECONFIG")),
    reason="exercises the local control plane, not an external cluster",
)


def _gone(pids: list[int], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [
            pid
            for pid in pids
            if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        ]
        if not alive:
            return True
        time.sleep(0.1)
    return False


def _localcluster(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pagerbridge_devkit.localcluster", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=REPO,
    )


@local_only
def test_detached_up_down_leaves_nothing_behind(tmp_path: Path) -> None:
    state = tmp_path / "cluster"
    up = _localcluster("up", "--dir", str(state), "--crds", str(REPO / "crds"))
    try:
        assert up.returncode == 0, up.stderr
        recorded = json.loads((state / "state.json").read_text())["processes"]
        pids = [p["pid"] for p in recorded]
        assert [p["name"] for p in recorded] == [
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
        ]
        kubeconfig = state / "kubeconfig"
        # Credentials are readable by the owner only and never printed.
        assert stat.S_IMODE(kubeconfig.stat().st_mode) == 0o600
        assert "PRIVATE KEY" not in up.stdout + up.stderr
        assert "client-key-data" not in up.stdout + up.stderr
        for key in (state / "pki").glob("*.key"):
            assert stat.S_IMODE(key.stat().st_mode) == 0o600, key

        kubectl = find_binaries().kubectl
        env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
        version = subprocess.run(
            [str(kubectl), "get", "--raw", "/version"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(version.stdout)["gitVersion"] == "v1.34.12"
        crds = subprocess.run(
            [str(kubectl), "get", "crd", "-o", "name"], env=env, capture_output=True, text=True
        )
        assert "pagerdutyintegrations.pagerbridge.io" in crds.stdout

        again = _localcluster("up", "--dir", str(state))
        assert again.returncode == 0
        assert "already running" in again.stdout
        assert _localcluster("status", "--dir", str(state)).returncode == 0
    finally:
        down = _localcluster("down", "--dir", str(state))
    assert down.returncode == 0, down.stderr
    assert _gone(pids), "control-plane processes still running after down"
    assert not state.exists()
    assert _localcluster("status", "--dir", str(state)).returncode == 1


@local_only
def test_failed_start_cleans_up_and_quotes_the_log(tmp_path: Path) -> None:
    broken = dataclasses.replace(find_binaries(), kube_apiserver=Path("/bin/false"))
    plane = ControlPlane(tmp_path / "cp", binaries=broken, start_timeout=20)
    me = psutil.Process()
    before = {child.pid for child in me.children(recursive=True)}
    with pytest.raises(ControlPlaneError, match="kube-apiserver exited with code 1"):
        plane.start()
    # stop() ran inside start(): etcd, which did start, is gone too.
    assert plane.pids == {}
    assert not (tmp_path / "cp" / "state.json").exists()
    assert (tmp_path / "cp" / "logs" / "etcd.log").exists()
    left = [child.pid for child in me.children(recursive=True) if child.pid not in before]
    assert _gone(left)


@local_only
def test_context_manager_stops_every_process() -> None:
    with ControlPlane(controller_manager=False) as plane:
        pids = list(plane.pids.values())
        state_dir = plane.state_dir
        assert len(pids) == 2
        assert plane.kubeconfig.is_file()
    assert _gone(pids)
    assert not state_dir.exists()


def test_rbac_is_enforced_for_service_accounts(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    sa_config = cluster.service_account_kubeconfig(namespace, "reader", tmp_path / "sa.yaml")
    context = yaml.safe_load(sa_config.read_text())["contexts"][0]["context"]
    assert context["namespace"] == namespace
    as_sa = {**cluster.env, "KUBECONFIG": str(sa_config)}

    def can_i(verb: str, resource: str) -> str:
        result = subprocess.run(
            [str(cluster.kubectl_path), "auth", "can-i", verb, resource, "-n", namespace],
            env=as_sa,
            capture_output=True,
            text=True,
            timeout=30,
        )
        return result.stdout.strip()

    denied = subprocess.run(
        [str(cluster.kubectl_path), "get", "pdi", "-n", namespace],
        env=as_sa,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert denied.returncode != 0
    assert "Forbidden" in denied.stderr
    assert f"system:serviceaccount:{namespace}:reader" in denied.stderr
    assert can_i("list", "pagerdutyintegrations.pagerbridge.io") == "no"

    cluster.kubectl(
        "create", "role", "pdi-reader", "-n", namespace,
        "--verb=get,list,watch", "--resource=pagerdutyintegrations.pagerbridge.io",
    )  # fmt: skip
    cluster.kubectl(
        "create", "rolebinding", "pdi-reader", "-n", namespace,
        "--role=pdi-reader", f"--serviceaccount={namespace}:reader",
    )  # fmt: skip
    deadline = time.monotonic() + 15
    while can_i("list", "pagerdutyintegrations.pagerbridge.io") != "yes":
        assert time.monotonic() < deadline, "RoleBinding never took effect"
        time.sleep(0.2)
    assert can_i("list", "secrets") == "no"


def test_owned_objects_are_garbage_collected(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl(
        "apply", "--server-side", "-n", namespace, "-f", str(REPO / "examples/01-minimal.yaml")
    )
    uid = cluster.kubectl(
        "get", "pdi", "minimal", "-n", namespace, "-o", "jsonpath={.metadata.uid}"
    ).stdout
    child = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "minimal-relay",
            "ownerReferences": [
                {
                    "apiVersion": "pagerbridge.io/v1alpha1",
                    "kind": "PagerDutyIntegration",
                    "name": "minimal",
                    "uid": uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "data": {"relay.json": "{}"},
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(child))
    cluster.kubectl("delete", "pdi", "minimal", "-n", namespace, "--wait=false")
    deadline = time.monotonic() + 20
    while (
        cluster.kubectl(
            "get", "configmap", "minimal-relay", "-n", namespace, check=False
        ).returncode
        == 0
    ):
        assert time.monotonic() < deadline, "owned ConfigMap not garbage-collected within 20 s"
        time.sleep(0.2)


def test_namespace_deletion_completes(cluster: Cluster) -> None:
    doomed = f"pb-e2e-doomed-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", doomed)
    cluster.kubectl("apply", "--server-side", "-n", doomed, "-f", str(REPO / "examples"))
    cluster.kubectl("delete", "namespace", doomed, "--timeout=60s", timeout=90)
    gone = cluster.kubectl("get", "namespace", doomed, check=False)
    assert gone.returncode != 0
    assert "NotFound" in gone.stderr
