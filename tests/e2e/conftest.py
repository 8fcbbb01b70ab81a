"""Fixtures of the e2e suite: one real Kubernetes API server per test session.

By default the session starts a local control plane (etcd + kube-apiserver + a
kube-controller-manager limited to garbage collection and namespace deletion, see
``pagerbridge_devkit.localcluster``). When ``PAGERBRIDGE_E2E_KUBECONFIG`` names a kubeconfig
(kind, or any test cluster), that cluster is used instead and nothing is started.
Either way the CRDs in ``crds/`` are applied once per session.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from pagerbridge_devkit.localcluster import ControlPlane, find_binaries, service_account_kubeconfig
from pagerbridge_devkit.localcluster.binaries import tools_dir
from pagerbridge_devkit.localcluster.kubelet import HarnessKubelet

REPO = Path(__file__).resolve().parents[2]
CRDS_DIR = REPO / "crds"
E2E_DIR = Path(__file__).resolve().parent
EXTERNAL_KUBECONFIG_ENV = "PAGERBRIDGE_E2E_KUBECONFIG"


@dataclass
class Cluster:
    """A reachable API server and the CLI tools to talk to it."""

    kubeconfig: Path
    kubectl_path: Path
    helm_path: Path
    local: ControlPlane | None = None
    env: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    @property
    def server(self) -> str:
        config = yaml.safe_load(self.kubeconfig.read_text())
        current = config["current-context"]
        context = next(c["context"] for c in config["contexts"] if c["name"] == current)
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
        server: str = cluster["server"]
        return server

    def _run(
        self, tool: Path, args: tuple[str, ...], input: str | None, check: bool, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(tool), *args],
            input=input,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{tool.name} {' '.join(args)} exited {result.returncode}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return self._run(self.kubectl_path, args, input, check, timeout)

    def helm(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return self._run(self.helm_path, args, input, check, timeout)

    def service_account_kubeconfig(self, namespace: str, name: str, path: Path) -> Path:
        """A kubeconfig acting as ServiceAccount ``namespace/name`` (created when missing)."""
        return service_account_kubeconfig(self.kubeconfig, self.kubectl_path, namespace, name, path)


def _client_tools() -> tuple[Path, Path]:
    """kubectl and helm: the cached ones, else the PATH's, else build the cache."""
    cached = tools_dir()
    found = []
    for name in ("kubectl", "helm"):
        path = cached / name
        if not os.access(path, os.X_OK):
            on_path = shutil.which(name)
            path = Path(on_path) if on_path else getattr(find_binaries(), name)
        found.append(path)
    return found[0], found[1]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if E2E_DIR in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.e2e)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build the control-plane binaries (minutes, first time only) before any test runs,
    outside the per-test timeout, when e2e tests are selected and no cluster is given."""
    selected = any(E2E_DIR in Path(str(item.path)).parents for item in session.items)
    if selected and not os.environ.get(EXTERNAL_KUBECONFIG_ENV):
        find_binaries()


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    external = os.environ.get(EXTERNAL_KUBECONFIG_ENV)
    plane: ControlPlane | None = None
    if external:
        kubeconfig = Path(external).expanduser().resolve()
        if not kubeconfig.is_file():
            pytest.fail(f"{EXTERNAL_KUBECONFIG_ENV}={external}: no such kubeconfig")
        kubectl, helm = _client_tools()
    else:
        binaries = find_binaries()
        # CRDs go in before the controller-manager starts, so its garbage collector
        # watches our kinds from the first second (it rediscovers kinds only every 30 s).
        plane = ControlPlane(binaries=binaries, crds=[CRDS_DIR]).start()
        kubeconfig, kubectl, helm = plane.kubeconfig, binaries.kubectl, binaries.helm
    try:
        handle = Cluster(kubeconfig, kubectl, helm, local=plane)
        handle.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS_DIR))
        handle.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(CRDS_DIR))
        yield handle
    finally:
        if plane is not None:
            plane.stop()


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    """A fresh namespace, deleted (without waiting) after the test."""
    name = f"pb-e2e-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def kubelet(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[HarnessKubelet]:
    with HarnessKubelet(cluster.kubeconfig, tmp_path / "kubelet", namespace) as harness:
        yield harness
