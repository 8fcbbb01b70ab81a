"""``ControlPlane``: etcd + kube-apiserver + a limited kube-controller-manager on loopback.

The envtest pattern (Kubebuilder/controller-runtime) with two additions: RBAC
authorization, so permission tests mean something, and a controller-manager running only
the garbage-collector, namespace and ClusterRole-aggregation controllers, so ownerReference
cascades, namespace deletion and aggregated roles (the chart's view/edit roles) behave as
in a real cluster. There is no kubelet and no scheduler: Deployments
never get pods.

The API server keeps an audit log (``audit_log``) of one kind of request only: every
``list`` and ``watch`` of Secrets, with its URL, so a test can check that a client asks
for Secrets with a label selector (RBAC cannot tell; see the chart's RBAC tests).

CRDs given to the constructor are installed *before* the controller-manager starts: its
garbage collector discovers new resource kinds only every 30 seconds, so a CRD installed
later would see its ownerReference cascades delayed by up to that long.

Every process runs in its own process group, so ``stop()`` ends it together with anything
it spawned; unless detached, each gets SIGTERM when the thread that started it exits
(``localcluster.processes``), so a SIGKILLed test run leaves no control plane behind. A
control plane started with ``detach=True`` outlives the Python process that started it
(``make cluster-up``); its pids are recorded in ``<state_dir>/state.json`` and
``stop_recorded(state_dir)`` ends it later from another process.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import psutil

from pagerbridge_devkit.localcluster import certs
from pagerbridge_devkit.localcluster.binaries import Binaries, find_binaries
from pagerbridge_devkit.localcluster.kubeconfig import write_admin_kubeconfig
from pagerbridge_devkit.localcluster.processes import end_group, spawn
from pagerbridge_devkit.ports import free_port

STATE_FILE = "state.json"
AUDIT_LOG = "audit.log"
# Metadata (user, verb, requestURI) of Secret lists and watches, nothing else.
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
    verbs: ["list", "watch"]
    resources: [{group: "", resources: ["secrets"]}]
  - level: None
"""
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
# Where pods of a real node reach the API server (localcluster.node.GATEWAY).
ADVERTISE_ADDRESS = "10.244.0.1"


class ControlPlaneError(RuntimeError):
    """A component did not start or did not become ready (the message quotes its log)."""


