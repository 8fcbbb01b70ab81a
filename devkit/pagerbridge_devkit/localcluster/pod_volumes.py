"""A harness pod's volumes as local directories (what the kubelet mounts, as files).

ConfigMap and Secret volumes are written file by file, atomically (like the kubelet's
``..data`` symlink swap, a reader never sees half a file); emptyDir and PVC volumes are
plain directories. The container's paths are rewritten to the local directories, in file
contents and in the command line alike.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
from pathlib import Path
from typing import Any

from pagerbridge.clients.kubernetes import KubernetesClient, NotFound, Resource

CONFIGMAPS = Resource.builtin("ConfigMap")
SECRETS = Resource.builtin("Secret")


def mounts(pod_directory: Path, pod_spec: dict[str, Any]) -> dict[str, Path]:
    """mountPath -> local directory, for the pod's (single) container."""
    container = pod_spec["containers"][0]
    return {
        mount["mountPath"]: pod_directory / "volumes" / mount["name"]
        for mount in container.get("volumeMounts", [])
    }


def rewrite(text: str, mount_map: dict[str, Path]) -> str:
    """Every mountPath in ``text`` replaced by its local directory.

    One pass, longest mount first, whole path segments only.
    """
    if not mount_map:
        return text
    alternatives = "|".join(re.escape(m) for m in sorted(mount_map, key=len, reverse=True))
    pattern = re.compile(rf"(?<![\w/.-])({alternatives})(?=/|$|[^\w.-])")
    return pattern.sub(lambda match: str(mount_map[match.group(1)]), text)


def clear_ephemeral(pod_directory: Path, pod_spec: dict[str, Any]) -> None:
    """Empty every emptyDir volume: a new pod starts with fresh ones (a restarted container
    keeps them; PVC volumes are kept either way)."""
    for volume in pod_spec.get("volumes", []):
        if "emptyDir" in volume:
            target = pod_directory / "volumes" / volume["name"]
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)


def write_if_changed(path: Path, content: bytes, mode: int = 0o600) -> bool:
    if path.exists() and path.read_bytes() == content:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(content)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return True


async def environment(
    kube: KubernetesClient, namespace: str, pod_spec: dict[str, Any]
) -> dict[str, str] | None:
    """The container's environment (``value`` and ``valueFrom.secretKeyRef``); None while a
    referenced Secret or key is missing (the kubelet's CreateContainerConfigError)."""
    env: dict[str, str] = {}
    for item in pod_spec["containers"][0].get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        ref = (item.get("valueFrom") or {}).get("secretKeyRef")
        if ref is None:
            continue  # fieldRef and friends: nothing the relay reads
        try:
            secret = await kube.get(SECRETS, namespace, ref["name"])
        except NotFound:
            if ref.get("optional"):
                continue
            return None
        data = secret.get("data") or {}
        if ref["key"] not in data:
            if ref.get("optional"):
                continue
            return None
        env[item["name"]] = base64.b64decode(data[ref["key"]]).decode()
    return env


async def materialize(
    kube: KubernetesClient, namespace: str, pod_directory: Path, pod_spec: dict[str, Any]
) -> bool:
    """Write every volume's files; False while a required ConfigMap or Secret is missing.

    Like the kubelet, a source that disappears leaves the files already written in place:
    the caller decides what a missing source means (a new pod cannot start; a running one
    keeps what it has).
    """
    mount_map = mounts(pod_directory, pod_spec)
    complete = True
    for volume in pod_spec.get("volumes", []):
        target = pod_directory / "volumes" / volume["name"]
        target.mkdir(parents=True, exist_ok=True)
        files: dict[str, bytes] = {}
        if "configMap" in volume:
            source = volume["configMap"]
            try:
                config_map = await kube.get(CONFIGMAPS, namespace, source["name"])
            except NotFound:
                complete = complete and bool(source.get("optional"))
                continue
            files = {
                key: rewrite(value, mount_map).encode()
                for key, value in (config_map.get("data") or {}).items()
            }
        elif "secret" in volume:
            source = volume["secret"]
            try:
                secret = await kube.get(SECRETS, namespace, source["secretName"])
            except NotFound:
                complete = complete and bool(source.get("optional"))
                continue
            files = {
                key: base64.b64decode(value) for key, value in (secret.get("data") or {}).items()
            }
        else:
            continue  # emptyDir / persistentVolumeClaim: the directory is the volume
        for key, content in files.items():
            write_if_changed(target / key, content)
        for stale in target.iterdir():
            if stale.is_file() and not stale.name.startswith(".") and stale.name not in files:
                stale.unlink()
    return complete
