"""Benchmark: 300 integrations at once, operator vs. the floor, on one local API server.

    python tests/bench/operator_scale.py [--count 300]

Prints, from the same run on the same API server:
* floor: a plain async client creating the same 300 sets of children (ConfigMap, Secret,
  Deployment, Service) concurrently;
* operator: time from creating 300 PagerDutyIntegrations (concurrently) until all are
  Ready, with the harness kubelet reporting relay Deployments ready (no processes), and
  the operator process's peak RSS;
* the operator's API requests per integration (from its
  ``pagerbridge_operator_api_requests_total``, by client, verb and resource) and its
  reconciles per integration, counted between the creation and all Ready, and the few
  that still came in a settling period after (the floor makes 4 requests per integration);
* time from a tag-mapping change to a running relay using it (one relay process).

The machine's load average is printed with the figures: the ratio to the floor from the
same run cancels some of a shared machine's noise, the request counts all of it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psutil

from pagerbridge.api import PagerDutyIntegrationSpec
from pagerbridge.clients.kubernetes import (
    KubernetesClient,
    Resource,
    load_credentials,
)
from pagerbridge.controller.render.children import Owner, RenderSettings, render_children
from pagerbridge.controller.render.compile import compile_relay_config
from pagerbridge.controller.state.observed import SecretInfo
from pagerbridge_devkit.localcluster import ControlPlane, find_binaries
from pagerbridge_devkit.localcluster.kubelet import ANNOTATION_URL, HarnessKubelet
from pagerbridge_devkit.ports import free_port
from pagerbridge_devkit.sandbox.pagerduty import DEFAULT_ROUTING_KEY, PagerDutySimulator
from pagerbridge_devkit.sandbox.server import BackgroundServer, loopback_egress_env

REPO = Path(__file__).resolve().parents[2]
PDI = Resource.custom("pagerbridge.io", "v1alpha1", "pagerdutyintegrations")
PDTM = Resource.custom("pagerbridge.io", "v1alpha1", "pagerdutytagmappings")
SETTLE_SECONDS = 5.0  # after all Ready: what the operator still sends (re-reconciles)


class BenchControlPlane(ControlPlane):
    """The local control plane with room for 600+ Services (its default range is a /24)."""

    def _spawn(self, name: str, argv: list[str]) -> Any:
        argv = [
            "--service-cluster-ip-range=10.96.0.0/16"
            if arg.startswith("--service-cluster-ip-range=")
            else arg
            for arg in argv
        ]
        return super()._spawn(name, argv)


def spec_body(pd_url: str) -> dict[str, Any]:
    return {
        "pagerDuty": {"routingKey": {"name": "pd", "key": "routing-key"}, "eventsUrl": pd_url},
        "sync": {"notes": False},
    }


def secret(namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"routing-key": base64.b64encode(DEFAULT_ROUTING_KEY.encode()).decode()},
    }


async def create_namespace(kube: KubernetesClient, name: str) -> None:
    await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


async def floor(kube: KubernetesClient, count: int, pd_url: str) -> float:
    namespace = "bench-floor"
    await create_namespace(kube, namespace)
    spec = PagerDutyIntegrationSpec.model_validate(spec_body(pd_url))
    secrets = {"pd": SecretInfo(frozenset({"routing-key"}), frozenset({"routing-key"}))}

    async def one(index: int) -> None:
        owner = Owner(namespace, f"i{index:04d}", "00000000-0000-0000-0000-000000000000")
        compiled = compile_relay_config(
            namespace, owner.name, spec, [], [], secrets, webhook_secret=False
        )
        children = render_children(owner, spec, compiled, RenderSettings("example/pagerbridge:0"))
        for manifest in (children.config_map, children.deployment, children.service):
            manifest["metadata"].pop("ownerReferences")
        token = secret(namespace, owner.names.token_secret)
        await asyncio.gather(
            kube.create(children.config_map),
            kube.create(token),
            kube.create(children.deployment),
            kube.create(children.service),
        )

    started = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(count)))
    return time.monotonic() - started


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.1)


Sample = Counter[tuple[str, ...]]
COUNTED = ("pagerbridge_operator_api_requests_total", "pagerbridge_operator_reconciles_total")
LABELS = {COUNTED[0]: ("client", "verb", "resource"), COUNTED[1]: ("kind", "result")}


def scrape(metrics_port: int) -> Sample:
    """The counters of :data:`COUNTED`, keyed by (name, label values...)."""
    sample: Sample = Counter()
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
    for line in text.splitlines():
        if not line.startswith(COUNTED):
            continue
        series, _, value = line.rpartition(" ")
        name, _, labels = series.partition("{")
        pairs = dict(part.split("=", 1) for part in labels.rstrip("}").split(",") if part)
        names = LABELS[name]
        sample[(name, *(pairs[label].strip('"') for label in names))] += int(float(value))
    return sample


def wait_for_metrics(metrics_port: int, operator: subprocess.Popen[bytes]) -> None:
    """Until the operator serves its metrics (slow to start on a loaded machine)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and operator.poll() is None:
        try:
            httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)
            return
        except httpx.HTTPError:
            time.sleep(0.5)
    raise RuntimeError("the operator never served its metrics (see operator.log)")


