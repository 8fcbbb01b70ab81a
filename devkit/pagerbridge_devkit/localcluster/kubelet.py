"""The e2e "harness kubelet": runs relay Deployments as local processes.

The test control plane has no kubelet, so Deployments never get pods. This harness plays
the kubelet's part for relay Deployments (label ``app.kubernetes.io/name=pagerbridge-relay``):

* materializes the pod's volumes as files in a work directory (:mod:`.pod_volumes`).
  Like the real kubelet, a ConfigMap or Secret deleted under a running pod leaves the
  pod running on the files it has; only a pod that must (re)start waits for it;
* starts the container command (:mod:`.pod_process`) on 127.0.0.1 and a free port, one
  process per replica, with the container's env (literal values and Secret keys);
  restarts it when it exits or when the pod template changes (what a rollout would do:
  with several replicas one at a time, and only while every other replica is ready, so
  one always serves), and stops it when the Deployment is gone or scaled to zero;
* writes readiness (``/readyz`` on the internal port) into the Deployment's status as the
  Deployment controller would (:mod:`.deployment_status`), and
  the relay's local URLs and pid into annotations (``pagerbridge.io/local-url``: the
  public port, ``pagerbridge.io/local-internal-url``: the internal port,
  ``pagerbridge.io/local-pid``: the first replica; ``pagerbridge.io/local-urls``,
  ``pagerbridge.io/local-pids``: every running replica, comma-separated) for the tests.

With ``run_processes=False`` it only reports every relay Deployment ready (benchmarks:
300 relay processes would not fit on the machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from pagerbridge.api.contract import RELAY_READINESS_PATH
from pagerbridge.clients.kubernetes import (
    KubernetesClient,
    KubernetesError,
    NotFound,
    Resource,
    load_credentials,
)
from pagerbridge.controller.names import LABEL_NAME, RELAY_APP
from pagerbridge_devkit.localcluster import deployment_status, pod_volumes
from pagerbridge_devkit.localcluster.deployment_status import Rollout
from pagerbridge_devkit.localcluster.pod_process import Pod

__all__ = [
    "ANNOTATION_INTERNAL_URL",
    "ANNOTATION_PID",
    "ANNOTATION_PIDS",
    "ANNOTATION_URL",
    "ANNOTATION_URLS",
    "RELAY_SELECTOR",
    "HarnessKubelet",
    "Pod",
]

logger = logging.getLogger(__name__)

RELAY_SELECTOR = f"{LABEL_NAME}={RELAY_APP}"
ANNOTATION_URL = "pagerbridge.io/local-url"
ANNOTATION_INTERNAL_URL = "pagerbridge.io/local-internal-url"
ANNOTATION_PID = "pagerbridge.io/local-pid"
ANNOTATION_URLS = "pagerbridge.io/local-urls"
ANNOTATION_PIDS = "pagerbridge.io/local-pids"
DEPLOYMENTS = Resource.builtin("Deployment")


class HarnessKubelet:
    """``with HarnessKubelet(kubeconfig, workdir) as kubelet: ...`` (a background thread)."""

    def __init__(
        self,
        kubeconfig: Path,
        workdir: Path,
        namespace: str | None = None,
        *,
        run_processes: bool = True,
        interval: float = 0.3,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.workdir = workdir
        self.namespace = namespace
        self.run_processes = run_processes
        self.interval = interval
        self.pods: dict[tuple[str, str], Pod] = {}  # each Deployment's first replica
        self.extra_pods: dict[tuple[str, str], list[Pod]] = {}  # and its other replicas
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="harness-kubelet", daemon=True)
        self._error: BaseException | None = None
        self._unreachable_since: float | None = None

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> HarnessKubelet:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        for pod in list(self.pods.values()):
            pod.stop()
        for pods in list(self.extra_pods.values()):
            for pod in pods:
                pod.stop()

    def __enter__(self) -> HarnessKubelet:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def pod(self, namespace: str, deployment: str) -> Pod | None:
        return self.pods.get((namespace, deployment))

    def replicas(self, namespace: str, deployment: str) -> list[Pod]:
        """Every replica of a Deployment, the first one first."""
        first = self.pods.get((namespace, deployment))
        return [] if first is None else [first, *self.extra_pods.get((namespace, deployment), [])]

    def _run(self) -> None:
        try:
            asyncio.run(self._loop())
        except BaseException as exc:  # surfaced through logs; tests then time out clearly
            self._error = exc
            logger.exception("harness kubelet crashed")

    async def _loop(self) -> None:
        connection = load_credentials(self.kubeconfig)
        async with (
            KubernetesClient(connection, field_manager="harness-kubelet") as kube,
            httpx.AsyncClient(timeout=1.0) as http,
        ):
            while not self._stop.is_set():
                try:
                    if self.run_processes:
                        await self._sync(kube, http)
                    else:
                        await self._watch_statuses(kube, http)
                except (KubernetesError, httpx.TransportError) as exc:
                    self._api_unreachable(exc)
                else:
                    self._api_reachable()
                await asyncio.sleep(self.interval)

    def _api_unreachable(self, exc: Exception) -> None:
        # One line per outage, not one per pass (an API server restart is seconds of them).
        if self._unreachable_since is None:
            self._unreachable_since = time.monotonic()
            logger.warning("harness kubelet: API server unreachable (%s); pods keep running", exc)

    def _api_reachable(self) -> None:
        if self._unreachable_since is not None:
            down = time.monotonic() - self._unreachable_since
            self._unreachable_since = None
            logger.warning("harness kubelet: API server reachable again after %.1fs", down)

    async def _watch_statuses(self, kube: KubernetesClient, http: httpx.AsyncClient) -> None:
        """Status-only mode: list once, then follow a watch (cheap at hundreds of relays)."""
        listing = await kube.list(DEPLOYMENTS, self.namespace, label_selector=RELAY_SELECTOR)
        for deployment in listing.get("items", []):
            with contextlib.suppress(NotFound):
                await self._sync_one(kube, http, deployment)
        version = listing["metadata"].get("resourceVersion")
        async for event in kube.watch(
            DEPLOYMENTS, self.namespace, RELAY_SELECTOR, version, timeout_seconds=5
        ):
            if self._stop.is_set():
                return
            if event.get("type") in ("ADDED", "MODIFIED"):
                with contextlib.suppress(NotFound):
                    await self._sync_one(kube, http, event["object"])

    # -- one pass ---------------------------------------------------------------------

    async def _sync(self, kube: KubernetesClient, http: httpx.AsyncClient) -> None:
        listing = await kube.list(DEPLOYMENTS, self.namespace, label_selector=RELAY_SELECTOR)
        seen: set[tuple[str, str]] = set()
        limit = asyncio.Semaphore(32)

        async def sync_one(deployment: dict[str, Any]) -> None:
            async with limit:
                with contextlib.suppress(NotFound):
                    await self._sync_one(kube, http, deployment)

        batch = []
        for deployment in listing.get("items", []):
            meta = deployment["metadata"]
            if meta.get("deletionTimestamp"):
                continue
            seen.add((meta["namespace"], meta["name"]))
            batch.append(sync_one(deployment))
        await asyncio.gather(*batch)
        for key in set(self.pods) - seen:
            for pod in [self.pods.pop(key), *self.extra_pods.pop(key, [])]:
                pod.stop()
                shutil.rmtree(pod.directory, ignore_errors=True)

    async def _sync_one(
        self, kube: KubernetesClient, http: httpx.AsyncClient, deployment: dict[str, Any]
    ) -> None:
        meta, spec = deployment["metadata"], deployment["spec"]
        namespace, name = meta["namespace"], meta["name"]
        replicas = int(spec.get("replicas", 1))
        if not self.run_processes:
            await self._report(kube, deployment, None, ready=replicas > 0)
            return
        pod = self.pods.get((namespace, name))
        if pod is None:
            pod = Pod(namespace, name, self.workdir / namespace / name)
            self.pods[(namespace, name)] = pod
        template = spec["template"]
        template_hash = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
        if pod.rollout_hash != template_hash:
            pod.rollout_hash, pod.rolled_out = template_hash, False
            pod.rollout_started = time.time()
        pods = [pod, *self._extra_replicas(namespace, name, replicas)]
        if replicas == 0:
            pod.stop()
            await self._report(kube, deployment, pod, ready=False)
            return
        environment = await pod_volumes.environment(kube, namespace, template["spec"])
        ready = {id(p): await self._probe(http, p) for p in pods}
        drain = _pre_stop_sleep(template["spec"])
        for replica in pods:
            if replica.draining_since is not None:
                ready[id(replica)] = False  # out of the endpoints while it drains
            volumes_complete = await pod_volumes.materialize(
                kube, namespace, replica.directory, template["spec"]
            )
            # A new pod waits for its ConfigMap, Secrets and env (ContainerCreating); a
            # running one keeps the files it has, as with the real kubelet.
            startable = volumes_complete and environment is not None
            new_pod = replica.template_hash != template_hash
            if not startable or not (new_pod or not replica.running()):
                continue
            if replica.running() and not all(ready[id(p)] for p in pods if p is not replica):
                continue  # a rollout waits until every other replica is ready again
            if replica.running() and new_pod and drain and len(pods) > 1:
                # preStop sleep: the replica leaves the endpoints (annotations) first and
                # keeps serving what was already routed to it; stopped once it has slept.
                if replica.draining_since is None:
                    replica.draining_since = time.monotonic()
                    ready[id(replica)] = False
                if time.monotonic() - replica.draining_since < drain:
                    break
            replica.draining_since = None
            if replica.process is not None and not replica.running():
                replica.restarts += 1
            replica.stop()
            if new_pod:  # a rollout replaces the pod: its emptyDir volumes start empty
                pod_volumes.clear_ephemeral(replica.directory, template["spec"])
            replica.start(template["spec"], environment)
            replica.template_hash = template_hash
            ready[id(replica)] = False
            if new_pod and len(pods) > 1:
                break  # one replica at a time
        updated = all(p.template_hash == template_hash for p in pods)
        count = sum(1 for p in pods if ready[id(p)])
        pod.rolled_out = pod.rolled_out or (updated and count > 0)
        await self._report(
            kube, deployment, pod, ready=count > 0, ready_replicas=count if len(pods) > 1 else None
        )

    def _extra_replicas(self, namespace: str, name: str, replicas: int) -> list[Pod]:
        """Replicas beyond the first, created and removed to match ``replicas``."""
        extra = self.extra_pods.setdefault((namespace, name), [])
        while len(extra) > max(replicas - 1, 0):
            gone = extra.pop()
            gone.stop()
            shutil.rmtree(gone.directory, ignore_errors=True)
        while len(extra) < replicas - 1:
            index = len(extra) + 1
            extra.append(Pod(namespace, name, self.workdir / namespace / f"{name}.{index}"))
        return list(extra)

    @staticmethod
    async def _probe(http: httpx.AsyncClient, pod: Pod) -> bool:
        if not pod.running():
            return False
        with contextlib.suppress(httpx.HTTPError):
            return (await http.get(pod.internal_url + RELAY_READINESS_PATH)).status_code == 200
        return False

    async def _report(
        self,
        kube: KubernetesClient,
        deployment: dict[str, Any],
        pod: Pod | None,
        *,
        ready: bool,
        ready_replicas: int | None = None,
    ) -> None:
        meta = deployment["metadata"]
        rollout = None if pod is None else Rollout(pod.rollout_started, pod.rolled_out)
        status = deployment_status.deployment_status(
            deployment, ready=ready, rollout=rollout, now=time.time(), ready_replicas=ready_replicas
        )
        if deployment_status.differs(deployment.get("status") or {}, status):
            await kube.merge_patch(
                DEPLOYMENTS, meta["namespace"], meta["name"], {"status": status}, "status"
            )
        if pod is None:
            return
        running = [
            p
            for p in self.replicas(meta["namespace"], meta["name"])
            if p.running() and p.process and p.draining_since is None
        ]
        annotations = {
            ANNOTATION_URL: pod.url if pod.running() else None,
            ANNOTATION_INTERNAL_URL: pod.internal_url if pod.running() else None,
            ANNOTATION_PID: str(pod.process.pid) if pod.process and pod.running() else None,
            ANNOTATION_URLS: ",".join(p.url for p in running) or None,
            ANNOTATION_PIDS: ",".join(str(p.process.pid) for p in running if p.process) or None,
        }
        existing = meta.get("annotations") or {}
        if any(existing.get(k) != v for k, v in annotations.items()):
            await kube.merge_patch(
                DEPLOYMENTS,
                meta["namespace"],
                meta["name"],
                {"metadata": {"annotations": annotations}},
            )


def _pre_stop_sleep(pod_spec: dict[str, Any]) -> float:
    """Seconds of the container's ``lifecycle.preStop.sleep`` (0: none)."""
    container = pod_spec["containers"][0]
    sleep = ((container.get("lifecycle") or {}).get("preStop") or {}).get("sleep") or {}
    return float(sleep.get("seconds", 0))
