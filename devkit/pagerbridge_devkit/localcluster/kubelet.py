"""The e2e "harness kubelet": runs relay Deployments as local processes.

The test control plane has no kubelet, so Deployments never get pods. This harness plays
the kubelet's part for relay Deployments (label ``app.kubernetes.io/name=pagerbridge-relay``):

* materializes the pod's volumes as files in a work directory (ConfigMap and Secret
  volumes kept in sync, rewritten atomically on change, like the kubelet's symlink swap;
  emptyDir and PVC volumes as plain directories). File contents and the container's
  arguments have every ``mountPath`` rewritten to its local directory;
* starts the container command (``pagerbridge relay ...``) with ``--host 127.0.0.1`` and
  a free port, restarts it when it exits or when the pod template changes (what a
  rollout would do), and stops it when the Deployment is gone or scaled to zero;
* writes readiness (``/readyz``) into the Deployment's status (``readyReplicas`` ..., and
  the ``Available`` / ``Progressing`` conditions the Deployment controller would write,
  ``progressDeadlineSeconds`` included) and
  the relay's local URL and pid into annotations (``pagerbridge.io/local-url``,
  ``pagerbridge.io/local-pid``) for the tests.

With ``run_processes=False`` it only reports every relay Deployment ready (benchmarks:
300 relay processes would not fit on the machine).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from pagerbridge.clients.kubernetes import (
    KubernetesClient,
    KubernetesError,
    NotFound,
    Resource,
    connection_from_kubeconfig,
)
from pagerbridge_devkit.localcluster.processes import spawn
from pagerbridge_devkit.localcluster.processes import stop as stop_process

logger = logging.getLogger(__name__)

RELAY_SELECTOR = "app.kubernetes.io/name=pagerbridge-relay"
ANNOTATION_URL = "pagerbridge.io/local-url"
ANNOTATION_PID = "pagerbridge.io/local-pid"
DEPLOYMENTS = Resource.builtin("Deployment")
CONFIGMAPS = Resource.builtin("ConfigMap")
SECRETS = Resource.builtin("Secret")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _write_if_changed(path: Path, content: bytes, mode: int = 0o600) -> bool:
    if path.exists() and path.read_bytes() == content:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(content)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return True


@dataclass
class Pod:
    """One running relay: the local stand-in for a Deployment's single pod."""

    namespace: str
    name: str
    directory: Path
    template_hash: str = ""
    process: subprocess.Popen[bytes] | None = None
    port: int = 0
    log_path: Path | None = None
    restarts: int = 0
    reported: dict[str, Any] = field(default_factory=dict)
    rollout_hash: str = ""  # the pod template whose rollout is tracked
    rollout_started: float = 0.0  # wall clock, for Progressing and its deadline
    rolled_out: bool = False  # was ready once for this template (rollout complete)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is None:
            return
        stop_process(self.process)
        self.process = None


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
        self.pods: dict[tuple[str, str], Pod] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="harness-kubelet", daemon=True)
        self._error: BaseException | None = None

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

    def __enter__(self) -> HarnessKubelet:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def pod(self, namespace: str, deployment: str) -> Pod | None:
        return self.pods.get((namespace, deployment))

    def _run(self) -> None:
        try:
            asyncio.run(self._loop())
        except BaseException as exc:  # surfaced through logs; tests then time out clearly
            self._error = exc
            logger.exception("harness kubelet crashed")

    async def _loop(self) -> None:
        connection = connection_from_kubeconfig(self.kubeconfig)
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
                except KubernetesError as exc:
                    logger.warning("harness kubelet: %s", exc)
                await asyncio.sleep(self.interval)

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
            pod = self.pods.pop(key)
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
        if replicas == 0:
            pod.stop()
            await self._report(kube, deployment, pod, ready=False)
            return
        volumes_ready = await self._materialize(kube, namespace, pod, template["spec"])
        if not volumes_ready:
            pod.stop()
            await self._report(kube, deployment, pod, ready=False)
            return
        if pod.template_hash != template_hash or not pod.running():
            if pod.process is not None and pod.running() is False:
                pod.restarts += 1
            pod.stop()
            self._start(pod, template["spec"])
            pod.template_hash = template_hash
        ready = False
        if pod.running():
            with contextlib.suppress(httpx.HTTPError):
                ready = (await http.get(pod.url + "/readyz")).status_code == 200
        pod.rolled_out = pod.rolled_out or ready
        await self._report(kube, deployment, pod, ready=ready)

    def _mounts(self, pod: Pod, pod_spec: dict[str, Any]) -> dict[str, Path]:
        """mountPath -> local directory, for the relay container."""
        container = pod_spec["containers"][0]
        return {
            mount["mountPath"]: pod.directory / "volumes" / mount["name"]
            for mount in container.get("volumeMounts", [])
        }

    def _rewrite(self, text: str, mounts: dict[str, Path]) -> str:
        """One pass, longest mount first, whole path segments only."""
        if not mounts:
            return text
        alternatives = "|".join(re.escape(m) for m in sorted(mounts, key=len, reverse=True))
        pattern = re.compile(rf"(?<![\w/.-])({alternatives})(?=/|$|[^\w.-])")
        return pattern.sub(lambda match: str(mounts[match.group(1)]), text)

    async def _materialize(
        self, kube: KubernetesClient, namespace: str, pod: Pod, pod_spec: dict[str, Any]
    ) -> bool:
        """Write every volume's files; False while a required ConfigMap/Secret is missing."""
        mounts = self._mounts(pod, pod_spec)
        for volume in pod_spec.get("volumes", []):
            target = pod.directory / "volumes" / volume["name"]
            target.mkdir(parents=True, exist_ok=True)
            files: dict[str, bytes] = {}
            if "configMap" in volume:
                source = volume["configMap"]
                try:
                    config_map = await kube.get(CONFIGMAPS, namespace, source["name"])
                except NotFound:
                    if source.get("optional"):
                        continue
                    return False
                files = {
                    key: self._rewrite(value, mounts).encode()
                    for key, value in (config_map.get("data") or {}).items()
                }
            elif "secret" in volume:
                source = volume["secret"]
                try:
                    secret = await kube.get(SECRETS, namespace, source["secretName"])
                except NotFound:
                    if source.get("optional"):
                        continue
                    return False
                files = {
                    key: base64.b64decode(value)
                    for key, value in (secret.get("data") or {}).items()
                }
            else:
                continue  # emptyDir / persistentVolumeClaim: the directory is the volume
            for key, content in files.items():
                _write_if_changed(target / key, content)
            for stale in target.iterdir():
                if stale.is_file() and not stale.name.startswith(".") and stale.name not in files:
                    stale.unlink()
        return True

    def _start(self, pod: Pod, pod_spec: dict[str, Any]) -> None:
        container = pod_spec["containers"][0]
        mounts = self._mounts(pod, pod_spec)
        argv = [
            self._rewrite(arg, mounts) for arg in container["command"] + container.get("args", [])
        ]
        if argv[0] == "pagerbridge":
            argv = [sys.executable, "-m", "pagerbridge", *argv[1:]]
        pod.port = pod.port or _free_port()  # a restarted pod keeps its address, like a Service
        for flag, value in (("--host", "127.0.0.1"), ("--port", str(pod.port))):
            if flag in argv:
                argv[argv.index(flag) + 1] = value
            else:
                argv += [flag, value]
        pod.log_path = pod.directory / "relay.log"
        log = pod.log_path.open("ab")
        env = dict(os.environ)
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = item["value"]
        # Started from the kubelet's long-lived loop thread: the relay gets SIGTERM when
        # that thread (or the whole test process) dies.
        pod.process = spawn(argv, stdout=log, cwd=pod.directory, env=env)
        log.close()

    async def _report(
        self, kube: KubernetesClient, deployment: dict[str, Any], pod: Pod | None, *, ready: bool
    ) -> None:
        meta = deployment["metadata"]
        replicas = int(deployment["spec"].get("replicas", 1))
        count = 1 if ready else 0
        status = {
            "observedGeneration": int(meta.get("generation", 1)),
            "replicas": min(replicas, 1),
            "updatedReplicas": min(replicas, 1),
            "readyReplicas": count,
            "availableReplicas": count,
            "unavailableReplicas": max(replicas - count, 0),
            "conditions": _conditions(deployment, pod, ready=ready),
        }
        current = deployment.get("status") or {}
        if any(current.get(k, 0) != v for k, v in status.items()):
            await kube.merge_patch(
                DEPLOYMENTS, meta["namespace"], meta["name"], {"status": status}, "status"
            )
        if pod is None:
            return
        annotations = {
            ANNOTATION_URL: pod.url if pod.running() else None,
            ANNOTATION_PID: str(pod.process.pid) if pod.process and pod.running() else None,
        }
        existing = meta.get("annotations") or {}
        if any(existing.get(k) != v for k, v in annotations.items()):
            await kube.merge_patch(
                DEPLOYMENTS,
                meta["namespace"],
                meta["name"],
                {"metadata": {"annotations": annotations}},
            )