def breakdown(before: Sample, after: Sample, count: int, title: str) -> None:
    diff = after.copy()
    diff.subtract(before)
    requests = {k[1:]: v for k, v in diff.items() if k[0] == COUNTED[0] and v}
    reconciles = {k[1:]: v for k, v in diff.items() if k[0] == COUNTED[1] and v}
    total = sum(requests.values())
    print(f"{title}: {total} API requests, {total / count:.2f} per integration")
    for (client, verb, resource), value in sorted(requests.items(), key=lambda kv: -kv[1]):
        print(f"  {client:8} {verb:6} {resource:34} {value:6}  {value / count:5.2f}/integration")
    for (kind, result), value in sorted(reconciles.items()):
        print(f"  reconciles {kind} {result}: {value} ({value / count:.2f}/integration)")


async def operator_run(
    kube: KubernetesClient, count: int, pd_url: str, metrics_port: int
) -> tuple[float, Sample, Sample]:
    namespace = "bench-operator"
    await kube.create(secret(namespace, "pd"))
    before = await asyncio.to_thread(scrape, metrics_port)
    started = time.monotonic()
    await asyncio.gather(
        *(
            kube.create(
                {
                    "apiVersion": "pagerbridge.io/v1alpha1",
                    "kind": "PagerDutyIntegration",
                    "metadata": {"name": f"i{i:04d}", "namespace": namespace},
                    "spec": spec_body(pd_url),
                },
                PDI,
            )
            for i in range(count)
        )
    )
    while True:
        items = (await kube.list(PDI, namespace))["items"]
        ready = sum(
            1
            for item in items
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in (item.get("status") or {}).get("conditions", [])
            )
        )
        if ready == count:
            elapsed = time.monotonic() - started
            return elapsed, before, await asyncio.to_thread(scrape, metrics_port)
        if time.monotonic() - started > 600:
            raise RuntimeError(f"only {ready}/{count} Ready after 600 s")
        await asyncio.sleep(0.5)