@dataclass
class _Component:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes] = field(repr=False)


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class ControlPlane:
    """A local Kubernetes control plane; a context manager.

    ``state_dir`` holds certificates, etcd's data, logs and the admin kubeconfig; without
    one a temporary directory is used and removed by ``stop()``.
    """

    def __init__(
        self,
        state_dir: Path | None = None,
        binaries: Binaries | None = None,
        *,
        detach: bool = False,
        controller_manager: bool = True,
        crds: Sequence[Path] = (),
        start_timeout: float = 90.0,
    ) -> None:
        self._owns_dir = state_dir is None
        self.state_dir = (
            Path(tempfile.mkdtemp(prefix="pagerbridge-cp-")) if state_dir is None else state_dir
        )
        self._binaries = binaries
        self.detach = detach
        self.controller_manager = controller_manager
        self.crds = tuple(crds)
        self.start_timeout = start_timeout
        self._components: list[_Component] = []
        self.apiserver_port = 0
        self._pki: certs.Pki | None = None
        self._etcd_url = ""

    # --- public surface -------------------------------------------------------------

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def audit_log(self) -> Path:
        """JSON lines: the API server's audit events (Secret lists and watches only)."""
        return self.state_dir / AUDIT_LOG

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def binaries(self) -> Binaries:
        if self._binaries is None:
            self._binaries = find_binaries()
        return self._binaries

    @property
    def pids(self) -> dict[str, int]:
        return {c.name: c.process.pid for c in self._components}

    def start(self) -> ControlPlane:
        """Starts every component and returns once the API server answers ``/readyz``."""
        binaries = self.binaries
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "logs").mkdir(exist_ok=True)
        try:
            pki = self._pki = certs.generate(self.state_dir / "pki")
            etcd_url = self._etcd_url = self._start_etcd(binaries)
            self.apiserver_port = free_port()
            self._start_apiserver(binaries, pki, etcd_url)
            write_admin_kubeconfig(
                self.kubeconfig, self.url, pki.ca_cert, pki.admin_cert, pki.admin_key
            )
            self._wait_ready(pki)
            if self.crds:
                self._install_crds(binaries)
            if self.controller_manager:
                self._start_controller_manager(binaries)
            self._record_state()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Ends every component (newest first) and waits until they are gone."""
        for component in reversed(self._components):
            end_group(component.process.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                component.process.wait(timeout=5)
            component.log_file.close()
        self._components.clear()
        (self.state_dir / STATE_FILE).unlink(missing_ok=True)
        if self._owns_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def stop_apiserver(self) -> None:
        """Ends kube-apiserver alone (etcd keeps the data): clients see connection errors."""
        for component in [c for c in self._components if c.name == "kube-apiserver"]:
            end_group(component.process.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                component.process.wait(timeout=5)
            component.log_file.close()
            self._components.remove(component)

    def start_apiserver(self) -> None:
        """Starts kube-apiserver again on the same port, certificates and etcd; returns
        once ``/readyz`` answers. Watches of clients must reconnect on their own."""
        if self._pki is None or any(c.name == "kube-apiserver" for c in self._components):
            raise ControlPlaneError("start_apiserver() needs a started plane without one")
        self._start_apiserver(self.binaries, self._pki, self._etcd_url)
        self._wait_ready(self._pki)
        self._record_state()

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- components -----------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> _Component:
        log_path = self.state_dir / "logs" / f"{name}.log"
        log_file = log_path.open("ab")
        # Own process group (stop() ends it and its children); unless detached, it gets
        # SIGTERM when the thread that started it exits (see localcluster.processes).
        process = spawn(argv, stdout=log_file, cwd=self.state_dir, die_with_parent=not self.detach)
        component = _Component(name, process, log_path, log_file)
        self._components.append(component)
        return component

    def _check_alive(self) -> None:
        for component in self._components:
            code = component.process.poll()
            if code is not None:
                raise ControlPlaneError(
                    f"{component.name} exited with code {code}; last lines of "
                    f"{component.log_path}:\n{_tail(component.log_path)}"
                )

    def _start_etcd(self, binaries: Binaries) -> str:
        client, peer = free_port(), free_port()
        client_url, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
        self._spawn(
            "etcd",
            [
                str(binaries.etcd),
                "--name=default",
                f"--data-dir={self.state_dir / 'etcd'}",
                f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                "--unsafe-no-fsync=true",  # test data: speed over durability
                "--log-level=warn",
            ],
        )
        self._poll(lambda: _http_ok(f"{client_url}/health"), "etcd /health")
        return client_url

    def _start_apiserver(self, binaries: Binaries, pki: certs.Pki, etcd_url: str) -> None:
        policy = self.state_dir / "audit-policy.yaml"
        policy.write_text(AUDIT_POLICY)
        self._spawn(
            "kube-apiserver",
            [
                str(binaries.kube_apiserver),
                f"--etcd-servers={etcd_url}",
                f"--cert-dir={self.state_dir / 'apiserver-certs'}",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                f"--client-ca-file={pki.ca_cert}",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.apiserver_port}",
                "--service-cluster-ip-range=10.96.0.0/24",
                "--authorization-mode=RBAC",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-account-key-file={pki.sa_pub}",
                f"--service-account-signing-key-file={pki.sa_key}",
                # The `kubernetes` Service's endpoint: the real node's bridge address,
                # forwarded to this loopback port (localcluster.node); unused without one.
                f"--advertise-address={ADVERTISE_ADDRESS}",
                "--allow-privileged=true",
                f"--audit-policy-file={policy}",
                f"--audit-log-path={self.audit_log}",
                "--audit-log-maxsize=20",  # megabytes, then rotated
                "--audit-log-maxbackup=1",
                "--v=1",
            ],
        )

    def _start_controller_manager(self, binaries: Binaries) -> None:
        port = free_port()
        self._spawn(
            "kube-controller-manager",
            [
                str(binaries.kube_controller_manager),
                f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                "--controllers=garbagecollector,namespace,clusterrole-aggregation",
                "--use-service-account-credentials=false",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={self.state_dir / 'controller-manager-certs'}",
                "--v=1",
            ],
        )
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE  # its own self-signed cert, on loopback
        self._poll(
            lambda: _http_ok(f"https://127.0.0.1:{port}/healthz", insecure),
            "kube-controller-manager /healthz",
        )

    def _install_crds(self, binaries: Binaries) -> None:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        files = [arg for path in self.crds for arg in ("-f", str(path))]
        for argv in (
            ["apply", "--server-side", *files],
            ["wait", "--for=condition=Established", "--timeout=60s", *files],
        ):
            result = subprocess.run(
                [str(binaries.kubectl), *argv], env=env, capture_output=True, text=True, check=False
            )
            if result.returncode != 0:
                raise ControlPlaneError(f"kubectl {argv[0]} of the CRDs failed: {result.stderr}")

    def _wait_ready(self, pki: certs.Pki) -> None:
        context = ssl.create_default_context(cafile=str(pki.ca_cert))
        context.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
        self._poll(lambda: _http_ok(f"{self.url}/readyz", context), "kube-apiserver /readyz")

    def _poll(self, probe: Any, what: str) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            self._check_alive()
            if probe():
                return
            if time.monotonic() > deadline:
                logs = "\n".join(
                    f"--- {c.log_path}:\n{_tail(c.log_path)}" for c in self._components
                )
                raise ControlPlaneError(f"{what} not ready after {self.start_timeout}s\n{logs}")
            time.sleep(0.2)

    # --- detached runs ----------------------------------------------------------------

    def _record_state(self) -> None:
        state = {
            "url": self.url,
            "kubeconfig": str(self.kubeconfig),
            "processes": [
                {
                    "name": c.name,
                    "pid": c.process.pid,
                    "createTime": psutil.Process(c.process.pid).create_time(),
                }
                for c in self._components
            ],
        }
        (self.state_dir / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")


def _http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:  # noqa: S310
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def recorded_processes(state_dir: Path) -> list[psutil.Process]:
    """The still-running processes of a detached control plane (pid reuse ruled out)."""
    path = state_dir / STATE_FILE
    if not path.is_file():
        return []
    alive = []
    for entry in json.loads(path.read_text())["processes"]:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(entry["pid"])
            same = abs(proc.create_time() - entry["createTime"]) < 0.01
            if same and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
    return alive


def stop_recorded(state_dir: Path) -> int:
    """Stops a detached control plane started with ``state_dir``; returns how many it ended."""
    procs = recorded_processes(state_dir)
    for proc in reversed(procs):
        end_group(proc.pid)
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    return len(procs)
