"""The real-node test bed: a local control plane, one real node, the chart's operator pod.

Shared by the ``realnode`` tier (``tests/realnode``) and the benchmark
(``tests/bench/realnode_ready.py``). Everything runs on this machine: the simulators
listen on the node bridge's gateway address, which pods reach; nothing leaves the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pagerbridge.clients.egress import DEFAULT_ALLOWED_HOSTS
from pagerbridge_devkit.localcluster import ControlPlane, find_binaries
from pagerbridge_devkit.localcluster.node import (
    GATEWAY,
    IMAGE_SCRIPT,
    Node,
    ensure_binaries,
    unavailable_reason,
)

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "pagerbridge"
IMAGE_REPOSITORY, IMAGE_TAG = "localhost/pagerbridge", "dev"
OPERATOR_NAMESPACE = "pagerbridge-system"
RELEASE = "pagerbridge"


class BedUnavailable(RuntimeError):
    """The real node cannot run on this machine (the message says why)."""


def check_runnable() -> None:
    reason = unavailable_reason()
    if reason:
        raise BedUnavailable(reason)


def prepare() -> None:
    """Everything slow and cached, before any test's timeout runs: binaries and the image."""
    check_runnable()
    find_binaries()
    ensure_binaries()
    build_image()


def build_image() -> str:
    """``make image`` (cached: seconds when the sources did not change)."""
    result = subprocess.run(
        ["bash", str(IMAGE_SCRIPT)],
        env={**os.environ, "PAGERBRIDGE_IMAGE": f"{IMAGE_REPOSITORY}:{IMAGE_TAG}"},
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{IMAGE_SCRIPT} failed with exit code {result.returncode}")
    return result.stdout.strip().splitlines()[-1]


@dataclass
class Bed:
    plane: ControlPlane
    node: Node

    @property
    def kubeconfig(self) -> Path:
        return self.plane.kubeconfig

    def _tool(self, name: str) -> str:
        return str(getattr(self.plane.binaries, name))

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return self._run(self._tool("kubectl"), args, input, check, timeout)

    def helm(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        return self._run(self._tool("helm"), args, None, check, timeout)

    def _run(
        self, tool: str, args: tuple[str, ...], input: str | None, check: bool, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [tool, *args],
            input=input,
            env={**os.environ, "KUBECONFIG": str(self.kubeconfig)},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{Path(tool).name} {' '.join(args)} exited {result.returncode}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result

    def get(self, namespace: str, *what: str) -> Any:
        result = self.kubectl("get", "-n", namespace, *what, "-o", "json", check=False)
        return json.loads(result.stdout) if result.returncode == 0 else None

    def install_operator(self) -> None:
        """``helm install`` of the chart with the local image; returns once the pod is Ready."""
        self.helm(
            "install", RELEASE, str(CHART),
            "--namespace", OPERATOR_NAMESPACE, "--create-namespace",
            "--set", f"image.repository={IMAGE_REPOSITORY}",
            "--set", f"image.tag={IMAGE_TAG}",
            "--set", "image.pullPolicy=Never",  # only the imported image, never a registry
            # Each test makes a namespace of its own: serve them all (the chart's default
            # serves the release namespace only).
            "--set", "rbac.scope=cluster",
            # The admin's egress bounds for this bed: the simulators speak plain http on
            # the bridge's gateway, a private address (the public defaults stay allowed).
            "--set", "egress.allowHttp=true",
            "--set", f"egress.allowedHosts={{{','.join((*DEFAULT_ALLOWED_HOSTS, GATEWAY))}}}",
            "--wait", "--timeout", "180s",
        )  # fmt: skip

    def operator_pod(self) -> dict[str, Any]:
        pods = self.get(OPERATOR_NAMESPACE, "pods", "-l", f"app.kubernetes.io/instance={RELEASE}")
        running = [
            p for p in (pods or {}).get("items", []) if p["status"].get("phase") == "Running"
        ]
        assert len(running) == 1, f"expected one running operator pod, got {pods}"
        pod: dict[str, Any] = running[0]
        return pod

    def relay_pods(self, namespace: str, integration: str) -> list[dict[str, Any]]:
        deployment = self.get(namespace, "deployment", f"{integration}-relay")
        if deployment is None:
            return []
        labels = deployment["spec"]["selector"]["matchLabels"]
        selector = ",".join(f"{k}={v}" for k, v in labels.items())
        pods = self.get(namespace, "pods", "-l", selector) or {"items": []}
        items: list[dict[str, Any]] = pods["items"]
        return items

    def ready_relay_pod(self, namespace: str, integration: str) -> dict[str, Any] | None:
        for pod in self.relay_pods(namespace, integration):
            if pod["metadata"].get("deletionTimestamp"):
                continue
            conditions = {c["type"]: c["status"] for c in pod["status"].get("conditions", [])}
            if conditions.get("Ready") == "True":
                return pod
        return None

    def exec(self, namespace: str, pod: str, *argv: str) -> subprocess.CompletedProcess[str]:
        return self.kubectl("exec", "-n", namespace, pod, "--", *argv, check=False)


@contextmanager
def running_bed(workdir: Path) -> Iterator[Bed]:
    """A control plane, a real node and the chart (CRDs + operator); torn down after."""
    # No CRDs up front: the chart installs them, as in a user's `helm install`.
    plane = ControlPlane(workdir / "plane", find_binaries())
    node = Node(workdir / "node", workdir / "plane")
    try:
        plane.start()
        node.start()
        bed = Bed(plane, node)
        bed.install_operator()
        yield bed
    finally:
        problems = node.stop()
        plane.stop()
    if problems:
        raise AssertionError(f"the node's teardown left: {problems}")