def _rfc3339(at: float) -> str:
    return datetime.fromtimestamp(int(at), UTC).isoformat().replace("+00:00", "Z")


def _conditions(deployment: dict[str, Any], pod: Pod | None, *, ready: bool) -> list[Any]:
    """``Available`` and ``Progressing`` as the Deployment controller writes them.

    A rollout (new pod template) is ``Progressing=True`` (``ReplicaSetUpdated``) until its
    pod is ready once (``NewReplicaSetAvailable``, kept when the pod fails later), or
    ``False`` (``ProgressDeadlineExceeded``) after ``spec.progressDeadlineSeconds``.
    """
    deadline = int(deployment["spec"].get("progressDeadlineSeconds", 600))
    created = str(deployment["metadata"].get("creationTimestamp", ""))
    if pod is None:  # status-only mode: every relay is reported ready
        since, rolled_out = created, ready
        overdue = False
    else:
        since, rolled_out = _rfc3339(pod.rollout_started), pod.rolled_out
        overdue = time.time() - pod.rollout_started > deadline
    if rolled_out:
        progressing = ("True", "NewReplicaSetAvailable", "the relay pod has become ready")
    elif overdue:
        progressing = ("False", "ProgressDeadlineExceeded", f"no ready relay after {deadline}s")
    else:
        progressing = ("True", "ReplicaSetUpdated", "the relay pod is starting")
    available = (
        ("True", "MinimumReplicasAvailable", "the relay is ready")
        if ready
        else ("False", "MinimumReplicasUnavailable", "the relay is not ready")
    )
    return [
        {
            "type": type_,
            "status": status,
            "reason": reason,
            "message": message,
            "lastUpdateTime": since,
            "lastTransitionTime": since,
        }
        for type_, (status, reason, message) in (
            ("Available", available),
            ("Progressing", progressing),
        )
    ]
