"""Everything the demo runs besides the story, and its orderly teardown.

Started in order, each as one demo step, and stopped in reverse by one
:class:`contextlib.ExitStack`, also when a step fails or the user presses Ctrl-C:

1. a Kubernetes API server: a local control plane (``pagerbridge_devkit.localcluster``; CRDs
   generated in-process, so an installed package needs no ``crds/`` directory) or the
   cluster of a given kubeconfig, plus the demo's namespace;
2. the PagerDuty and BigPanda simulators and the loopback ingress (the relay's public
   URL), each on a :class:`~pagerbridge_devkit.sandbox.server.BackgroundServer`;
3. the operator as its real CLI process (``pagerbridge operator -n NS``, as the operator's
   own e2e tests run it) and the harness kubelet, which runs the relay Deployment the
   operator renders as a local process with its volumes as files.

All files (kubeconfig, logs, relay volumes, outbox) live in one work directory, removed at
the end. ``TMPDIR`` points inside it too, so temporary files of this process and of
everything it starts go away with it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from starlette.types import ASGIApp

from pagerbridge_devkit.demo.ingress import Ingress
from pagerbridge_devkit.demo.kube import Kubectl, find_kubectl
from pagerbridge_devkit.demo.manifests import Sandbox
from pagerbridge_devkit.demo.steps import StepFailed, wait_for
from pagerbridge_devkit.localcluster import ControlPlane
from pagerbridge_devkit.localcluster.kubelet import HarnessKubelet, Pod
from pagerbridge_devkit.localcluster.processes import spawn
from pagerbridge_devkit.localcluster.processes import stop as stop_process
from pagerbridge_devkit.ports import free_port
from pagerbridge_devkit.sandbox import bigpanda as bp
from pagerbridge_devkit.sandbox import pagerduty as pd
from pagerbridge_devkit.sandbox.bigpanda import BigPandaSimulator
from pagerbridge_devkit.sandbox.pagerduty import PagerDutySimulator
from pagerbridge_devkit.sandbox.server import BackgroundServer, loopback_egress_env

LOCAL_NAMESPACE = "pagerbridge-demo"
# A second Events API v2 integration key on the sandbox service: alerts tagged with it
# are routed there instead of the default key (the key override, visible in PagerDuty).
OVERRIDE_ROUTING_KEY = "d8b1c0ffee5a4e77b1c2d3e4f5a6b7c8"


@dataclass
class Environment:
    workdir: Path
    step_timeout: float
    kubeconfig: Path | None = None  # a cluster to use instead of a local control plane
    notify: Callable[[str], None] = print  # progress within a step
    # Where the simulators and the ingress listen: loopback for the harness kubelet's
    # local relay; a real node's bridge address when the relay runs in a pod.
    listen_host: str = "127.0.0.1"
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    logs: dict[str, Path] = field(default_factory=dict)
    cleanup_errors: list[str] = field(default_factory=list)
    plane: ControlPlane | None = None
    kubectl: Kubectl | None = None
    pagerduty: PagerDutySimulator | None = None
    bigpanda: BigPandaSimulator | None = None
    sandbox: Sandbox | None = None
    kubelet: HarnessKubelet | None = None
    operator: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        tmp = self.workdir / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        os.environ["TMPDIR"] = str(tmp)
        tempfile.tempdir = str(tmp)

    @property
    def namespace(self) -> str:
        assert self.kubectl is not None
        return self.kubectl.namespace

    def on_close(self, what: str, action: Callable[[], object]) -> None:
        """Run ``action`` at teardown; a failure is reported, never stops the rest."""

        def guarded() -> None:
            try:
                action()
            except Exception as exc:
                self.cleanup_errors.append(f"{what}: {exc}")

        self.stack.callback(guarded)

    def close(self) -> None:
        self.stack.close()

    # -- 1. Kubernetes --------------------------------------------------------------------

    def start_cluster(self) -> str:
        from pagerbridge.api import crdgen

        crds = self.workdir / "crds"
        crdgen.write_all(crds)
        if self.kubeconfig is None:
            kubeconfig, where = self._start_local_plane(crds), "local control plane"
            namespace = LOCAL_NAMESPACE
        else:  # someone's cluster: a namespace of our own, deleted at the end
            kubeconfig, where = self.kubeconfig.expanduser().resolve(), "given cluster"
            if not kubeconfig.is_file():
                raise StepFailed(f"kubeconfig {kubeconfig} not found")
            namespace = f"{LOCAL_NAMESPACE}-{secrets.token_hex(3)}"
        kubectl = Kubectl(find_kubectl(), kubeconfig, namespace)
        try:
            server = kubectl("get", "--raw", "/readyz", timeout=30).strip()
        except StepFailed as exc:
            raise StepFailed(f"the API server of {kubeconfig} is not reachable ({exc})") from None
        if self.plane is None:
            kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crds))
        kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(crds))
        kubectl("create", "namespace", namespace)
        self.kubectl = kubectl
        if self.plane is None:  # a shared cluster: leave nothing behind
            self.on_close(
                "namespace", lambda: kubectl("delete", "namespace", namespace, "--wait=false")
            )
        crd_names = ", ".join(sorted(p.stem for p in crds.glob("*.yaml")))
        return (
            f"{where}: API server /readyz {server}\n"
            f"CRDs installed from pagerbridge.api: {crd_names}\n"
            f"namespace {namespace}"
        )

    def _start_local_plane(self, crds: Path) -> Path:
        from pagerbridge_devkit.localcluster import BinariesNotFound, find_binaries

        try:
            binaries = find_binaries(build=False)
        except BinariesNotFound:
            self.notify(
                "building etcd, kube-apiserver and kubectl once "
                "(hack/controlplane/build.sh; several minutes)"
            )
            binaries = find_binaries()
        plane = ControlPlane(self.workdir / "cluster", binaries, crds=[crds])
        self.on_close("control plane", plane.stop)
        self.plane = plane
        self.logs["kube-apiserver"] = plane.state_dir / "logs" / "kube-apiserver.log"
        plane.start()
        return plane.kubeconfig

    # -- 2. simulators --------------------------------------------------------------------

    def start_simulators(self) -> str:
        pagerduty = PagerDutySimulator()
        pagerduty.add_service(pd.DEFAULT_SERVICE_ID, OVERRIDE_ROUTING_KEY)
        self.on_close("PagerDuty simulator", pagerduty.close)
        bigpanda = BigPandaSimulator()
        self.on_close("BigPanda simulator", bigpanda.close)
        ingress = Ingress(self.relay_url)
        urls = [
            self._serve(name, app)
            for name, app in (
                ("PagerDuty simulator", pagerduty.app),
                ("BigPanda simulator", bigpanda.app),
                ("ingress", ingress.app),
            )
        ]
        self.pagerduty, self.bigpanda = pagerduty, bigpanda
        self.sandbox = Sandbox(
            pagerduty_url=urls[0],
            bigpanda_url=urls[1],
            public_url=urls[2],
            routing_key=pd.DEFAULT_ROUTING_KEY,
            pagerduty_api_token=pd.DEFAULT_API_TOKEN,
            bigpanda_api_token=bp.DEFAULT_API_TOKEN,
            service_id=pd.DEFAULT_SERVICE_ID,
            environment_id=bp.DEFAULT_ENVIRONMENT_ID,
        )
        return (
            f"PagerDuty (Events API v2, REST API v2, Webhooks v3) at {urls[0]}\n"
            f"BigPanda (webhooks out, Incidents API v2) at {urls[1]}\n"
            f"relay public URL (a loopback stand-in for an Ingress) {urls[2]}"
        )

    def _serve(self, what: str, app: ASGIApp) -> str:
        server = BackgroundServer(app, host=self.listen_host)
        server.__enter__()
        self.on_close(what, lambda: server.__exit__(None, None, None))
        return server.url

    # -- 3. operator and harness kubelet --------------------------------------------------

    def start_operator(self) -> str:
        assert self.kubectl is not None
        kubeconfig, namespace = self.kubectl.kubeconfig, self.namespace
        kubelet = HarnessKubelet(kubeconfig, self.workdir / "kubelet", namespace)
        kubelet.start()
        self.on_close("harness kubelet", kubelet.stop)
        self.kubelet = kubelet

        liveness, metrics = free_port(), free_port()
        log_path = self.workdir / "operator.log"
        self.logs["operator"] = log_path
        with log_path.open("ab") as log:
            # Own session (Ctrl-C in the terminal reaches the demo only) and SIGTERM when
            # the demo dies, even by SIGKILL (localcluster.processes).
            process = spawn(
                [
                    sys.executable, "-m", "pagerbridge", "operator", "--namespace", namespace,
                    "--liveness", f"http://127.0.0.1:{liveness}/healthz",
                    "--metrics-port", str(metrics),
                ],
                stdout=log,
                env={**os.environ, "KUBECONFIG": str(kubeconfig), **loopback_egress_env()},
            )  # fmt: skip
        self.on_close("operator", lambda: stop_process(process, timeout=15))
        self.operator = process
        if self.plane is None:
            # On a shared cluster the finalizers must run (they delete the PagerDuty
            # webhook subscription) while the operator and the simulators still live.
            self.on_close("integrations", self._delete_integrations)

        def alive() -> bool:
            if process.poll() is not None:
                raise StepFailed(f"the operator exited with code {process.returncode}")
            return _http_ok(f"http://127.0.0.1:{liveness}/healthz")

        wait_for(alive, "the operator's liveness probe", self.step_timeout)
        return (
            f"pagerbridge operator (pid {process.pid}) watching namespace {namespace}; "
            f"liveness :{liveness}, metrics :{metrics}\n"
            "harness kubelet: runs the relay Deployments the operator renders as local "
            "processes"
        )

    def _delete_integrations(self) -> None:
        assert self.kubectl is not None
        self.kubectl("delete", "pdi", "--all", "-n", self.namespace, "--timeout=30s", timeout=40)

    # -- the running relay ----------------------------------------------------------------

    def relay_pod(self) -> Pod | None:
        """The relay the harness kubelet runs in the demo namespace, when it runs."""
        if self.kubelet is None:
            return None
        for pod in list(self.kubelet.pods.values()):
            if pod.namespace == self.namespace and pod.running():
                return pod
        return None

    def relay_url(self) -> str | None:
        """The relay's public port (the two webhooks; what the demo's ingress forwards to)."""
        pod = self.relay_pod()
        return pod.url if pod is not None else None

    def relay_internal_url(self) -> str | None:
        """The relay's internal port (metrics, probes, admin API)."""
        pod = self.relay_pod()
        return pod.internal_url if pod is not None else None


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False
