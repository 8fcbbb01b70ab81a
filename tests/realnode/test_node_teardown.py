"""The node's teardown gives the machine back as it found it, whatever state the node is in.

Each test starts a node of its own (before the tier's shared bed: see ``conftest.py``), runs
pods on it, puts the node in an adverse state and tears it down. Then the host must equal
the snapshot taken before the node started: no process of the runtime or of a pod, no
mount, network namespace, veth, bridge or cgroup of the node, the sysctls as they were and
iptables and ip6tables (filter, nat, mangle) rule for rule as they were.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from pagerbridge_devkit.localcluster import ControlPlane, find_binaries
from pagerbridge_devkit.localcluster.node import (
    PAUSE_IMAGE,
    STATE_FILE,
    HostSnapshot,
    Node,
    running,
    unavailable_reason,
)

REPLICAS = 3


@pytest.fixture
def plane_dir(tmp_path: Path) -> Iterator[Path]:
    """A control plane of the test's own (a node's PersistentVolumes name its directory)."""
    reason = unavailable_reason()
    if reason:
        pytest.fail(f"realnode tier cannot run (CI=true): {reason}")
    workdir = tmp_path / "plane"
    plane = ControlPlane(workdir, find_binaries())
    plane.start()
    try:
        yield workdir
    finally:
        plane.stop()


def kubectl(node: Node, *args: str, input: str | None = None) -> str:
    return node.kubectl(*args, input=input).stdout


def start_pods(node: Node, namespace: str) -> None:
    """A Deployment of ``REPLICAS`` pods (the pause image: no image pull, starts at once)."""
    kubectl(node, "create", "namespace", namespace)
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "sleeper", "namespace": namespace},
        "spec": {
            "replicas": REPLICAS,
            "selector": {"matchLabels": {"app": "sleeper"}},
            "template": {
                "metadata": {"labels": {"app": "sleeper"}},
                "spec": {
                    "terminationGracePeriodSeconds": 30,
                    "containers": [
                        {"name": "sleeper", "image": PAUSE_IMAGE, "imagePullPolicy": "Never"}
                    ],
                },
            },
        },
    }
    kubectl(node, "apply", "-f", "-", input=yaml.safe_dump(deployment))
    kubectl(node, "rollout", "status", "-n", namespace, "deployment/sleeper", "--timeout=180s")


def kill_runtime(node: Node, namespace: str) -> None:
    """A crashed node: kubelet and containerd SIGKILLed, their shims and pods orphaned."""
    for name, pid in running(node.state_dir):
        if name in ("kubelet", "containerd"):
            os.kill(pid, signal.SIGKILL)


def lose_the_record(node: Node, namespace: str) -> None:
    """The recorded process identities no longer match (what a boot time moved by a clock
    step did to the wall-clock start times recorded before): the teardown must still find
    the node's processes, by its own directory."""
    path = node.state_dir / STATE_FILE
    state = json.loads(path.read_text())
    for entry in state["processes"]:
        entry["startTicks"] = entry.get("startTicks", 0) + 100
        entry["createTime"] = entry.get("createTime", 0.0) + 1.0
    path.write_text(json.dumps(state))
    assert running(node.state_dir) == []


def churn_pods(node: Node, namespace: str) -> None:
    """Teardown while pods terminate and new sandboxes are being created."""
    pods = kubectl(node, "get", "pods", "-n", namespace, "-o", "name").split()
    kubectl(node, "delete", "-n", namespace, pods[0], "--wait=false")
    kubectl(node, "scale", "-n", namespace, "deployment/sleeper", f"--replicas={REPLICAS + 3}")


ADVERSITIES: dict[str, Callable[[Node, str], None]] = {
    "runtime-killed": kill_runtime,
    "record-lost": lose_the_record,
    "pods-churning": churn_pods,
}


@pytest.mark.parametrize("adversity", sorted(ADVERSITIES))
def test_teardown_gives_the_host_back_as_it_was(
    plane_dir: Path, tmp_path: Path, adversity: str
) -> None:
    namespace = f"teardown-{adversity}"
    before = HostSnapshot.take()
    node = Node(tmp_path / "node", plane_dir)
    try:
        node.start()
        start_pods(node, namespace)
        during = HostSnapshot.take()
        # The node did change the host (else the comparison below proves nothing).
        assert set(before.differences(during)) >= {"processes", "mounts", "links", "iptables"}
        ADVERSITIES[adversity](node, namespace)
    finally:
        problems = node.stop()
    assert problems == []
    assert before.differences(HostSnapshot.take()) == {}
    assert not (tmp_path / "node").exists()