async def mapping_latency(kube: KubernetesClient, pd: PagerDutySimulator, pd_url: str) -> float:
    namespace = "bench-mapping"
    await kube.create(secret(namespace, "pd"))
    await kube.create(
        {
            "apiVersion": "pagerbridge.io/v1alpha1",
            "kind": "PagerDutyIntegration",
            "metadata": {"name": "m", "namespace": namespace},
            "spec": spec_body(pd_url),
        },
        PDI,
    )
    deployments = Resource.builtin("Deployment")
    url = None
    while url is None:
        try:
            dep = await kube.get(deployments, namespace, "m-relay")
            url = (dep["metadata"].get("annotations") or {}).get(ANNOTATION_URL)
            if (dep.get("status") or {}).get("readyReplicas") != 1:
                url = None
        except Exception:
            pass
        await asyncio.sleep(0.2)
    token_secret = await kube.get(Resource.builtin("Secret"), namespace, "m-relay-token")
    token = base64.b64decode(token_secret["data"]["token"]).decode()
    started = time.monotonic()
    await kube.create(
        {
            "apiVersion": "pagerbridge.io/v1alpha1",
            "kind": "PagerDutyTagMapping",
            "metadata": {"name": "tm", "namespace": namespace},
            "spec": {
                "integrationRef": {"name": "m"},
                "mappings": [{"tag": "team", "field": "group"}],
            },
        },
        PDTM,
    )
    attempt = 0
    async with httpx.AsyncClient(timeout=5) as http:
        while True:
            attempt += 1
            incident_id = f"bench{attempt:06d}"
            await http.post(
                url + "/v1/bigpanda/webhook",
                headers={"Authorization": f"Bearer {token}"},
                json={
                    "id": incident_id,
                    "status": "critical",
                    "active": True,
                    "alerts": [
                        {"status": "critical", "host": "h", "team": "core", "description": "d"}
                    ],
                },
            )
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                found = pd.incident_by_key(incident_id)
                if found is not None:
                    if found.events[-1]["payload"].get("group") == "core":
                        return time.monotonic() - started
                    break
                await asyncio.sleep(0.05)
            if time.monotonic() - started > 120:
                raise RuntimeError("mapping never reached the relay")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--profile", type=Path, help="write the operator's cProfile stats here")
    args = parser.parse_args()
    binaries = find_binaries()
    workdir = Path(tempfile.mkdtemp(prefix="pb-bench-"))
    pd = PagerDutySimulator(events_per_minute=None, rest_per_minute=None)
    with (
        BenchControlPlane(binaries=binaries, crds=[REPO / "crds"]) as plane,
        BackgroundServer(pd.app) as pd_server,
    ):
        connection = load_credentials(plane.kubeconfig)

        async def prepare() -> float:
            async with KubernetesClient(connection, max_connections=100) as kube:
                for ns in ("bench-operator", "bench-mapping"):
                    await create_namespace(kube, ns)
                return await floor(kube, args.count, pd_server.url)

        floor_seconds = asyncio.run(prepare())
        env = {**os.environ, "KUBECONFIG": str(plane.kubeconfig), **loopback_egress_env()}
        log = (workdir / "operator.log").open("wb")
        metrics_port = free_port()
        operator = subprocess.Popen(
            [
                sys.executable,
                *(["-m", "cProfile", "-o", str(args.profile)] if args.profile else []),
                "-m",
                "pagerbridge",
                "operator",
                "-n",
                "bench-operator",
                "-n",
                "bench-mapping",
                "--metrics-port",
                str(metrics_port),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        sampler = RssSampler(operator.pid)
        sampler.start()
        try:
            with (
                HarnessKubelet(
                    plane.kubeconfig,
                    workdir / "k1",
                    "bench-operator",
                    run_processes=False,
                    interval=0.5,
                ),
                HarnessKubelet(plane.kubeconfig, workdir / "k2", "bench-mapping"),
            ):
                # operator start-up (imports, first listings) is not measured
                wait_for_metrics(metrics_port, operator)
                time.sleep(3)

                async def measure() -> tuple[float, Sample, Sample, Sample, float]:
                    async with KubernetesClient(connection, max_connections=100) as kube:
                        ready_seconds, before, at_ready = await operator_run(
                            kube, args.count, pd_server.url, metrics_port
                        )
                        await asyncio.sleep(SETTLE_SECONDS)
                        settled = await asyncio.to_thread(scrape, metrics_port)
                        mapping = await mapping_latency(kube, pd, pd_server.url)
                        return ready_seconds, before, at_ready, settled, mapping

                operator_seconds, before, at_ready, settled, mapping_seconds = asyncio.run(
                    measure()
                )
            cpu = psutil.Process(operator.pid).cpu_times()
            metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        finally:
            sampler.stop.set()
            operator.terminate()
            operator.wait(timeout=20)
    print(f"integrations: {args.count}")
    print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    print(f"floor (plain client, 4 children each, concurrent): {floor_seconds:.2f} s")
    ratio = operator_seconds / floor_seconds
    print(
        f"operator (create -> all Ready):                   {operator_seconds:.2f} s ({ratio:.2f}x)"
    )
    print(f"operator peak RSS:                                 {sampler.peak / 2**20:.0f} MB")
    print(f"operator CPU time (user+system):                   {cpu.user + cpu.system:.1f} s")
    for line in metrics.splitlines():
        if line.startswith("pagerbridge_operator_child_applies_total"):
            print("  " + line)
    breakdown(before, at_ready, args.count, "create -> all Ready")
    breakdown(at_ready, settled, args.count, f"the {SETTLE_SECONDS:.0f} s after all Ready")
    print(f"tag mapping change -> relay uses it:               {mapping_seconds:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
